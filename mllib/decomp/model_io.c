/* mllib/decomp/model_io.c - saving and loading a PCA model directory.
 *
 * FORMAT (decomp.h): a model directory (mllib/linalg/model_dir.h) of class "ember.pca",
 * version 1: metadata fields "dim", "k", "nrows", "total_variance",
 * "explained_variance_ratio" (k numbers, informative only), and one array "arrays"
 * (arrays.bin, d + k d + k little-endian doubles: mean (d), components (k x d,
 * row-major), explained variance (k)).
 * Loading treats both files as untrusted: model_dir checks the JSON's class, version and
 * array entries, the array file's size and checksum; here the fields are checked, the
 * value count against d and k, and every number must be finite. em_pca_model_decode is the fuzz target
 * (tests/fuzz/fuzz_pca_model.c). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "mllib/decomp/decomp_int.h"
#include "mllib/linalg/model_dir.h"

#define PCA_CLASS "ember.pca"

static size_t arrays_count(uint32_t d, uint32_t k)
{
    return (size_t)d + (size_t)k * d + k;
}

int em_pca_model_save(const em_pca_model *m, const char *dir, em_err *err)
{
    size_t d = m->dim, k = m->k, n = arrays_count(m->dim, m->k);
    double *v = em_malloc(8 * n);
    if (!v)
        return em_err_set(err, EM_ENOMEM, "pca save: %u x %u model", m->k, m->dim);
    memcpy(v, m->mean, 8 * d);
    memcpy(v + d, m->components, 8 * k * d);
    memcpy(v + d + k * d, m->explained_variance, 8 * k);
    json_t *ratio = json_array();
    for (uint32_t i = 0; i < m->k; i++)
        json_array_append_new(ratio, json_real(m->explained_variance_ratio[i]));
    json_t *meta = json_pack("{s:I,s:I,s:I,s:f,s:o}", "dim", (json_int_t)m->dim, "k",
                             (json_int_t)m->k, "nrows", (json_int_t)m->nrows, "total_variance",
                             m->total_variance, "explained_variance_ratio", ratio);
    em_ml_array a = {.name = "arrays", .data = v, .count = n};
    int rc = meta ? em_ml_model_dir_write(dir, PCA_CLASS, 1, meta, &a, 1, err)
                  : em_err_set(err, EM_ENOMEM, "pca save: metadata");
    json_decref(meta);
    em_free(v);
    return rc;
}

typedef struct pca_meta {
    uint64_t dim, k, nrows;
    double total;
} pca_meta;

static int decode_meta(const char *mname, const json_t *j, pca_meta *pm, em_err *err)
{
    int rc;
    if ((rc = em_ml_meta_u64(mname, j, "dim", EM_DECOMP_MAX_GRAM_DIM, &pm->dim, err)) < 0 ||
        (rc = em_ml_meta_u64(mname, j, "k", pm->dim, &pm->k, err)) < 0 ||
        (rc = em_ml_meta_u64(mname, j, "nrows", INT64_MAX, &pm->nrows, err)) < 0 ||
        (rc = em_ml_meta_f64(mname, j, "total_variance", &pm->total, err)) < 0)
        return rc;
    if (pm->dim == 0 || pm->k == 0 || !(pm->total >= 0))
        return em_err_set(err, EM_ECORRUPT, "%s: dim %llu, k %llu, total_variance %g (dim "
                          "1..%u, k 1..dim, total_variance >= 0)", mname,
                          (unsigned long long)pm->dim, (unsigned long long)pm->k, pm->total,
                          EM_DECOMP_MAX_GRAM_DIM);
    return 0;
}

/* The model from the checked metadata and the verified values (all finite). */
static int build(const char *name, const pca_meta *pm, const double *v, em_pca_model **out,
                 em_err *err)
{
    uint32_t d = (uint32_t)pm->dim, k = (uint32_t)pm->k;
    em_pca_model *m = em__dc_pca_alloc(d, k);
    if (!m)
        return em_err_set(err, EM_ENOMEM, "%s: model of %u x %u", name, k, d);
    memcpy(m->mean, v, 8 * (size_t)d);
    memcpy(m->components, v + d, 8 * (size_t)k * d);
    memcpy(m->explained_variance, v + d + (size_t)k * d, 8 * (size_t)k);
    m->nrows = pm->nrows;
    m->total_variance = pm->total;
    for (uint32_t i = 0; i < k; i++)
        m->explained_variance_ratio[i] = pm->total > 0 ? m->explained_variance[i] / pm->total : 0;
    *out = m;
    return 0;
}

int em_pca_model_decode(const char *name, const uint8_t *meta, size_t meta_len,
                        const uint8_t *arrays, size_t arrays_len, em_pca_model **out,
                        em_err *err)
{
    char *mname = em_xasprintf("%s/metadata.json", name);
    char *aname = em_xasprintf("%s/arrays.bin", name);
    json_t *j = NULL;
    pca_meta pm = {0};
    em_ml_array a = {.name = "arrays"};
    *out = NULL;
    int rc = em_ml_model_meta_parse(mname, meta, meta_len, PCA_CLASS, 1, &j, err);
    if (rc == 0)
        rc = decode_meta(mname, j, &pm, err);
    a.max_count = arrays_count((uint32_t)pm.dim, (uint32_t)pm.k);
    if (rc == 0)
        rc = em_ml_model_array_decode(aname, j, arrays, arrays_len, &a, err);
    if (rc == 0 && a.count != a.max_count)
        rc = em_err_set(err, EM_ECORRUPT, "%s: %zu values, expected %zu for dim %llu and k "
                        "%llu", aname, a.count, a.max_count, (unsigned long long)pm.dim,
                        (unsigned long long)pm.k);
    for (size_t i = 0; rc == 0 && i < a.count; i++)
        if (!isfinite(a.data[i]))
            rc = em_err_set(err, EM_ECORRUPT, "%s: non-finite number at byte %zu", aname, 8 * i);
    if (rc == 0)
        rc = build(name, &pm, a.data, out, err);
    em_free(a.data);
    json_decref(j);
    em_free(mname);
    em_free(aname);
    return rc;
}

int em_pca_model_load(const char *dir, em_pca_model **out, em_err *err)
{
    uint8_t *meta = NULL, *arr = NULL;
    size_t ml = 0, al = 0;
    char *p = em_xasprintf("%s/metadata.json", dir);
    int rc = em_read_file(p, &meta, &ml, err);
    em_free(p);
    *out = NULL;
    if (rc == 0) {
        p = em_xasprintf("%s/arrays.bin", dir);
        rc = em_read_file(p, &arr, &al, err);
        em_free(p);
    }
    if (rc == 0)
        rc = em_pca_model_decode(dir, meta, ml, arr, al, out, err);
    em_free(meta);
    em_free(arr);
    return rc;
}
