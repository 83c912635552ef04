/* mllib/decomp/kernels.c - the task functions of SVD and PCA ("ml.decomp.*"): Gramian and
 * covariance accumulation, the A^T (A V) product of Lanczos, and the row map that computes
 * U or a PCA projection. Blob and accumulator layouts: decomp_int.h.
 *
 * DENSE rows arrive as em_iter_next_batch matrices (row-major, 64-byte aligned, leading
 * dimension d, or d + 1 with the label first) and go to BLAS whole: dsyrk for A^T A, dgemv
 * or dgemm for A^T (A V). SPARSE rows are walked record by record; their bytes are
 * untrusted (size, ascending indices below d are checked) and read with unaligned loads.
 * Broadcast values are not necessarily 8-byte aligned (they sit inside a BYTES batch):
 * sparse loops read them with unaligned loads, BLAS gets an aligned copy. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <cblas.h>

#include "mllib/decomp/decomp_int.h"
#include "mllib/linalg/linalg.h"

/* ---------------------------------------------------------------- blob */

void em__dc_blob_encode(const em__dc_blob *b, uint8_t out[EM__DC_BLOB_SIZE])
{
    memset(out, 0, EM__DC_BLOB_SIZE);
    em_store_le32(out, EM__DC_MAGIC);
    out[4] = b->sparse;
    out[5] = b->labeled;
    out[6] = b->centre;
    em_store_le32(out + 8, b->dim);
    em_store_le32(out + 12, b->nvec);
    em_store_le32(out + 16, b->bcast);
}

int em__dc_blob_decode(em_slice blob, em__dc_blob *out, em_err *err)
{
    const uint8_t *p = blob.p;
    if (blob.n != EM__DC_BLOB_SIZE || em_load_le32(p) != EM__DC_MAGIC || p[4] > 1 ||
        p[5] > 1 || p[6] > 1)
        return em_err_set(err, EM_ECORRUPT, "ml.decomp: context blob of %zu bytes is not "
                          "a decomposition context", blob.n);
    *out = (em__dc_blob){p[4], p[5], p[6], em_load_le32(p + 8), em_load_le32(p + 12),
                         em_load_le32(p + 16)};
    if (out->dim == 0 || out->dim > EM_DECOMP_MAX_DIM || out->nvec > EM_DECOMP_MAX_DIM)
        return em_err_set(err, EM_ECORRUPT, "ml.decomp: context: dim %u, %u vectors",
                          out->dim, out->nvec);
    return 0;
}

em__dc_blob em__dc_blob_of(const em_ml_data *a)
{
    return (em__dc_blob){.sparse = a->sparse, .labeled = a->labeled, .dim = a->dim};
}

/* ---------------------------------------------------------------- rows of a batch */

/* A dense batch as a matrix: *a (m rows, leading dimension *ld). */
static int dense_view(const em__dc_blob *b, const em_rec_batch *in, const double **a,
                      int *m, int *ld, em_err *err)
{
    uint64_t w = 8 * ((uint64_t)b->dim + b->labeled);
    if (b->sparse || in->kind != EM_REC_FIXED || in->width != w || in->nrecs > INT32_MAX ||
        ((uintptr_t)in->data & 7))
        return em_err_set(err, EM_EINVAL, "ml.decomp: a batch of %llu records of kind %d "
                          "and width %u where dense rows of %llu bytes were expected",
                          (unsigned long long)in->nrecs, (int)in->kind, in->width,
                          (unsigned long long)w);
    *a = (const double *)(const void *)in->data + b->labeled;
    *m = (int)in->nrecs;
    *ld = (int)(b->dim + b->labeled);
    return 0;
}

/* Views one sparse record (labeled: after its label) with rows.h's checked view. */
static int sp_view(const em__dc_blob *b, em_slice rec, em_ml_sparse *out, em_err *err)
{
    size_t skip = b->labeled ? 8 : 0;
    if (rec.n < skip)
        return em_err_set(err, EM_ECORRUPT, "ml.decomp: labeled sparse row of %zu bytes",
                          rec.n);
    int rc = em_ml_sparse_view(em_slice_make(rec.p + skip, rec.n - skip), b->dim, out, err);
    return rc < 0 ? em_err_prefix(err, "ml.decomp") : 0;
}

