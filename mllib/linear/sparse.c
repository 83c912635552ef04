/* mllib/linear/sparse.c - the sparse-row kernels of the linear models' passes, and the
 * column moments pass that gives fit.c its feature scales on sparse data.
 *
 * KERNELS: a labeled sparse point is a record (rows.h) of a double label, u32 nnz, u32 pad,
 * nnz u32 indices (strictly ascending), then nnz doubles at offset 8 + 4 nnz rounded up to
 * 8; em__lin_sparse_dot computes w . x and checks the indices (each below dim, strictly
 * ascending) in the same sweep, so a pass reads every index once instead of once to check
 * the record (em_ml_sparse_view) and once to use it. em__lin_sparse_axpy adds a x to g.
 * With AVX-512F (em_la_simd() >= 3, probed at run time) eight entries go at a time: the
 * indices widened to 64 bits, w or g gathered, g written back by a scatter. The scatter is
 * correct because the eight indices of a group are distinct (strictly ascending, checked by
 * the dot before any axpy of the row: the pass fails on a bad row). Products are summed in
 * eight lanes and then folded, so a margin may differ from the scalar loop's in the last
 * bits.
 * MOMENTS ACCUMULATOR (doubles; blob: em_ml_layout_encode of the data): n rows, then per
 * column cnt[d] (non-zero entries), mean[d] and m2[d] (the mean and summed squared
 * deviations of the non-zero entries, Welford's update; partitions merged by Chan et al.'s
 * pairwise formula). The zeros are folded in on the driver: with c of n entries non-zero,
 *     mean = mean_nz c / n,   M2 = m2_nz + mean_nz^2 c (n - c) / n,   var = M2 / (n - 1),
 * i.e. Chan's merge with a group of n - c zeros. WHY not em_ml_col_stats: it also keeps
 * min, max and nnz and folds every batch through a dim-wide temporary, which for 100k
 * columns and 1 MiB batches cost more than a gradient pass; this one touches only the
 * non-zeros. */
#include <math.h>
#include <string.h>

#include "mllib/linalg/linalg.h"
#include "mllib/linear/linear_int.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define LIN_X86 1
#define LIN_AVX512 __attribute__((target("avx512f")))
#endif

/* ---------------------------------------------------------------- kernels */

static bool dot_scalar(uint32_t nnz, const uint8_t *idx, const uint8_t *val, const double *w,
                       uint32_t dim, double *out)
{
    double z = 0;
    uint32_t prev = 0;
    bool ok = true;
    for (uint32_t i = 0; i < nnz; i++) {
        uint32_t j = em_load_le32(idx + (size_t)4 * i);
        double v;
        memcpy(&v, val + (size_t)8 * i, 8);
        ok &= j < dim && (i == 0 || j > prev);
        prev = j;
        z += v * w[j < dim ? j : 0];
    }
    *out = z;
    return ok;
}

static void axpy_scalar(uint32_t nnz, const uint8_t *idx, const uint8_t *val, double a,
                        double *g)
{
    for (uint32_t i = 0; i < nnz; i++) {
        double v;
        memcpy(&v, val + (size_t)8 * i, 8);
        g[em_load_le32(idx + (size_t)4 * i)] += a * v;
    }
}

#ifdef LIN_X86
/* The indices of entries i..i+7 (mask m: the ones that exist) widened to 64 bits. */
LIN_AVX512 static inline __m512i load_idx(const uint8_t *idx, uint32_t i, __mmask8 m)
{
    __m512i j32 = _mm512_maskz_loadu_epi32((__mmask16)m, idx + (size_t)4 * i);
    return _mm512_cvtepu32_epi64(_mm512_castsi512_si256(j32));
}

LIN_AVX512 static bool dot_avx512(uint32_t nnz, const uint8_t *idx, const uint8_t *val,
                                  const double *w, uint32_t dim, double *out)
{
    __m512d acc = _mm512_setzero_pd();
    __m512i vdim = _mm512_set1_epi64((long long)dim);
    __m512i prev = _mm512_set1_epi64(-1);   /* lane 7: the index before the group */
    __mmask8 bad = 0;
    for (uint32_t i = 0; i < nnz; i += 8) {
        __mmask8 m = nnz - i >= 8 ? 0xff : (__mmask8)((1u << (nnz - i)) - 1);
        __m512i j = load_idx(idx, i, m);
        /* before[l] = index of entry l - 1 (lane 0: the previous group's last). */
        __m512i before = _mm512_alignr_epi64(j, prev, 7);
        __mmask8 in = _mm512_mask_cmplt_epu64_mask(m, j, vdim);
        __mmask8 asc = i == 0 ? (__mmask8)(_mm512_mask_cmpgt_epu64_mask(m, j, before) | 1)
                              : _mm512_mask_cmpgt_epu64_mask(m, j, before);
        bad |= (__mmask8)(m & ~(in & asc));
        __m512d v = _mm512_maskz_loadu_pd(in, val + (size_t)8 * i);
        __m512d wj = _mm512_mask_i64gather_pd(_mm512_setzero_pd(), in, j, w, 8);
        acc = _mm512_fmadd_pd(v, wj, acc);
        prev = j;
    }
    *out = _mm512_reduce_add_pd(acc);
    return bad == 0;
}

LIN_AVX512 static void axpy_avx512(uint32_t nnz, const uint8_t *idx, const uint8_t *val,
                                   double a, double *g)
{
    __m512d va = _mm512_set1_pd(a);
    for (uint32_t i = 0; i < nnz; i += 8) {
        __mmask8 m = nnz - i >= 8 ? 0xff : (__mmask8)((1u << (nnz - i)) - 1);
        __m512i j = load_idx(idx, i, m);
        __m512d v = _mm512_maskz_loadu_pd(m, val + (size_t)8 * i);
        __m512d gj = _mm512_mask_i64gather_pd(_mm512_setzero_pd(), m, j, g, 8);
        _mm512_mask_i64scatter_pd(g, m, j, _mm512_fmadd_pd(va, v, gj), 8);
    }
}
#endif

