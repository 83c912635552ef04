/* mllib/linalg/model_dir.h - the one on-disk layout of every saved MLlib model, written
 * atomically and verified on load (Spark's model directories: JSON metadata + data).
 *
 * LAYOUT of DIR:
 *   metadata.json   one JSON object: {"class": "ember.<Model>", "version": N, <the model's
 *                   own fields>, "arrays": {"<name>": {"count": C, "crc32c": X}, ...}}
 *   <name>.bin      for each entry of "arrays": C little-endian IEEE doubles (8*C bytes);
 *                   X = em_crc32c(0, bytes, 8*C).
 * WRITE: DIR must not exist (checked first: EM_EINVAL "DIR: already exists"); the files are
 * written into DIR.tmp.<pid> and the directory renamed to DIR, so a crash leaves no
 * half-written DIR. READ: metadata.json parsed, "class" compared, "version" <= the reader's,
 * each array's file size and checksum verified before use: a flipped byte anywhere is
 * EM_ECORRUPT naming the file, never a model that predicts garbage.
 * The decoders (em_ml_model_meta_parse, em_ml_model_array_decode) take untrusted bytes and
 * have a fuzz harness (tests/fuzz/fuzz_model_dir.c).
 * THREADS: any thread; no shared state. */
#ifndef EMBER_MLLIB_LINALG_MODEL_DIR_H
#define EMBER_MLLIB_LINALG_MODEL_DIR_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/base/base.h"

/* One named array of doubles. Write: data borrowed (count doubles). Read: name and
 * max_count set by the caller; data (em_malloc, caller frees with em_free; NULL when count
 * is 0) and count filled. */
typedef struct em_ml_array {
    const char *name;      /* [A-Za-z0-9_]+: the file is <name>.bin */
    double *data;
    size_t count;
    size_t max_count;      /* read: more entries than this is EM_ECORRUPT (untrusted size) */
} em_ml_array;

/* For commands, before any work: DIR must not exist and its parent must be an existing
 * directory we can write. EM_EINVAL naming DIR and the reason. */
int em_ml_model_dir_check_new(const char *dir, em_err *err);

/* Writes the model: meta (borrowed; a JSON object of the model's own fields, not modified)
 * plus "class", "version" and "arrays" (added to a copy). */
int em_ml_model_dir_write(const char *dir, const char *cls, int version, const json_t *meta,
                          const em_ml_array *arrays, size_t narrays, em_err *err);

/* Reads DIR: *meta (owned, json_decref) is the whole metadata object after its "class" is
 * checked against cls and "version" against max_version; then each of the n arrays asked
 * for is loaded and verified. On error nothing is returned (all freed). */
int em_ml_model_dir_read(const char *dir, const char *cls, int max_version, json_t **meta,
                         em_ml_array *arrays, size_t narrays, em_err *err);

/* The decoders under em_ml_model_dir_read, on bytes (for fuzzing and tests). name is what
 * errors call the input. meta_parse checks the object, class, version and that "arrays" is
 * an object of {count, crc32c} entries. array_decode verifies bytes against meta's entry
 * for a->name (and a->max_count) and fills a->data, a->count. */
int em_ml_model_meta_parse(const char *name, const uint8_t *bytes, size_t n, const char *cls,
                           int max_version, json_t **meta, em_err *err);
int em_ml_model_array_decode(const char *name, const json_t *meta, const uint8_t *bytes,
                             size_t n, em_ml_array *a, em_err *err);

/* Typed fields of metadata (name = what errors call the file). EM_ECORRUPT "name: field
 * 'key' ..." when missing or of another type or out of [0, max]. */
int em_ml_meta_u64(const char *name, const json_t *meta, const char *key, uint64_t max,
                   uint64_t *out, em_err *err);
int em_ml_meta_f64(const char *name, const json_t *meta, const char *key, double *out,
                   em_err *err);   /* JSON number (integer or real); finite */
/* Borrowed from meta. */
int em_ml_meta_str(const char *name, const json_t *meta, const char *key, const char **out,
                   em_err *err);

#endif /* EMBER_MLLIB_LINALG_MODEL_DIR_H */