/* Calls fn(b, row, ud) for each sparse record of a BYTES batch. */
static int sp_each(const em__dc_blob *b, const em_rec_batch *in,
                   void (*fn)(const em_ml_sparse *row, void *ud), void *ud, em_err *err)
{
    if (!b->sparse || in->kind != EM_REC_BYTES)
        return em_err_set(err, EM_EINVAL, "ml.decomp: a batch of kind %d where sparse rows "
                          "were expected", (int)in->kind);
    em_batch_iter it;
    em_rec r;
    em_ml_sparse s;
    em_batch_iter_init_raw(&it, in->kind, in->width, in->data, in->nbytes);
    while (em_batch_iter_next(&it, &r)) {
        int rc = sp_view(b, r.val, &s, err);
        if (rc < 0)
            return rc;
        fn(&s, ud);
    }
    return 0;
}

typedef enum acc_kind { ACC_GRAM, ACC_COV, ACC_OP } acc_kind;
static const char *const acc_names[] = {"gram", "cov", "op"};

/* Decodes the blob into *b and checks the accumulator's size for its kind. */
static int acc_check(const em_fn_ctx *c, size_t size, acc_kind kind, em__dc_blob *b,
                     em_err *err)
{
    int rc = em__dc_blob_decode(c->blob, b, err);
    if (rc < 0)
        return rc;
    if (kind == ACC_COV && b->sparse)
        return em_err_set(err, EM_EINVAL, "ml.decomp.cov: dense rows only");
    size_t d = b->dim;
    size_t nd = kind == ACC_OP ? 1 + d * b->nvec : 1 + d + d * d;
    if (size != 8 * nd)
        return em_err_set(err, EM_EINVAL, "ml.decomp.%s: accumulator of %zu bytes, expected "
                          "%zu", acc_names[kind], size, 8 * nd);
    return 0;
}

/* ---------------------------------------------------------------- Gramian */

typedef struct gram_ud {
    double *acc;
    uint32_t d;
} gram_ud;

/* acc[0] += 1, s += x, G += x x^T (upper: the indices ascend). */
static void gram_sparse_row(const em_ml_sparse *s, void *ud)
{
    gram_ud *u = ud;
    double *sum = u->acc + 1, *g = u->acc + 1 + u->d;
    u->acc[0] += 1;
    for (uint32_t i = 0; i < s->nnz; i++) {
        uint32_t a = em_ml_sparse_idx(s, i);
        double va = em_ml_sparse_val(s, i);
        double *ga = g + (size_t)a * u->d;
        sum[a] += va;
        for (uint32_t q = i; q < s->nnz; q++)
            ga[em_ml_sparse_idx(s, q)] += va * em_ml_sparse_val(s, q);
    }
}

int em__dc_fn_gram(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in,
                   em_err *err)
{
    em__dc_blob b;
    int rc = acc_check(c, size, ACC_GRAM, &b, err);
    if (rc < 0)
        return rc;
    double *x = acc;
    if (b.sparse)
        return sp_each(&b, in, gram_sparse_row, &(gram_ud){x, b.dim}, err);
    const double *a;
    int m, ld, d = (int)b.dim;
    if ((rc = dense_view(&b, in, &a, &m, &ld, err)) < 0)
        return rc;
    double *sum = x + 1;
    x[0] += m;
    for (int r = 0; r < m; r++)
        for (int j = 0; j < d; j++)
            sum[j] += a[(size_t)r * ld + j];
    em_la_init();
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, m, 1.0, a, ld, 1.0, x + 1 + d, d);
    return 0;
}

/* ---------------------------------------------------------------- covariance */

/* Folds a group of nb rows with mean mub and co-moment already added into M, into the
 * cov accumulator x = [n, mu, M]: M += (n nb / (n + nb)) delta delta^T, mu += delta nb /
 * (n + nb), delta = mub - mu (Chan, Golub & LeVeque 1979). */
static void chan_fold(double *x, int d, double nb, const double *mub, double *delta)
{
    double n = x[0], tot = n + nb;
    double *mu = x + 1;
    if (nb <= 0)
        return;
    for (int j = 0; j < d; j++)
        delta[j] = mub[j] - mu[j];
    if (n > 0)
        cblas_dsyr(CblasRowMajor, CblasUpper, d, n * nb / tot, delta, 1, x + 1 + d, d);
    for (int j = 0; j < d; j++)
        mu[j] += delta[j] * (nb / tot);
    x[0] = tot;
}

