/* mllib/decomp/lanczos.c - the top-k eigenpairs of A^T A for a wide distributed matrix by
 * thick-restart Lanczos (Wu & Simon, "Thick-restart Lanczos method for large symmetric
 * eigenvalue problems", SIAM J. Matrix Anal. Appl. 22(2), 2000).
 *
 * DESIGN. The operator x -> A^T (A x) is one distributed pass: x is broadcast, every task
 * folds its rows into a d-vector accumulator (kernels.c, ml.decomp.op: dgemv pairs per
 * dense batch, one dot and one axpy per sparse row) and the partial vectors are summed by
 * tree aggregation. Everything else runs on the driver with O(ncv d) memory:
 *   - basis Q = [q_0 .. q_m] (rows of d doubles) and the projection H = Q^T Op Q, filled
 *     column by column with the coefficients of FULL reorthogonalisation (classical
 *     Gram-Schmidt, twice: Giraud et al.'s "twice is enough"), so H is the exact
 *     projection whatever its shape (tridiagonal, or arrowhead after a restart);
 *   - after m = ncv columns, the Ritz pairs (theta_i, Q s_i) of H (dsyevr). The residual of
 *     pair i is |beta_m s_{m,i}|, beta_m the norm of the last residual vector. The top k
 *     pairs converge when it is <= tol * theta_1 (or when theta_i plus its residual is
 *     below the cut: such values are dropped anyway);
 *   - otherwise restart thick: keep the l best Ritz vectors and the residual vector as the
 *     new basis (H becomes diag(theta) plus the arrow the next column recomputes) and
 *     extend again. Each restart costs m - l distributed products.
 * Breakdown (an invariant subspace: beta ~ 0, e.g. a rank-deficient A) continues with a
 * random vector orthogonal to the basis; a basis spanning all d columns is exact. */
#include <math.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>

#include "mllib/decomp/decomp_int.h"
#include "mllib/linalg/linalg.h"

typedef struct lz {
    em_context *sc;
    const em_ml_data *a;
    size_t d;
    uint32_t m;          /* basis vectors before a restart (ncv) */
    uint32_t depth;
    double *q;           /* (m + 1) x d: the basis */
    double *q2;          /* m x d: the restarted basis (swapped with q) */
    double *h;           /* (m + 1) x (m + 1) projection, row-major */
    double *coef;        /* m + 1 coefficients, then m + 1 of scratch */
    double *theta, *s;   /* m Ritz values (descending), m x m vectors (column i: theta_i) */
    double *res;         /* m residual norms */
    double normest;      /* the largest ||Op q|| seen: a lower bound of ||A||^2 */
    em_rng rng;
    em__dc_lanczos_stats st;
    uint32_t max_products;
} lz;

/* y = A^T (A x): one distributed pass. */
static int apply(lz *z, const double *x, double *y, em_err *err)
{
    uint8_t blob[EM__DC_BLOB_SIZE];
    size_t d = z->d;
    if (z->st.products >= z->max_products)
        return em_err_set(err, EM_EINVAL, "lanczos: not converged after %u products "
                          "(raise the product limit or the basis size)", z->st.products);
    uint32_t id = em_broadcast(z->sc, em_slice_make(x, d * 8), err);
    if (!id)
        return em_err_prefix(err, "lanczos: broadcast");
    em__dc_blob b = em__dc_blob_of(z->a);
    b.nvec = 1;
    b.bcast = id;
    em__dc_blob_encode(&b, blob);
    em_agg g = {.size = 8 * (1 + d), .seq = "ml.decomp.op", .merge = "ml.decomp.sum_merge",
                .ctx = em_slice_make(blob, sizeof blob)};
    em_vbuf v;
    em_vbuf_init(&v);
    int rc = em_rdd_tree_aggregate_acc(z->a->rows, &g, z->depth, &v, err);
    em_broadcast_destroy(z->sc, id);
    if (rc == 0 && v.len != g.size)
        rc = em_err_set(err, EM_EINVAL, "lanczos: product of %zu bytes", v.len);
    if (rc == 0) {
        double n;
        memcpy(&n, v.data, 8);
        memcpy(y, v.data + 8, d * 8);
        z->st.nrows = (uint64_t)n;
        z->st.products++;
    }
    em_vbuf_destroy(&v);
    return rc < 0 ? em_err_prefix(err, "lanczos") : 0;
}

static double norm2(size_t d, const double *x)
{
    return cblas_dnrm2((int)d, x, 1);
}

