/* mllib/feature/hasher.c - the feature hasher (MurmurHash3_x86_32 of the feature index,
 * Spark's hash with seed 42) and the seeded random train/test split (feature.h). */
#include <stdlib.h>
#include <string.h>

#include "mllib/feature/feature_int.h"

#define HASH_SEED 42u   /* Spark's HashingTF/FeatureHasher seed */

static uint32_t rotl32(uint32_t x, int r)
{
    return (x << r) | (x >> (32 - r));
}

/* MurmurHash3_x86_32 (Austin Appleby, public domain, SMHasher's MurmurHash3.cpp): blocks of
 * 4 little-endian bytes mixed with c1/c2, the tail, then the fmix32 finalizer. */
uint32_t em_ml_murmur3_32(const void *key, size_t n, uint32_t seed)
{
    const uint8_t *p = key;
    const uint32_t c1 = 0xcc9e2d51u, c2 = 0x1b873593u;
    uint32_t h = seed, k;
    size_t nb = n / 4;
    for (size_t i = 0; i < nb; i++) {
        k = em_load_le32(p + 4 * i);
        k *= c1;
        k = rotl32(k, 15);
        k *= c2;
        h ^= k;
        h = rotl32(h, 13);
        h = h * 5 + 0xe6546b64u;
    }
    const uint8_t *t = p + 4 * nb;
    k = 0;
    /* The 1-3 tail bytes, little-endian (written without switch fall-through, which
     * clang's -Wimplicit-fallthrough wants annotated). */
    size_t tail = n & 3;
    if (tail >= 3)
        k ^= (uint32_t)t[2] << 16;
    if (tail >= 2)
        k ^= (uint32_t)t[1] << 8;
    if (tail >= 1) {
        k ^= t[0];
        k *= c1;
        k = rotl32(k, 15);
        k *= c2;
        h ^= k;
    }
    h ^= (uint32_t)n;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

static int by_idx(const void *a, const void *b)
{
    uint32_t x = ((const ft_ent *)a)->idx, y = ((const ft_ent *)b)->idx;
    return x < y ? -1 : x > y;
}

int em__ft_hash_row(const ft_ctx *c, const em_ml_row *r, ft_ent **e, size_t *cap, size_t *n,
                    em_err *err)
{
    uint32_t nent = r->dense ? c->in.dim : r->sp.nnz, m = 0;
    ft_ent *g = em_arr_grow(*e, cap, (size_t)nent + 1, sizeof **e);
    if (!g)
        return em_err_set(err, EM_ENOMEM, "feature hasher: a row of %u", nent);
    *e = g;
    for (uint32_t i = 0; i < nent; i++) {
        uint32_t j = r->dense ? i : em_ml_sparse_idx(&r->sp, i);
        double v = r->dense ? em__ft_f64(r->dense + 8 * (size_t)i) : em_ml_sparse_val(&r->sp, i);
        if (v == 0)
            continue;
        uint8_t kb[4];
        em_store_le32(kb, j);
        uint32_t h = em_ml_murmur3_32(kb, 4, HASH_SEED);
        /* Spark's nonNegativeMod of the hash as a signed int. */
        int64_t s = (int32_t)h, mod = (int64_t)c->out_dim;
        uint32_t col = (uint32_t)(((s % mod) + mod) % mod);
        g[m++] = (ft_ent){col, ((c->flags & 1) && (h >> 31)) ? -v : v};
    }
    qsort(g, m, sizeof *g, by_idx);
    size_t w = 0;
    for (uint32_t i = 0; i < m; i++) {   /* sum the entries of one column, drop zeros */
        if (w > 0 && g[w - 1].idx == g[i].idx)
            g[w - 1].val += g[i].val;
        else
            g[w++] = g[i];
    }
    *n = 0;
    for (size_t i = 0; i < w; i++)
        if (g[i].val != 0)
            g[(*n)++] = g[i];
    return 0;
}

int em_ml_feature_hash(const em_ml_data *in, uint32_t num_features, bool alternate_sign,
                       em_ml_data *out, em_err *err)
{
    if (!in || !in->rows || in->dim == 0)
        return em_err_set(err, EM_EINVAL, "feature hasher: no data");
    if (num_features == 0 || num_features > (1u << 30))
        return em_err_set(err, EM_EINVAL, "feature hasher: %u features (1..2^30)",
                          num_features);
    uint8_t h[FT_HDR];
    em__ft_hdr(h, FT_HASH, in, alternate_sign ? 1u : 0u, num_features);
    em_vbuf b;
    em_vbuf_init(&b);
    int rc = em_vbuf_append(&b, h, FT_HDR);
    if (rc < 0)
        rc = em_err_set(err, EM_ENOMEM, "feature hasher");
    else
        rc = em__ft_apply(in, &b, true, num_features, out, err);
    em_vbuf_destroy(&b);
    return rc;
}

/* ---------------------------------------------------------------- random split
 * Blob: u64 seed, f64 fraction, u8 side (1 train: u < fraction; 0 test). */

static double split_u(uint64_t seed, uint32_t part, uint64_t i)
{
    uint64_t h = em_mix64(seed ^ 0x9e3779b97f4a7c15ULL);
    h = em_mix64(h ^ ((uint64_t)part * 0xbf58476d1ce4e5b9ULL));
    h = em_mix64(h ^ i);
    return (double)(h >> 11) * 0x1.0p-53;
}

int em__ft_fn_split(const em_fn_ctx *fc, uint32_t index, em_iter *in, em_emitter *out,
                    em_err *err)
{
    if (fc->blob.n != 17)
        return em_err_set(err, EM_EINVAL, "ml.feature.split: context of %zu bytes", fc->blob.n);
    uint64_t seed = em_load_le64(fc->blob.p), i = 0;
    double frac = em_dec_f64(fc->blob.p + 8);
    bool train = fc->blob.p[16];
    em_rec r;
    int rc;
    while ((rc = em_iter_next(in, &r, err)) == 1) {
        bool in_train = split_u(seed, index, i++) < frac;
        if (in_train == train && (rc = em_emit(out, &r, err)) < 0)
            return rc;
    }
    return rc;
}

int em_ml_random_split(const em_ml_data *in, double train_fraction, uint64_t seed,
                       em_ml_data *train, em_ml_data *test, em_err *err)
{
    int rc;
    if ((rc = em_feature_register()) < 0)
        return em_err_set(err, rc, "random split: a task function name is taken");
    if (!in || !in->rows)
        return em_err_set(err, EM_EINVAL, "random split: no data");
    if (!(train_fraction >= 0 && train_fraction <= 1))
        return em_err_set(err, EM_EINVAL, "random split: fraction %g (0..1)", train_fraction);
    em_ml_data *o[2] = {test, train};
    for (int side = 0; side < 2; side++) {
        uint8_t b[17];
        em_store_le64(b, seed);
        em_enc_f64(b + 8, train_fraction);
        b[16] = (uint8_t)side;
        *o[side] = *in;
        o[side]->nrows = 0;
        o[side]->skipped = 0;
        em_slice ctx = em_slice_make(b, sizeof b);
        o[side]->rows = in->sparse ? em_rdd_map_partitions(in->rows, "ml.feature.split", ctx, false)
                                   : em_rdd_map_partitions_fixed(
                                         in->rows, "ml.feature.split", ctx, false,
                                         8 * (in->dim + (in->labeled ? 1u : 0u)));
    }
    return 0;
}