int em__dc_fn_cov(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in,
                  em_err *err)
{
    em__dc_blob b;
    const double *a;
    int m, ld, rc = acc_check(c, size, ACC_COV, &b, err);
    if (rc < 0 || (rc = dense_view(&b, in, &a, &m, &ld, err)) < 0)
        return rc;
    int d = (int)b.dim;
    size_t cells;
    double *mub = em_calloc(2 * (size_t)d, sizeof *mub), *xc = NULL;
    if (mub && em_size_mul((size_t)m, (size_t)d * 8, &cells))
        xc = em_malloc_aligned(64, cells);
    if (!xc) {
        em_free(mub);
        return em_err_set(err, EM_ENOMEM, "ml.decomp.cov: batch of %d x %d", m, d);
    }
    for (int r = 0; r < m; r++)
        for (int j = 0; j < d; j++)
            mub[j] += a[(size_t)r * ld + j];
    for (int j = 0; j < d; j++)
        mub[j] /= m;
    for (int r = 0; r < m; r++)
        for (int j = 0; j < d; j++)
            xc[(size_t)r * d + j] = a[(size_t)r * ld + j] - mub[j];
    em_la_init();
    double *x = acc;
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, m, 1.0, xc, d, 1.0, x + 1 + d, d);
    chan_fold(x, d, m, mub, mub + d);
    em_free(xc);
    em_free(mub);
    return 0;
}

int em__dc_fn_cov_merge(const em_fn_ctx *c, void *acc, const void *other, size_t size,
                        em_err *err)
{
    em__dc_blob b;
    int rc = acc_check(c, size, ACC_COV, &b, err);
    if (rc < 0)
        return rc;
    size_t d = b.dim, nm = d * d;
    double *x = acc, *delta = em_malloc(d * sizeof *delta);
    const double *o = other;
    if (!delta)
        return em_err_set(err, EM_ENOMEM, "ml.decomp.cov: merge of dim %zu", d);
    for (size_t i = 0; i < nm; i++)
        x[1 + d + i] += o[1 + d + i];
    em_la_init();
    chan_fold(x, (int)d, o[0], o + 1, delta);
    em_free(delta);
    return 0;
}

int em__dc_fn_sum_merge(const em_fn_ctx *c, void *acc, const void *other, size_t size,
                        em_err *err)
{
    (void)c;
    if (size % 8)
        return em_err_set(err, EM_EINVAL, "ml.decomp: accumulator of %zu bytes", size);
    double *x = acc;
    const double *o = other;
    for (size_t i = 0; i < size / 8; i++)
        x[i] += o[i];
    return 0;
}

/* ---------------------------------------------------------------- A^T (A V) */

typedef struct op_ud {
    double *acc;          /* [n, W (d x b)] */
    const uint8_t *v;     /* V (d x b), unaligned */
    double *t;            /* b scratch */
    uint32_t b;
} op_ud;

static void op_sparse_row(const em_ml_sparse *s, void *ud)
{
    op_ud *u = ud;
    uint32_t nb = u->b;
    double *w = u->acc + 1;
    u->acc[0] += 1;
    if (nb == 1) {
        double t = 0;
        for (uint32_t i = 0; i < s->nnz; i++)
            t += em_ml_sparse_val(s, i) * em_dec_f64(u->v + (size_t)8 * em_ml_sparse_idx(s, i));
        for (uint32_t i = 0; i < s->nnz; i++)
            w[em_ml_sparse_idx(s, i)] += t * em_ml_sparse_val(s, i);
        return;
    }
    memset(u->t, 0, nb * sizeof *u->t);
    for (uint32_t i = 0; i < s->nnz; i++) {
        double va = em_ml_sparse_val(s, i);
        const uint8_t *vr = u->v + (size_t)8 * nb * em_ml_sparse_idx(s, i);
        for (uint32_t j = 0; j < nb; j++)
            u->t[j] += va * em_dec_f64(vr + 8 * (size_t)j);
    }
    for (uint32_t i = 0; i < s->nnz; i++) {
        double va = em_ml_sparse_val(s, i), *wr = w + (size_t)nb * em_ml_sparse_idx(s, i);
        for (uint32_t j = 0; j < nb; j++)
            wr[j] += va * u->t[j];
    }
}

/* W += A^T (A V) for a dense batch; v is aligned. */
static int op_dense(const em__dc_blob *b, double *x, const double *v, const em_rec_batch *in,
                    em_err *err)
{
    const double *a;
    int m, ld, d = (int)b->dim, nb = (int)b->nvec;
    int rc = dense_view(b, in, &a, &m, &ld, err);
    if (rc < 0)
        return rc;
    double *t = em_malloc((size_t)m * nb * sizeof *t);
    if (!t)
        return em_err_set(err, EM_ENOMEM, "ml.decomp.op: batch of %d rows", m);
    em_la_init();
    x[0] += m;
    if (nb == 1) {
        cblas_dgemv(CblasRowMajor, CblasNoTrans, m, d, 1.0, a, ld, v, 1, 0.0, t, 1);
        cblas_dgemv(CblasRowMajor, CblasTrans, m, d, 1.0, a, ld, t, 1, 1.0, x + 1, 1);
    } else {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, nb, d, 1.0, a, ld, v, nb,
                    0.0, t, nb);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, nb, m, 1.0, a, ld, t, nb, 1.0,
                    x + 1, nb);
    }
    em_free(t);
    return 0;
}

