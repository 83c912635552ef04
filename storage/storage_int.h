/* storage/storage_int.h - internals shared by the files of storage/ (not for other modules).
 *
 * disk.c turns a block (a sequence of batches) into a file and back; store.c owns the maps,
 * the LRU list, the byte budget and the locking. */
#ifndef EMBER_STORAGE_INT_H
#define EMBER_STORAGE_INT_H

#include "storage/storage.h"

/* Longest "<dir>/blocks/<name>.blk" the store builds; em_block_store_new rejects longer dirs. */
#define EM__STORAGE_PATH_MAX 4096

/* Writes batches[0..n) as back-to-back engine/data blocks (zstd at `level`) to `path`
 * atomically: a temporary file renamed on success, removed on failure, so no partial file
 * is ever left under `path`. Sets *file_bytes to the size of the file. Borrows the batches.
 * Any thread; errors (EM_EIO, EM_ENOSPC, EM_ENOMEM) name the path. */
int em__storage_write_file(const char *path, em_batch *const *batches, size_t n, int level,
                           uint64_t *file_bytes, em_err *err);

/* Reads a file written by em__storage_write_file and verifies it: every block's checksums,
 * the file size (expect_bytes) and the number of batches (expect_n), so a file truncated at
 * a block boundary is caught too. On success *out is a new array (em_free) of new batches
 * (em_batch_unref each) and *n its length; on error both are untouched and the error names
 * the path (EM_ECORRUPT for bad content, EM_EIO if unreadable, EM_ENOMEM). Any thread. */
int em__storage_read_file(const char *path, uint64_t expect_bytes, size_t expect_n,
                          em_batch ***out, size_t *n, em_err *err);

/* memory.c, for store.c: the store's charged bytes (+add -sub), and the callback that
 * evicts LRU blocks worth up to `bytes` for execution (called without mm's lock; returns
 * the bytes uncharged). */
void em__memory_storage_delta(em_memory_manager *mm, size_t add, size_t sub);
void em__memory_set_evictor(em_memory_manager *mm, size_t (*fn)(void *ud, size_t bytes),
                            void *ud);

#endif /* EMBER_STORAGE_INT_H */
