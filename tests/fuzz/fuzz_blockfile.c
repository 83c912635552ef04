/* tests/fuzz/fuzz_blockfile.c - checkpoint part files (storage/blockfile.c) are read by
 * executors from a shared directory: untrusted. The input is written to a temporary file
 * and read back through em_block_file_reader; every outcome must be a clean 0/1/<0, and a
 * file that reads to the end must match its trailer's counts (the reader checks that). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "storage/storage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[] = "/tmp/ember-fuzz-blockfile-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 0;
    em_err err = EM_ERR_INIT;
    if (em_write_full(fd, data, size, path, &err) == 0) {
        em_block_file_reader *r = NULL;
        if (em_block_file_reader_open(path, &r, &err) == 0) {
            em_batch *b = NULL;
            uint64_t nrecs = 0;
            int rc;
            while ((rc = em_block_file_reader_next(r, &b, &err)) == 1) {
                nrecs += em_batch_nrecs(b);
                em_batch_unref(b);
            }
            if (rc == 0 && nrecs != em_block_file_reader_nrecs(r))
                abort();
            em_block_file_reader_close(r);
        }
    }
    close(fd);
    unlink(path);
    return 0;
}
