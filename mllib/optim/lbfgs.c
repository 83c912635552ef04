/* mllib/optim/lbfgs.c - L-BFGS with a strong-Wolfe line search, and OWL-QN for a weighted
 * L1 term (the math and its sources: optim.h).
 *
 * DESIGN: one state struct (work vectors of n doubles and a ring of m (s, y) pairs, all in
 * one allocation). Each iteration: pseudo-gradient pg (= the gradient without L1), the
 * two-loop recursion d = -H pg, OWL-QN's sign constraint on d, a line search, the pair
 * (s, y) kept when s'y > 0 (curvature condition; always true after a strong-Wolfe search
 * on a smooth function, checked anyway for OWL-QN's projected steps). A direction that is
 * not a descent direction (rounding in H) resets the memory to steepest descent. */
#include <math.h>
#include <string.h>

#include "mllib/optim/optim.h"

enum { MAX_LS = 30 };
static const double C1 = 1e-4, C2 = 0.9;

typedef struct opt {
    uint32_t n, m;
    em_optim_fn fn;
    void *ud;
    const double *l1;
    double *x, *g, *pg, *d, *xn, *gn, *s, *y, *rho, *alpha;
    uint32_t npairs, head;   /* pairs held; next slot to write (ring) */
    uint32_t evals;
} opt;

