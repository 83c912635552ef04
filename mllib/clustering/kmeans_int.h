/* mllib/clustering/kmeans_int.h - what the k-means files share: the task context blob, the
 * centre table, the batch distance kernel and the driver-side helpers.
 *
 * TASK CONTEXT (blob of every ml.kmeans.* function; little-endian, 40 bytes):
 *   u32 magic "EMKM", u32 k (centres in the broadcast; 0 = none: every distance is 1),
 *   u32 dim, u8 distance, u8 sparse, u8 labeled, u8 mode (km_mode), u32 broadcast id,
 *   u32 round, u64 seed, f64 scale (k-means|| sampling: oversampling l / total cost).
 * BROADCAST: k x dim centres (row-major doubles), then k squared norms. */
#ifndef EMBER_MLLIB_CLUSTERING_KMEANS_INT_H
#define EMBER_MLLIB_CLUSTERING_KMEANS_INT_H

#include "mllib/clustering/kmeans.h"

#define EM__KM_MAGIC 0x4d4b4d45u   /* "EMKM" */
#define EM__KM_CTX_SIZE 40

typedef enum km_mode {
    KM_LLOYD = 0,   /* acc: k*dim sums, k counts, cost (expanded distances) */
    KM_COST = 1,    /* acc: same size; only cost, with exact distances */
    KM_PICK = 2,    /* acc: km_pick; one row drawn with probability ~ distance (or 1) */
} km_mode;

typedef struct km_ctx {
    uint32_t k, dim, bcast, round;
    em_kmeans_distance distance;
    em_ml_data layout;
    km_mode mode;
    uint64_t seed;
    double scale;
} km_ctx;

void em__km_ctx_encode(const km_ctx *c, uint8_t out[EM__KM_CTX_SIZE]);
int em__km_ctx_decode(em_slice b, km_ctx *c, em_err *err);

/* Centres as the kernel reads them: k x dim (cosine: unit rows) and squared norms. */
typedef struct km_centers {
    uint32_t k, dim;
    em_kmeans_distance distance;
    const double *c, *cn;
} km_centers;

/* The nearest centre of n dense rows (x: row-major with leading dimension ldx) through one
 * GEMM: dots = X C^T (n x k, scratch of n*k doubles), then per row the smallest of
 * |c|^2 - 2 x.c (euclidean) or the largest x.c (cosine). best[i] and dist[i] (euclidean:
 * squared distance |x|^2 - 2 x.c + |c|^2 clamped at 0; cosine: 1 - x.c / |x|) and the
 * row's squared norm xn[i]. EM_EINVAL for a zero row with cosine (row index in *bad). */
int em__km_assign_dense(const km_centers *C, const double *x, size_t ldx, size_t n,
                        double *dots, uint32_t *best, double *dist, double *xn, size_t *bad);
/* The fused AVX-512 form of em__km_assign_dense (kmeans_kernel.c), which dispatches to it:
 * usable when em__km_fused_ok(k) (the CPU has AVX-512F, 1 <= k <= 32); panel is scratch of
 * em__km_fused_panel_size(k, dim) doubles. Same outputs; dots are not formed. */
bool em__km_fused_ok(uint32_t k);
size_t em__km_fused_panel_size(uint32_t k, uint32_t d);
int em__km_assign_fused(const km_centers *C, const double *x, size_t ldx, size_t n,
                        double *panel, uint32_t *best, double *dist, double *xn, size_t *bad);
/* Lloyd's sums for a block the fused kernel assigned: sums[best[i]] += f_i x_i for the n
 * rows of x (leading dimension ldx), f_i = 1, or 1 / sqrt(xn[i]) when xn is given (cosine:
 * unit rows). AVX-512; only called when em__km_fused_ok. */
void em__km_fold_fused(double *sums, uint32_t d, const double *x, size_t ldx, size_t n,
                       const uint32_t *best, const double *xn);
/* The same for one sparse row. */
int em__km_assign_sparse(const km_centers *C, const em_ml_sparse *s, uint32_t *best,
                         double *dist, double *xn);
/* The centres of the task context's broadcast (an unaligned value is copied into *own,
 * which the caller frees). */
int em__km_get_centers(const em_fn_ctx *fc, const km_ctx *c, km_centers *C, double **own,
                       em_err *err);
/* Exact distance of a dense row (dim doubles, possibly unaligned bytes) to centre c. */
double em__km_exact(const km_centers *C, const double *x, uint32_t c);

/* Weighted reservoir pick (Efraimidis & Spirakis, "Weighted random sampling with a
 * reservoir", IPL 2006): each row gets key log(u)/w, the largest key wins; so a row is
 * chosen with probability w / sum w, one pass, and the merge of two partitions' picks is
 * the larger key. Acc layout: this header then dim doubles. */
typedef struct km_pick {
    double key;
    uint64_t found, seeded;
    uint64_t rng[4];
    double pad;
} km_pick;

/* Driver side (kmeans_train.c, kmeans_init.c). */
typedef struct km_run {
    em_context *sc;
    const em_ml_data *d;
    const em_kmeans_params *p;
    uint32_t dim;
} km_run;
/* Runs one pass of mode over the data against the centres c (k x dim; k may be 0 for
 * KM_PICK), returning the merged accumulator in out (caller's vbuf, cleared first). */
int em__km_pass(const km_run *r, km_mode mode, const double *c, uint32_t k, uint32_t round,
                double scale, em_vbuf *out, em_err *err);
/* Initial centres (k' x dim, k' <= k; caller frees *out). */
int em__km_init(const km_run *r, double **out, uint32_t *kout, em_err *err);
/* Squared norms (euclidean) or unit rows + norms 1 (cosine): makes the broadcast value. */
double *em__km_table(const double *c, uint32_t k, uint32_t dim, em_kmeans_distance dist);
/* Sorts the k rows and removes duplicates; returns the new count. */
uint32_t em__km_distinct(double *c, uint32_t k, uint32_t dim);

/* Task functions. */
int em__km_fn_seq(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in,
                  em_err *err);
int em__km_fn_merge(const em_fn_ctx *c, void *acc, const void *other, size_t size,
                    em_err *err);
int em__km_fn_sample(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                     em_err *err);
int em__km_fn_predict(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                      em_err *err);

#endif /* EMBER_MLLIB_CLUSTERING_KMEANS_INT_H */