int em__dc_fn_op(const em_fn_ctx *c, void *acc, size_t size, const em_rec_batch *in,
                 em_err *err)
{
    em__dc_blob b;
    em_slice v;
    int rc = acc_check(c, size, ACC_OP, &b, err);
    if (rc < 0)
        return rc;
    if (b.nvec == 0 || (rc = em_task_broadcast(c->task, b.bcast, &v, err)) < 0)
        return rc < 0 ? rc : em_err_set(err, EM_EINVAL, "ml.decomp.op: no vectors");
    if (v.n != 8 * (size_t)b.dim * b.nvec)
        return em_err_set(err, EM_EINVAL, "ml.decomp.op: broadcast %u of %zu bytes, expected "
                          "%u x %u doubles", b.bcast, v.n, b.dim, b.nvec);
    if (b.sparse) {
        double *t = em_malloc((size_t)b.nvec * sizeof *t);
        if (!t)
            return em_err_set(err, EM_ENOMEM, "ml.decomp.op: %u vectors", b.nvec);
        rc = sp_each(&b, in, op_sparse_row, &(op_ud){acc, v.p, t, b.nvec}, err);
        em_free(t);
        return rc;
    }
    if (((uintptr_t)v.p & 7) == 0)
        return op_dense(&b, acc, (const double *)(const void *)v.p, in, err);
    double *copy = em_malloc_aligned(64, v.n);
    if (!copy)
        return em_err_set(err, EM_ENOMEM, "ml.decomp.op: copy of %zu bytes", v.n);
    memcpy(copy, v.p, v.n);
    rc = op_dense(&b, acc, copy, in, err);
    em_free(copy);
    return rc;
}

/* ---------------------------------------------------------------- row map */

typedef struct proj {
    const em__dc_blob *b;
    const double *mu;     /* d, or NULL */
    const double *p;      /* d x k */
    const double *scale;  /* k */
    double *mup;          /* k: mu P (sparse centring), or NULL */
    double *out;          /* scratch: rows x k */
    size_t out_rows;
} proj;