bool em__lin_sparse_dot(uint32_t nnz, const uint8_t *idx, const uint8_t *val, const double *w,
                        uint32_t dim, double *out)
{
#ifdef LIN_X86
    if (em_la_simd() >= 3)
        return dot_avx512(nnz, idx, val, w, dim, out);
#endif
    return dot_scalar(nnz, idx, val, w, dim, out);
}

void em__lin_sparse_axpy(uint32_t nnz, const uint8_t *idx, const uint8_t *val, double a,
                         double *g)
{
#ifdef LIN_X86
    if (em_la_simd() >= 3) {
        axpy_avx512(nnz, idx, val, a, g);
        return;
    }
#endif
    axpy_scalar(nnz, idx, val, a, g);
}

bool em__lin_sparse_rec(em_slice rec, double *label, uint32_t *nnz, const uint8_t **idx,
                        const uint8_t **val)
{
    if (rec.n < 16)
        return false;
    uint32_t k = em_load_le32(rec.p + 8);
    if (k > (rec.n - 16) / 12 || 8 + em_ml_sparse_size(k) != rec.n)
        return false;
    memcpy(label, rec.p, 8);
    *nnz = k;
    *idx = rec.p + 16;
    *val = rec.p + rec.n - (size_t)8 * k;
    return true;
}

/* ---------------------------------------------------------------- column moments */

static int moments_layout(const em_fn_ctx *fc, size_t size, em_ml_data *lay, em_err *err)
{
    int rc = em_ml_layout_decode(fc->blob, lay, err);
    if (rc < 0)
        return rc;
    if (!lay->sparse || !lay->labeled || size != 8 * (1 + 3 * (size_t)lay->dim))
        return em_err_set(err, EM_EINVAL, "ml.linear.moments: accumulator of %zu bytes for "
                          "%u columns", size, lay->dim);
    return 0;
}

int em__lin_fn_moments(const em_fn_ctx *fc, void *acc, size_t size, const em_rec_batch *in,
                       em_err *err)
{
    em_ml_data lay;
    int rc = moments_layout(fc, size, &lay, err);
    if (rc < 0)
        return rc;
    size_t d = lay.dim;
    double *a = acc, *cnt = a + 1, *mean = cnt + d, *m2 = mean + d;
    em_batch_iter it;
    em_rec r;
    em_batch_iter_init_raw(&it, in->kind, in->width, in->data, in->nbytes);
    while (em_batch_iter_next(&it, &r)) {
        em_ml_row row;
        if ((rc = em_ml_row_view(&lay, r.val, &row, err)) < 0)
            return rc;
        a[0] += 1;
        for (uint32_t q = 0; q < row.sp.nnz; q++) {
            uint32_t j = em_ml_sparse_idx(&row.sp, q);
            double v = em_ml_sparse_val(&row.sp, q), c = ++cnt[j], delta = v - mean[j];
            mean[j] += delta / c;
            m2[j] += delta * (v - mean[j]);
        }
    }
    return 0;
}

int em__lin_fn_moments_merge(const em_fn_ctx *fc, void *acc, const void *other, size_t size,
                             em_err *err)
{
    em_ml_data lay;
    int rc = moments_layout(fc, size, &lay, err);
    if (rc < 0)
        return rc;
    size_t d = lay.dim;
    double *a = acc;
    const double *b = other;
    a[0] += b[0];
    for (size_t j = 0; j < d; j++) {
        double na = a[1 + j], nb = b[1 + j], n = na + nb;
        if (nb == 0)
            continue;
        double delta = b[1 + d + j] - a[1 + d + j];
        a[1 + d + j] += delta * nb / n;
        a[1 + 2 * d + j] += b[1 + 2 * d + j] + delta * delta * na * nb / n;
        a[1 + j] = n;
    }
    return 0;
}

int em__lin_sparse_moments(const em_ml_data *d, double *mean, double *var, em_err *err)
{
    uint8_t lay[EM_ML_LAYOUT_SIZE];
    size_t dim = d->dim, size = 8 * (1 + 3 * dim);
    em_ml_layout_encode(d, lay);
    em_agg a = {.size = size, .seq = "ml.linear.moments", .merge = "ml.linear.moments_merge",
                .ctx = em_slice_make(lay, sizeof lay)};
    /* As em__lin_pass: depth 1 (every task's accumulator to the driver) while they are
     * small in total, a tree beyond. */
    uint64_t total = (uint64_t)em_rdd_num_partitions(d->rows) * size;
    em_vbuf v;
    em_vbuf_init(&v);
    int rc = em_rdd_tree_aggregate_acc(d->rows, &a, total <= ((uint64_t)64 << 20) ? 1 : 2,
                                       &v, err);
    if (rc == 0 && v.len != size)
        rc = em_err_set(err, EM_ECORRUPT, "ml.linear.moments: result of %zu bytes", v.len);
    if (rc == 0) {
        const double *acc = (const double *)v.data, *cnt = acc + 1, *mn = cnt + dim,
                     *m2 = mn + dim;
        double n = acc[0];
        for (size_t j = 0; j < dim; j++) {
            double c = cnt[j];
            mean[j] = n > 0 ? mn[j] * c / n : 0;
            double M2 = n > 0 ? m2[j] + mn[j] * mn[j] * c * (n - c) / n : 0;
            var[j] = n > 1 ? fmax(M2, 0) / (n - 1) : 0;
        }
    }
    em_vbuf_destroy(&v);
    return rc;
}
