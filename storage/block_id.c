/* storage/block_id.c - printable names of block ids (file names and log messages). */
#include <stdio.h>

#include "storage/storage.h"

const char *em_block_id_str(em_block_id id, char *buf, size_t n)
{
    if (buf == NULL || n == 0)
        return "";
    switch ((em_block_type)id.type) {
    case EM_BLOCK_RDD:
        snprintf(buf, n, "rdd_%u_%u", id.a, id.b);
        break;
    case EM_BLOCK_BROADCAST:
        snprintf(buf, n, "broadcast_%u", id.a);
        break;
    case EM_BLOCK_INPUT:
        snprintf(buf, n, "input_%u_%u", id.a, id.b);
        break;
    case EM_BLOCK_TEMP:
        snprintf(buf, n, "temp_%u_%u_%u", id.a, id.b, id.c);
        break;
    default:
        /* Not a known type: still a unique, printable name (at most 46 bytes + NUL). */
        snprintf(buf, n, "blk%u_%u_%u_%u", id.type, id.a, id.b, id.c);
        break;
    }
    return buf;
}