static int emit_rows(const proj *pj, const double *o, int m, em_emitter *out, em_err *err)
{
    uint32_t k = pj->b->nvec;
    for (int r = 0; r < m; r++) {
        int rc = em_emit_val(out, em_slice_make(o + (size_t)r * k, 8 * (size_t)k), err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int proj_dense(proj *pj, const em_rec_batch *in, em_emitter *out, em_err *err)
{
    const double *a;
    int m, ld, d = (int)pj->b->dim, k = (int)pj->b->nvec;
    int rc = dense_view(pj->b, in, &a, &m, &ld, err);
    if (rc < 0)
        return rc;
    size_t need = (size_t)m * ((size_t)k + (pj->mu ? (size_t)d : 0));
    if (need > pj->out_rows) {
        em_free(pj->out);
        if (!(pj->out = em_malloc_aligned(64, need * 8)))
            return em_err_set(err, EM_ENOMEM, "ml.decomp.project: batch of %d rows", m);
        pj->out_rows = need;
    }
    double *o = pj->out, *xc = pj->out + (size_t)m * k;
    if (pj->mu) {
        for (int r = 0; r < m; r++)
            for (int j = 0; j < d; j++)
                xc[(size_t)r * d + j] = a[(size_t)r * ld + j] - pj->mu[j];
        a = xc;
        ld = d;
    }
    em_la_init();
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, k, d, 1.0, a, ld, pj->p, k, 0.0,
                o, k);
    for (int r = 0; r < m; r++)
        for (int j = 0; j < k; j++)
            o[(size_t)r * k + j] *= pj->scale[j];
    return emit_rows(pj, o, m, out, err);
}

static int proj_sparse(proj *pj, const em_rec_batch *in, em_emitter *out, em_err *err)
{
    uint32_t k = pj->b->nvec;
    em_batch_iter it;
    em_rec r;
    em_ml_sparse s;
    int rc = 0;
    if (in->kind != EM_REC_BYTES)
        return em_err_set(err, EM_EINVAL, "ml.decomp.project: a batch of kind %d where sparse "
                          "rows were expected", (int)in->kind);
    em_batch_iter_init_raw(&it, in->kind, in->width, in->data, in->nbytes);
    while (rc == 0 && em_batch_iter_next(&it, &r)) {
        if ((rc = sp_view(pj->b, r.val, &s, err)) < 0)
            break;
        double *o = pj->out;
        for (uint32_t j = 0; j < k; j++)
            o[j] = pj->mup ? -pj->mup[j] : 0.0;
        for (uint32_t i = 0; i < s.nnz; i++) {
            double va = em_ml_sparse_val(&s, i);
            const double *pr = pj->p + (size_t)k * em_ml_sparse_idx(&s, i);
            for (uint32_t j = 0; j < k; j++)
                o[j] += va * pr[j];
        }
        for (uint32_t j = 0; j < k; j++)
            o[j] *= pj->scale[j];
        rc = emit_rows(pj, o, 1, out, err);
    }
    return rc;
}

/* Sets up pj from the aligned copy of the broadcast. */
static int proj_init(proj *pj, const em__dc_blob *b, const double *bc, em_err *err)
{
    size_t d = b->dim, k = b->nvec;
    *pj = (proj){.b = b, .mu = b->centre ? bc : NULL};
    pj->p = bc + (b->centre ? d : 0);
    pj->scale = pj->p + d * k;
    pj->out = em_malloc_aligned(64, 8 * k * 2);
    pj->out_rows = 2 * k;
    if (b->sparse && b->centre && (pj->mup = em_calloc(k, sizeof *pj->mup)))
        for (size_t i = 0; i < d; i++)
            for (size_t j = 0; j < k; j++)
                pj->mup[j] += pj->mu[i] * pj->p[i * k + j];
    if (!pj->out || (b->sparse && b->centre && !pj->mup))
        return em_err_set(err, EM_ENOMEM, "ml.decomp.project: scratch of %zu outputs", k);
    return 0;
}

int em__dc_fn_project(const em_fn_ctx *c, uint32_t index, em_iter *in, em_emitter *out,
                      em_err *err)
{
    (void)index;
    em__dc_blob b;
    em_slice v;
    em_rec_batch bt;
    proj pj = {0};
    double *bc = NULL;
    int rc = em__dc_blob_decode(c->blob, &b, err);
    if (rc < 0 || (rc = em_task_broadcast(c->task, b.bcast, &v, err)) < 0)
        return rc;
    size_t d = b.dim, k = b.nvec;
    if (k == 0 || v.n != 8 * ((b.centre ? d : 0) + d * k + k))
        return em_err_set(err, EM_EINVAL, "ml.decomp.project: broadcast %u of %zu bytes for "
                          "dim %zu, %zu outputs", b.bcast, v.n, d, k);
    if (!(bc = em_malloc_aligned(64, v.n)))
        return em_err_set(err, EM_ENOMEM, "ml.decomp.project: %zu bytes", v.n);
    memcpy(bc, v.p, v.n);
    if ((rc = proj_init(&pj, &b, bc, err)) == 0)
        while ((rc = em_iter_next_batch(in, &bt, err)) == 1)
            if ((rc = b.sparse ? proj_sparse(&pj, &bt, out, err)
                               : proj_dense(&pj, &bt, out, err)) < 0)
                break;
    em_free(pj.out);
    em_free(pj.mup);
    em_free(bc);
    return rc < 0 ? rc : 0;
}

/* ---------------------------------------------------------------- registration */

static const em_fn_entry decomp_fns[] = {
    {"ml.decomp.gram", EM_FN_ACC_SEQ, EM_FN(em__dc_fn_gram)},
    {"ml.decomp.cov", EM_FN_ACC_SEQ, EM_FN(em__dc_fn_cov)},
    {"ml.decomp.cov_merge", EM_FN_ACC_MERGE, EM_FN(em__dc_fn_cov_merge)},
    {"ml.decomp.op", EM_FN_ACC_SEQ, EM_FN(em__dc_fn_op)},
    {"ml.decomp.sum_merge", EM_FN_ACC_MERGE, EM_FN(em__dc_fn_sum_merge)},
    {"ml.decomp.project", EM_FN_PARTITION, EM_FN(em__dc_fn_project)},
};

int em_decomp_register(void)
{
    return em_fn_register_table(decomp_fns, sizeof decomp_fns / sizeof decomp_fns[0]);
}
