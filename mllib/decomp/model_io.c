/* mllib/decomp/model_io.c - saving and loading a PCA model directory.
 *
 * FORMAT (decomp.h): DIR/metadata.json, a JSON object
 *     {"class": "ember.pca", "version": 1, "dim": d, "k": k, "nrows": n,
 *      "total_variance": t, "explained_variance_ratio": [k numbers, informative only],
 *      "arrays_crc32c": crc of arrays.bin}
 * and DIR/arrays.bin, 8 * (d + k d + k) bytes of little-endian doubles:
 *     mean (d), components (k x d, row-major), explained variance (k).
 * Loading treats both files as untrusted: the JSON is checked field by field, the array
 * file's size against d and k and its bytes against the checksum before anything is
 * copied, and every number must be finite. em_pca_model_decode is the fuzz target
 * (tests/fuzz/fuzz_pca_model.c). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mllib/decomp/decomp_int.h"

static size_t arrays_size(uint32_t d, uint32_t k)
{
    return 8 * ((size_t)d + (size_t)k * d + k);
}

static uint8_t *encode_arrays(const em_pca_model *m, size_t *len)
{
    size_t d = m->dim, k = m->k, n = d + k * d + k;
    uint8_t *b = em_malloc(8 * n);
    if (!b)
        return NULL;
    const double *parts[3] = {m->mean, m->components, m->explained_variance};
    size_t counts[3] = {d, k * d, k}, at = 0;
    for (int p = 0; p < 3; p++)
        for (size_t i = 0; i < counts[p]; i++, at += 8)
            em_enc_f64(b + at, parts[p][i]);
    *len = 8 * n;
    return b;
}

static char *encode_meta(const em_pca_model *m, uint32_t crc)
{
    json_t *ratio = json_array();
    for (uint32_t i = 0; ratio && i < m->k; i++)
        json_array_append_new(ratio, json_real(m->explained_variance_ratio[i]));
    json_t *j = json_pack("{s:s,s:i,s:I,s:I,s:I,s:f,s:o,s:I}", "class", "ember.pca",
                          "version", 1, "dim", (json_int_t)m->dim, "k", (json_int_t)m->k,
                          "nrows", (json_int_t)m->nrows, "total_variance", m->total_variance,
                          "explained_variance_ratio", ratio, "arrays_crc32c",
                          (json_int_t)crc);
    char *s = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    json_decref(j);
    return s;
}

static int save_files(const em_pca_model *m, const char *tmp, em_err *err)
{
    size_t alen = 0;
    uint8_t *arr = encode_arrays(m, &alen);
    char *meta = arr ? encode_meta(m, em_crc32c(0, arr, alen)) : NULL;
    int rc = 0;
    if (!meta) {
        rc = em_err_set(err, EM_ENOMEM, "pca save: %u x %u model", m->k, m->dim);
    } else {
        char *p = em_xasprintf("%s/arrays.bin", tmp);
        rc = em_write_file_atomic(p, arr, alen, err);
        em_free(p);
        p = em_xasprintf("%s/metadata.json", tmp);
        if (rc == 0)
            rc = em_write_file_atomic(p, meta, strlen(meta), err);
        em_free(p);
    }
    free(meta);
    em_free(arr);
    return rc;
}

int em_pca_model_save(const em_pca_model *m, const char *dir, em_err *err)
{
    struct stat st;
    if (stat(dir, &st) == 0)
        return em_err_set(err, EM_EINVAL, "%s: exists", dir);
    char *tmp = em_xasprintf("%s.tmp.%ld", dir, (long)getpid());
    em_err ignore = EM_ERR_INIT;
    em_rm_rf(tmp, &ignore);
    int rc = em_mkdir_p(tmp, err);
    if (rc == 0)
        rc = save_files(m, tmp, err);
    if (rc == 0 && rename(tmp, dir) != 0)
        rc = em_err_set(err, EM_EIO, "%s: rename: %s", dir, strerror(errno));
    if (rc < 0)
        em_rm_rf(tmp, &ignore);
    em_free(tmp);
    return rc;
}

static bool meta_int(json_t *j, const char *key, json_int_t lo, json_int_t hi, json_int_t *out)
{
    json_t *v = json_object_get(j, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return false;
    *out = json_integer_value(v);
    return true;
}

typedef struct pca_meta {
    json_int_t dim, k, nrows, crc;
    double total;
} pca_meta;

static int decode_meta(const char *name, const uint8_t *meta, size_t len, pca_meta *pm,
                       em_err *err)
{
    json_error_t je;
    json_t *j = json_loadb((const char *)meta, len, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return em_err_set(err, EM_ECORRUPT, "%s/metadata.json:%d: %s", name, je.line, je.text);
    json_t *cls = json_object_get(j, "class"), *tv = json_object_get(j, "total_variance");
    json_int_t ver;
    bool ok = json_is_object(j) && json_is_string(cls) &&
              !strcmp(json_string_value(cls), "ember.pca") && meta_int(j, "version", 1, 1, &ver) &&
              meta_int(j, "dim", 1, EM_DECOMP_MAX_GRAM_DIM, &pm->dim) &&
              meta_int(j, "k", 1, pm->dim, &pm->k) &&
              meta_int(j, "nrows", 0, INT64_MAX, &pm->nrows) &&
              meta_int(j, "arrays_crc32c", 0, UINT32_MAX, &pm->crc) && json_is_number(tv) &&
              isfinite(json_number_value(tv)) && json_number_value(tv) >= 0;
    pm->total = ok ? json_number_value(tv) : 0;
    json_decref(j);
    if (!ok)
        return em_err_set(err, EM_ECORRUPT, "%s/metadata.json: not an ember.pca version 1 "
                          "model (class, version, dim 1..%u, k 1..dim, nrows, total_variance "
                          ">= 0, arrays_crc32c)", name, EM_DECOMP_MAX_GRAM_DIM);
    return 0;
}

int em_pca_model_decode(const char *name, const uint8_t *meta, size_t meta_len,
                        const uint8_t *arrays, size_t arrays_len, em_pca_model **out,
                        em_err *err)
{
    pca_meta pm;
    *out = NULL;
    int rc = decode_meta(name, meta, meta_len, &pm, err);
    if (rc < 0)
        return rc;
    uint32_t d = (uint32_t)pm.dim, k = (uint32_t)pm.k;
    if (arrays_len != arrays_size(d, k))
        return em_err_set(err, EM_ECORRUPT, "%s/arrays.bin: %zu bytes, expected %zu for dim "
                          "%u and k %u", name, arrays_len, arrays_size(d, k), d, k);
    if (em_crc32c(0, arrays, arrays_len) != (uint32_t)pm.crc)
        return em_err_set(err, EM_ECORRUPT, "%s/arrays.bin: checksum mismatch", name);
    for (size_t at = 0; at < arrays_len; at += 8)
        if (!isfinite(em_dec_f64(arrays + at)))
            return em_err_set(err, EM_ECORRUPT, "%s/arrays.bin: non-finite number at byte %zu",
                              name, at);
    em_pca_model *m = em__dc_pca_alloc(d, k);
    if (!m)
        return em_err_set(err, EM_ENOMEM, "%s: model of %u x %u", name, k, d);
    double *parts[3] = {m->mean, m->components, m->explained_variance};
    size_t counts[3] = {d, (size_t)k * d, k}, at = 0;
    for (int p = 0; p < 3; p++)
        for (size_t i = 0; i < counts[p]; i++, at += 8)
            parts[p][i] = em_dec_f64(arrays + at);
    m->nrows = (uint64_t)pm.nrows;
    m->total_variance = pm.total;
    for (uint32_t i = 0; i < k; i++)
        m->explained_variance_ratio[i] = pm.total > 0 ? m->explained_variance[i] / pm.total : 0;
    *out = m;
    return 0;
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