/* w -= Q_{0..nq} coef, coef = Q^T w, twice; the coefficients summed into z->coef. */
static void orth(lz *z, uint32_t nq, double *w)
{
    int d = (int)z->d;
    double *c2 = z->coef + z->m + 1;   /* coef has 2 (m + 1) doubles: the second half */
    memset(z->coef, 0, nq * sizeof *z->coef);
    for (int pass = 0; pass < 2; pass++) {
        cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)nq, d, 1.0, z->q, d, w, 1, 0.0, c2, 1);
        cblas_dgemv(CblasRowMajor, CblasTrans, (int)nq, d, -1.0, z->q, d, c2, 1, 1.0, w, 1);
        for (uint32_t i = 0; i < nq; i++)
            z->coef[i] += c2[i];
    }
}

/* Row nq of q: a random unit vector orthogonal to rows 0..nq-1. */
static void random_vector(lz *z, uint32_t nq)
{
    double *x = z->q + (size_t)nq * z->d;
    for (int tries = 0; tries < 8; tries++) {
        for (size_t i = 0; i < z->d; i++)
            x[i] = 2 * em_rng_double(&z->rng) - 1;
        double n0 = norm2(z->d, x);
        if (nq)
            orth(z, nq, x);
        double n1 = norm2(z->d, x);
        if (n1 > 1e-3 * n0) {
            cblas_dscal((int)z->d, 1 / n1, x, 1);
            return;
        }
    }
    memset(x, 0, z->d * sizeof *x);   /* nq == d: the caller stops before using it */
}

/* Extends the basis from column `from` to m columns; *beta is the last residual norm.
 * *mm is set below m when the basis spans all d columns. */
static int extend(lz *z, uint32_t from, double *beta, uint32_t *mm, em_err *err)
{
    size_t d = z->d, ld = z->m + 1;
    double breakdown = pow(2.220446049250313e-16, 0.75);
    for (uint32_t j = from; j < z->m; j++) {
        double *qj = z->q + j * d, *w = z->q + (j + 1) * d;
        int rc = apply(z, qj, w, err);
        if (rc < 0)
            return rc;
        double n0 = norm2(d, w);
        if (n0 > z->normest)
            z->normest = n0;
        orth(z, j + 1, w);
        for (uint32_t i = 0; i <= j; i++)
            z->h[i * ld + j] = z->h[j * ld + i] = z->coef[i];
        double b = norm2(d, w);
        if (b <= breakdown * z->normest) {
            b = 0;
            if (j + 1 == d) {
                *mm = j + 1;
                *beta = 0;
                return 0;
            }
            random_vector(z, j + 1);
        } else {
            cblas_dscal((int)d, 1 / b, w, 1);
        }
        z->h[(j + 1) * ld + j] = z->h[j * ld + j + 1] = b;
        *beta = b;
    }
    *mm = z->m;
    return 0;
}

/* Ritz pairs of the leading mm x mm block of H: z->theta descending, z->s (mm x mm,
 * column i for theta_i, leading dimension m), residuals |beta s_{mm-1,i}|. */
static int ritz(lz *z, uint32_t mm, double beta, em_err *err)
{
    size_t ld = z->m + 1;
    double *a = em_malloc((size_t)mm * mm * sizeof *a), *w = em_malloc(mm * sizeof *w);
    double *v = em_malloc((size_t)mm * mm * sizeof *v);
    lapack_int *supp = em_malloc(2 * (size_t)mm * sizeof *supp), got = 0, info = -1;
    if (a && w && v && supp) {
        for (uint32_t i = 0; i < mm; i++)
            for (uint32_t j = 0; j < mm; j++)   /* symmetrised against rounding */
                a[i * mm + j] = 0.5 * (z->h[i * ld + j] + z->h[j * ld + i]);
        info = LAPACKE_dsyevr(LAPACK_COL_MAJOR, 'V', 'A', 'L', (lapack_int)mm, a,
                              (lapack_int)mm, 0, 0, 0, 0, LAPACKE_dlamch('S'), &got, w, v,
                              (lapack_int)mm, supp);
    }
    int rc = 0;
    if (!a || !w || !v || !supp)
        rc = em_err_set(err, EM_ENOMEM, "lanczos: Ritz problem of %u", mm);
    else if (info != 0 || got != (lapack_int)mm)
        rc = em_err_set(err, EM_EINVAL, "lanczos: dsyevr failed (info %d); is the input "
                        "finite?", (int)info);
    for (uint32_t c = 0; rc == 0 && c < mm; c++) {   /* ascending -> descending */
        uint32_t src = mm - 1 - c;
        z->theta[c] = w[src];
        for (uint32_t i = 0; i < mm; i++)
            z->s[(size_t)i * z->m + c] = v[(size_t)src * mm + i];
        z->res[c] = fabs(beta * v[(size_t)src * mm + mm - 1]);
    }
    em_free(a);
    em_free(w);
    em_free(v);
    em_free(supp);
    return rc;
}

static bool converged(const lz *z, uint32_t k, double tol, double cut)
{
    double t1 = fmax(z->theta[0], 0);
    for (uint32_t i = 0; i < k; i++)
        if (z->res[i] > tol * t1 && z->theta[i] + z->res[i] >= cut * t1)
            return false;
    return true;
}

