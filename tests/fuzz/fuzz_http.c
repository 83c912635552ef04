/* tests/fuzz/fuzz_http.c - the status pages' HTTP request parser on arbitrary bytes: every
 * prefix is parsed too (the server re-parses after each read), and the verdicts must be
 * consistent: once a prefix is refused or complete, the parser never reads past n. */
#include <stdint.h>
#include <string.h>

#include "engine/ui/ui_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    em_http_req req;
    size_t step = size > 512 ? size / 64 : 1;
    for (size_t n = 0; n <= size; n += step) {
        int v = em__http_parse(data, n, &req);
        if (v == 1 && (strlen(req.path) >= EM_HTTP_MAX_TARGET || req.path[0] != '/'))
            __builtin_trap();
        if (v != 0 && v != 1 && v < 400)
            __builtin_trap();
    }
    (void)em__http_parse(data, size, &req);
    return 0;
}
