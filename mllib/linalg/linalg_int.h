/* mllib/linalg/linalg_int.h - what the files of mllib/linalg share and nobody else sees:
 * the task functions of the "ml.linalg.*" table, the context blob of the loaders' parse
 * function, and the number parser.
 *
 * PARSE CONTEXT (the blob of ml.linalg.parse; little-endian, built by load.c on the driver,
 * decoded and validated by parse.c on the executors):
 *   u32 magic "EMLP", u8 format (em_ml_format), u8 sparse, u8 labeled, u8 skip_bad_lines,
 *   u32 dim (features; 0 = LIBSVM sparse without a bound), u32 ncols (CSV/TSV columns),
 *   u32 label_col (CSV/TSV; 0xffffffff = none), u32 skip accumulator id (0 = none),
 *   u32 nfiles, u32 nsplits, then nfiles x (u32 len, path bytes), then nsplits x (u32 file,
 *   u64 start): the text source's splits in partition order (engine/api/sources.c's rule),
 *   so an error can name the file and count the lines before the split. nsplits = 0 when
 *   the driver could not reproduce the splits: errors then name the partition instead. */
#ifndef EMBER_MLLIB_LINALG_INT_H
#define EMBER_MLLIB_LINALG_INT_H

#include "mllib/linalg/rows.h"

#define EM__ML_PARSE_MAGIC 0x504c4d45u   /* "EMLP" */
#define EM__ML_NO_LABEL 0xffffffffu

/* Parses the decimal number in [p, end) (the whole range: no leading or trailing junk) as
 * strtod would in the C locale; finite values only. false when it is not one. */
bool em__ml_parse_double(const char *p, const char *end, double *out);
/* The number at the start of [p, end) (strtod's decimal syntax without leading blanks,
 * "inf" or "nan"; finite, correctly rounded): the end of its text, or NULL when there is no
 * number there or it overflows. em__ml_parse_double is this with nothing after it. */
const char *em__ml_scan_double(const char *p, const char *end, double *out);

/* Task functions (registered in rows.c). */
/* One line parsed as ml.linalg.parse does on the executors (the loaders' fuzz target):
 * *row receives the row record (rows.h layout). 1 a row, 0 a skipped line (empty or
 * comment), -1 a bad line (*why says why), <0 an error (bad options: EM_EINVAL). */
typedef struct em__ml_line_opts {
    em_ml_format format;
    bool sparse, labeled;
    uint32_t dim, ncols, label_col;   /* as the parse context: label_col EM__ML_NO_LABEL */
} em__ml_line_opts;
int em__ml_parse_line(const em__ml_line_opts *o, em_slice line, em_vbuf *row,
                      const char **why, em_err *err);
int em__ml_fn_parse(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                    em_err *err);
int em__ml_fn_scan(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in,
                   em_err *err);
int em__ml_fn_scan_merge(const em_fn_ctx *c, void *acc, const void *other, size_t size,
                         em_err *err);
int em__ml_fn_densify(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int em__ml_fn_format(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                     em_err *err);
int em__ml_fn_stats_init(const em_fn_ctx *c, void *acc, size_t size, em_err *err);
int em__ml_fn_stats(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in,
                    em_err *err);
int em__ml_fn_stats_merge(const em_fn_ctx *c, void *acc, const void *other, size_t size,
                          em_err *err);
int em__ml_fn_gram(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in,
                   em_err *err);
int em__ml_fn_sum_merge(const em_fn_ctx *c, void *acc, const void *other, size_t size,
                        em_err *err);
int em__ml_fn_multiply(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                       em_err *err);
int em__ml_fn_indexed_rows(const em_fn_ctx *c, const em_rec *in, em_emitter *out,
                           em_err *err);
int em__ml_fn_entries(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int em__ml_fn_entry_key(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int em__ml_fn_row_of_entries(const em_fn_ctx *c, const em_rec *in, em_emitter *out,
                             em_err *err);

/* The layout blob of the functions that read a data set: u8 sparse, u8 labeled, u32 dim. */

#endif /* EMBER_MLLIB_LINALG_INT_H */