/* Thick restart: rows 0..l-1 of the basis become the Ritz vectors Q s_i, row l the last
 * residual vector; H = diag(theta_0..l-1). */
static void restart(lz *z, uint32_t l)
{
    size_t d = z->d, ld = z->m + 1;
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)l, (int)d, (int)z->m, 1.0, z->s,
                (int)z->m, z->q, (int)d, 0.0, z->q2, (int)d);
    memcpy(z->q2 + l * d, z->q + (size_t)z->m * d, d * sizeof *z->q);
    double *t = z->q;
    z->q = z->q2;
    z->q2 = t;
    memset(z->h, 0, ld * ld * sizeof *z->h);
    for (uint32_t i = 0; i < l; i++)
        z->h[i * ld + i] = z->theta[i];
    z->st.restarts++;
}

static int lz_alloc(lz *z, em_err *err)
{
    size_t d = z->d, m = z->m, cells;
    if (!em_size_mul(m + 1, d * 8, &cells))
        return em_err_set(err, EM_ENOMEM, "lanczos: basis of %zu x %zu", m + 1, d);
    z->q = em_malloc_big(cells);
    z->q2 = em_malloc_big(cells);   /* one row more than needed: the swap keeps sizes */
    z->h = em_calloc((m + 1) * (m + 1), sizeof *z->h);
    z->coef = em_calloc(2 * (m + 1), sizeof *z->coef);
    z->theta = em_calloc(m, sizeof *z->theta);
    z->res = em_calloc(m, sizeof *z->res);
    z->s = em_calloc(m * m, sizeof *z->s);
    if (!z->q || !z->q2 || !z->h || !z->coef || !z->theta || !z->res || !z->s)
        return em_err_set(err, EM_ENOMEM, "lanczos: basis of %zu x %zu", m + 1, d);
    return 0;
}

static void lz_free(lz *z)
{
    em_free_big(z->q);
    em_free_big(z->q2);
    em_free(z->h);
    em_free(z->coef);
    em_free(z->theta);
    em_free(z->res);
    em_free(z->s);
}

/* Iterates until the top k Ritz pairs converge; leaves them in z (mm basis vectors). */
static int iterate(lz *z, uint32_t k, double tol, double cut, uint32_t *mm, em_err *err)
{
    double beta = 0;
    uint32_t from = 0;
    random_vector(z, 0);
    for (;;) {
        int rc = extend(z, from, &beta, mm, err);
        if (rc == 0)
            rc = ritz(z, *mm, beta, err);
        if (rc < 0)
            return rc;
        if (*mm < z->m || converged(z, k, tol, cut))
            return 0;
        /* Keep k plus half the rest: more kept vectors, faster convergence per restart;
         * more new ones, more progress per restart (Wu & Simon's trade-off). */
        uint32_t l = k + (z->m - k) / 2;
        if (l >= z->m)
            l = z->m - 1;
        restart(z, l);
        from = l;
    }
}

int em__dc_lanczos(em_context *sc, const em_ml_data *a, const em_svd_opts *o, uint32_t k,
                   double cut, double *vals, double *vecs, em__dc_lanczos_stats *st,
                   em_err *err)
{
    size_t d = a->dim;
    uint32_t m = o->ncv ? o->ncv : (2 * k + 1 > k + 20 ? 2 * k + 1 : k + 20);
    if (m > d)
        m = (uint32_t)d;
    if (k == 0 || k > d)
        return em_err_set(err, EM_EINVAL, "lanczos: k = %u of %zu columns", k, d);
    if (m <= k && m < d)
        return em_err_set(err, EM_EINVAL, "lanczos: basis size %u must exceed k = %u", m, k);
    lz z = {.sc = sc, .a = a, .d = d, .m = m, .depth = o->depth ? o->depth : 2,
            .max_products = o->max_products ? o->max_products
                                            : (30 * m > 300 ? 30 * m : 300)};
    em_rng_seed(&z.rng, o->seed ^ 0x5eedcafef00dULL);
    em_la_init();
    uint32_t mm = 0;
    int rc = lz_alloc(&z, err);
    if (rc == 0)
        rc = iterate(&z, k, o->tol > 0 ? o->tol : 1e-10, cut, &mm, err);
    if (rc == 0) {
        memcpy(vals, z.theta, k * sizeof *vals);
        /* vecs (d x k) = Q^T S_k over the mm basis vectors. */
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d, (int)k, (int)mm, 1.0,
                    z.q, (int)d, z.s, (int)z.m, 0.0, vecs, (int)k);
        em__dc_fix_signs((uint32_t)d, k, vecs);
    }
    if (st)
        *st = z.st;
    lz_free(&z);
    return rc;
}