static double dot(uint32_t n, const double *a, const double *b)
{
    double s = 0;
    for (uint32_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static double norm_inf(uint32_t n, const double *a)
{
    double m = 0;
    for (uint32_t i = 0; i < n; i++)
        m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

static double norm2(uint32_t n, const double *a)
{
    return sqrt(dot(n, a, a));
}

/* F(x) = f(x) + sum l1_i |x_i| and the smooth gradient g. */
static int eval(opt *o, const double *x, double *F, double *g, em_err *err)
{
    double f = 0;
    int rc = o->fn(o->ud, x, &f, g, err);
    o->evals++;
    if (rc < 0)
        return rc;
    if (o->l1)
        for (uint32_t i = 0; i < o->n; i++)
            f += o->l1[i] * fabs(x[i]);
    *F = f;
    return 0;
}

/* Andrew & Gao's pseudo-gradient: the one-sided derivative of F that points downhill, 0
 * where neither side descends. Without L1 it is g. */
static void pseudo_grad(const opt *o, const double *x, const double *g, double *pg)
{
    for (uint32_t i = 0; i < o->n; i++) {
        double c = o->l1 ? o->l1[i] : 0;
        if (c == 0)
            pg[i] = g[i];
        else if (x[i] > 0)
            pg[i] = g[i] + c;
        else if (x[i] < 0)
            pg[i] = g[i] - c;
        else if (g[i] + c < 0)
            pg[i] = g[i] + c;
        else if (g[i] - c > 0)
            pg[i] = g[i] - c;
        else
            pg[i] = 0;
    }
}

/* d = -H v by the two-loop recursion over the pairs, newest first (N&W alg. 7.4). */
static void two_loop(opt *o, const double *v, double *d)
{
    uint32_t n = o->n, m = o->m;
    for (uint32_t i = 0; i < n; i++)
        d[i] = -v[i];
    for (uint32_t k = 0; k < o->npairs; k++) {
        uint32_t j = (o->head + m - 1 - k) % m;
        double *s = o->s + (size_t)j * n, *y = o->y + (size_t)j * n;
        o->alpha[j] = o->rho[j] * dot(n, s, d);
        for (uint32_t i = 0; i < n; i++)
            d[i] -= o->alpha[j] * y[i];
    }
    if (o->npairs > 0) {
        uint32_t j = (o->head + m - 1) % m;
        double *y = o->y + (size_t)j * n;
        double gamma = 1 / (o->rho[j] * dot(n, y, y));   /* s'y / y'y */
        for (uint32_t i = 0; i < n; i++)
            d[i] *= gamma;
    }
    for (uint32_t k = o->npairs; k-- > 0;) {
        uint32_t j = (o->head + m - 1 - k) % m;
        double *s = o->s + (size_t)j * n, *y = o->y + (size_t)j * n;
        double beta = o->rho[j] * dot(n, y, d);
        for (uint32_t i = 0; i < n; i++)
            d[i] += (o->alpha[j] - beta) * s[i];
    }
}

/* Keeps (s, y) = (xn - x, gn - g) when s'y > 0. */
static void push_pair(opt *o)
{
    uint32_t n = o->n;
    double *s = o->s + (size_t)o->head * n, *y = o->y + (size_t)o->head * n;
    for (uint32_t i = 0; i < n; i++) {
        s[i] = o->xn[i] - o->x[i];
        y[i] = o->gn[i] - o->g[i];
    }
    double sy = dot(n, s, y), yy = dot(n, y, y);
    if (!(sy > 1e-300) || !(yy > 0) || !isfinite(sy) || !isfinite(yy))
        return;
    o->rho[o->head] = 1 / sy;
    o->head = (o->head + 1) % o->m;
    if (o->npairs < o->m)
        o->npairs++;
}

/* xn = x + a d, projected onto the orthant of x (OWL-QN; where x_i = 0, the orthant of
 * -pg_i). Without L1 no projection. */
static void step_to(opt *o, double a)
{
    for (uint32_t i = 0; i < o->n; i++) {
        double v = o->x[i] + a * o->d[i];
        if (o->l1 && o->l1[i] != 0) {
            double sgn = o->x[i] != 0 ? o->x[i] : -o->pg[i];
            if (v * sgn <= 0)
                v = 0;
        }
        o->xn[i] = v;
    }
}

/* OWL-QN: backtracking until F(xn) <= F + c1 pg'(xn - x). 1 accepted, 0 failed, <0. */
static int search_backtrack(opt *o, double F, double a, double *Fn, em_err *err)
{
    for (int i = 0; i < MAX_LS; i++, a *= 0.5) {
        step_to(o, a);
        int rc = eval(o, o->xn, Fn, o->gn, err);
        if (rc < 0)
            return rc;
        double dec = 0;
        for (uint32_t j = 0; j < o->n; j++)
            dec += o->pg[j] * (o->xn[j] - o->x[j]);
        if (isfinite(*Fn) && *Fn <= F + C1 * dec)
            return 1;
    }
    return 0;
}

/* Minimizer of the cubic through (a, fa, da), (b, fb, db), safeguarded into the middle
 * 80% of the interval; bisection when the cubic has no minimizer there (N&W eq. 3.59). */
static double cubic_min(double a, double fa, double da, double b, double fb, double db)
{
    double lo = a < b ? a : b, hi = a < b ? b : a, w = hi - lo;
    double d1 = da + db - 3 * (fa - fb) / (a - b);
    double disc = d1 * d1 - da * db;
    double t = (a + b) / 2;
    if (disc >= 0 && isfinite(disc)) {
        double d2 = (b > a ? 1 : -1) * sqrt(disc);
        double den = db - da + 2 * d2;
        if (den != 0)
            t = b - (b - a) * (db + d2 - d1) / den;
    }
    if (!isfinite(t) || t < lo + 0.1 * w || t > hi - 0.1 * w)
        t = (a + b) / 2;
    return t;
}

typedef struct ls_pt {
    double a, f, d;   /* step, F, F' along d */
} ls_pt;

/* Evaluates at step a into xn, gn; fills p. */
static int ls_eval(opt *o, double a, ls_pt *p, em_err *err)
{
    step_to(o, a);
    int rc = eval(o, o->xn, &p->f, o->gn, err);
    p->a = a;
    p->d = dot(o->n, o->gn, o->d);
    if (!isfinite(p->f))
        p->f = INFINITY;
    return rc;
}

/* N&W alg. 3.6: lo satisfies sufficient decrease and is the best so far; the minimizer is
 * between lo and hi. */
static int zoom(opt *o, const ls_pt *p0, ls_pt lo, ls_pt hi, double *Fn, em_err *err)
{
    for (int j = 0; j < MAX_LS; j++) {
        ls_pt p;
        double a = isfinite(hi.f) ? cubic_min(lo.a, lo.f, lo.d, hi.a, hi.f, hi.d)
                                  : (lo.a + hi.a) / 2;
        int rc = ls_eval(o, a, &p, err);
        if (rc < 0)
            return rc;
        if (p.f > p0->f + C1 * p.a * p0->d || p.f >= lo.f) {
            hi = p;
        } else {
            if (fabs(p.d) <= -C2 * p0->d) {
                *Fn = p.f;
                return 1;
            }
            if (p.d * (hi.a - lo.a) >= 0)
                hi = lo;
            lo = p;
        }
        if (fabs(hi.a - lo.a) <= 1e-14 * lo.a)
            break;
    }
    if (lo.a > 0 && lo.f < p0->f) {   /* no Wolfe point: take the best decrease seen */
        int rc = ls_eval(o, lo.a, &lo, err);
        *Fn = lo.f;
        return rc < 0 ? rc : 1;
    }
    return 0;
}

/* N&W alg. 3.5: strong-Wolfe search from F along d. 1 accepted (xn, gn, *Fn), 0 failed. */
static int search_wolfe(opt *o, double F, double a, double *Fn, em_err *err)
{
    ls_pt p0 = {0, F, dot(o->n, o->g, o->d)}, prev = p0;
    for (int i = 0; i < MAX_LS; i++, a *= 2) {
        ls_pt p;
        int rc = ls_eval(o, a, &p, err);
        if (rc < 0)
            return rc;
        if (p.f > F + C1 * a * p0.d || (i > 0 && p.f >= prev.f))
            return zoom(o, &p0, prev, p, Fn, err);
        if (fabs(p.d) <= -C2 * p0.d) {
            *Fn = p.f;
            return 1;
        }
        if (p.d >= 0)
            return zoom(o, &p0, p, prev, Fn, err);
        prev = p;
    }
    return 0;
}

/* The search direction into o->d; false when it is not a descent direction. */
static bool direction(opt *o)
{
    two_loop(o, o->pg, o->d);
    if (o->l1)   /* OWL-QN: keep only components that agree in sign with -pg */
        for (uint32_t i = 0; i < o->n; i++)
            if (o->d[i] * o->pg[i] >= 0)
                o->d[i] = 0;
    return dot(o->n, o->d, o->pg) < 0;
}

static void set_steepest(opt *o)
{
    o->npairs = o->head = 0;
    for (uint32_t i = 0; i < o->n; i++)
        o->d[i] = -o->pg[i];
}

/* One iteration: direction, search (retrying steepest descent once). 1 moved, 0 no
 * progress possible, <0 error. */
static int iterate(opt *o, double F, double *Fn, em_err *err)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (attempt > 0 || !direction(o))
            set_steepest(o);
        double a = 1;
        if (o->npairs == 0) {   /* no curvature yet: a first step of length ~1 */
            double dn = sqrt(dot(o->n, o->d, o->d));
            a = dn > 1 ? 1 / dn : 1;
        }
        int rc = o->l1 ? search_backtrack(o, F, a, Fn, err) : search_wolfe(o, F, a, Fn, err);
        if (rc != 0)
            return rc;
        if (o->npairs == 0)
            return 0;   /* steepest descent failed too */
    }
    return 0;
}

static int check_args(uint32_t n, const em_optim_opts *o, em_err *err)
{
    if (n == 0)
        return em_err_set(err, EM_EINVAL, "optim: no variable");
    if (o->l1)
        for (uint32_t i = 0; i < n; i++)
            if (!(o->l1[i] >= 0) || !isfinite(o->l1[i]))
                return em_err_set(err, EM_EINVAL, "optim: L1 weight %u is %g", i, o->l1[i]);
    return 0;
}

static int run(opt *o, const em_optim_opts *oo, em_optim_result *res, em_err *err)
{
    uint32_t maxit = oo->max_iter ? oo->max_iter : 100;
    double tol = oo->tol == 0 ? 1e-6 : oo->tol, gtol = oo->gtol == 0 ? 1e-10 : oo->gtol;
    double F;
    int rc = eval(o, o->x, &F, o->g, err);
    if (rc < 0)
        return rc;
    if (!isfinite(F))
        return em_err_set(err, EM_EINVAL, "optim: objective is %g at the start", F);
    pseudo_grad(o, o->x, o->g, o->pg);
    res->history[0] = F;
    res->reason = "max_iter";
    double g0 = norm2(o->n, o->pg);
    for (uint32_t it = 1; it <= maxit; it++) {
        double gn = norm_inf(o->n, o->pg), Fn;
        if (gtol > 0 && gn <= gtol) {
            res->converged = true;
            res->reason = "gtol";
            break;
        }
        if (oo->grel > 0 && it > 1 && norm2(o->n, o->pg) <= oo->grel * g0) {
            res->converged = true;
            res->reason = "grel";
            break;
        }
        if ((rc = iterate(o, F, &Fn, err)) < 0)
            return rc;
        if (rc == 0) {
            res->reason = "line search";
            break;
        }
        push_pair(o);
        double rel = fabs(F - Fn) / fmax(fmax(fabs(F), fabs(Fn)), 1e-12);
        memcpy(o->x, o->xn, sizeof(double) * o->n);
        memcpy(o->g, o->gn, sizeof(double) * o->n);
        F = Fn;
        pseudo_grad(o, o->x, o->g, o->pg);
        res->iterations = it;
        res->history[it] = F;
        if (oo->progress)
            oo->progress(oo->progress_ud, it, F, norm_inf(o->n, o->pg));
        if (tol > 0 && rel <= tol) {
            res->converged = true;
            res->reason = "tol";
            break;
        }
    }
    res->f = F;
    res->gnorm = norm_inf(o->n, o->pg);
    return 0;
}

int em_optim_minimize(uint32_t n, double *x, em_optim_fn fn, void *ud,
                      const em_optim_opts *oo, em_optim_result *res, em_err *err)
{
    static const em_optim_opts defaults;
    if (!oo)
        oo = &defaults;
    memset(res, 0, sizeof *res);
    int rc = check_args(n, oo, err);
    if (rc < 0)
        return rc;
    uint32_t m = oo->history ? oo->history : 10;
    uint32_t maxit = oo->max_iter ? oo->max_iter : 100;
    opt o = {.n = n, .m = m, .fn = fn, .ud = ud, .l1 = oo->l1};
    size_t nv = 6 * (size_t)n + 2 * (size_t)m * n + 2 * (size_t)m;
    double *mem = em_calloc(nv, sizeof(double));
    res->history = em_malloc(sizeof(double) * ((size_t)maxit + 1));
    if (!mem || !res->history) {
        em_free(mem);
        em_optim_result_destroy(res);
        return em_err_set(err, EM_ENOMEM, "optim: out of memory for %u variables", n);
    }
    o.x = mem;
    o.g = o.x + n;
    o.pg = o.g + n;
    o.d = o.pg + n;
    o.xn = o.d + n;
    o.gn = o.xn + n;
    o.s = o.gn + n;
    o.y = o.s + (size_t)m * n;
    o.rho = o.y + (size_t)m * n;
    o.alpha = o.rho + m;
    memcpy(o.x, x, sizeof(double) * n);
    rc = run(&o, oo, res, err);
    res->evaluations = o.evals;
    if (rc == 0)
        memcpy(x, o.x, sizeof(double) * n);
    else
        em_optim_result_destroy(res);
    em_free(mem);
    return rc;
}

void em_optim_result_destroy(em_optim_result *r)
{
    if (!r)
        return;
    em_free(r->history);
    memset(r, 0, sizeof *r);
}
