/* mllib/mlp/model.c - saving and loading networks through mllib/linalg/model_dir.h, the
 * decoder of the compressed (int8) encoding, and Deep Compression's pruning and
 * quantization. Formats are in mlp.h. The decoder takes untrusted bytes: every count is
 * bounded by the layer shapes, every float checked finite, the packed stream must be
 * consumed exactly (tests/fuzz/fuzz_mlp_model.c). */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mllib/linalg/model_dir.h"
#include "mllib/mlp/mlp_int.h"

#define CLS "ember.MLPModel"

/* ---------------------------------------------------------------- compression */

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

size_t em_mlp_prune(em_mlp_model *m, double sparsity, uint8_t *mask)
{
    size_t np = em_mlp_nparams(m), zeroed = 0;
    if (mask)
        memset(mask, 1, np);
    if (!(sparsity > 0))
        return 0;
    for (uint32_t l = 0; l < m->nlayers; l++) {
        size_t off = em_mlp_layer_offset(m, l), cnt = (size_t)m->sizes[l] * m->sizes[l + 1];
        size_t drop = (size_t)((double)cnt * (sparsity < 1 ? sparsity : 1));
        if (drop == 0)
            continue;
        float *w = m->params + off, *mag = em_xmalloc(4 * cnt);
        for (size_t i = 0; i < cnt; i++)
            mag[i] = fabsf(w[i]);
        qsort(mag, cnt, 4, cmp_float);
        float thr = mag[drop - 1];
        em_free(mag);
        /* Entries strictly below the threshold go, then ties at it until `drop` are gone
         * (so the sparsity is exact whatever the ties). */
        size_t gone = 0;
        for (size_t i = 0; i < cnt && gone < drop; i++)
            if (fabsf(w[i]) < thr) {
                w[i] = 0;
                if (mask)
                    mask[off + i] = 0;
                gone++;
            }
        for (size_t i = 0; i < cnt && gone < drop; i++)
            if (fabsf(w[i]) == thr && (!mask || mask[off + i])) {
                w[i] = 0;
                if (mask)
                    mask[off + i] = 0;
                gone++;
            }
        zeroed += gone;
    }
    return zeroed;
}

static float layer_scale(const float *w, size_t cnt)
{
    float mx = 0;
    for (size_t i = 0; i < cnt; i++)
        mx = fabsf(w[i]) > mx ? fabsf(w[i]) : mx;
    return mx / 127.0f;
}

void em_mlp_quantize(em_mlp_model *m)
{
    for (uint32_t l = 0; l < m->nlayers; l++) {
        float *w = m->params + em_mlp_layer_offset(m, l);
        size_t cnt = (size_t)m->sizes[l] * m->sizes[l + 1];
        float s = layer_scale(w, cnt);
        for (size_t i = 0; i < cnt; i++)
            w[i] = s > 0 ? (float)lrintf(w[i] / s) * s : 0.0f;
    }
}

double em_mlp_sparsity(const em_mlp_model *m)
{
    size_t z = 0, cnt = 0;
    for (uint32_t l = 0; l < m->nlayers; l++) {
        const float *w = m->params + em_mlp_layer_offset(m, l);
        size_t c = (size_t)m->sizes[l] * m->sizes[l + 1];
        for (size_t i = 0; i < c; i++)
            z += w[i] == 0;
        cnt += c;
    }
    return cnt ? (double)z / (double)cnt : 0;
}

/* The int8 stream of mlp.h. */
static void pack(const em_mlp_model *m, em_vbuf *b)
{
    for (uint32_t l = 0; l < m->nlayers; l++) {
        const float *w = m->params + em_mlp_layer_offset(m, l);
        size_t in = m->sizes[l], out = m->sizes[l + 1], cnt = in * out;
        float s = layer_scale(w, cnt);
        uint8_t *bits = em_xcalloc((cnt + 7) / 8 ? (cnt + 7) / 8 : 1, 1);
        int8_t *q = em_xmalloc(cnt ? cnt : 1);
        uint32_t nnz = 0;
        for (size_t i = 0; i < cnt; i++) {
            long v = s > 0 ? lrintf(w[i] / s) : 0;
            if (v != 0) {
                bits[i / 8] |= (uint8_t)(1u << (i % 8));
                q[nnz++] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
            }
        }
        uint8_t hdr[8];
        uint32_t su;
        memcpy(&su, &s, 4);
        em_store_le32(hdr, su);
        em_store_le32(hdr + 4, nnz);
        em_vbuf_append(b, hdr, 8);
        em_vbuf_append(b, bits, (cnt + 7) / 8);
        em_vbuf_append(b, q, nnz);
        for (size_t j = 0; j < out; j++) {
            uint32_t u;
            memcpy(&u, &w[cnt + j], 4);
            uint8_t le[4];
            em_store_le32(le, u);
            em_vbuf_append(b, le, 4);
        }
        em_free(bits);
        em_free(q);
    }
}

static int rd_f32(const uint8_t *p, float *out)
{
    uint32_t u = em_load_le32(p);
    memcpy(out, &u, 4);
    return isfinite(*out) ? 0 : -1;
}

static int unpack(const char *name, em_mlp_model *m, const uint8_t *p, size_t n, em_err *err)
{
    size_t pos = 0;
    for (uint32_t l = 0; l < m->nlayers; l++) {
        float *w = m->params + em_mlp_layer_offset(m, l);
        size_t in = m->sizes[l], out = m->sizes[l + 1], cnt = in * out, nb = (cnt + 7) / 8;
        float s;
        if (n - pos < 8 || rd_f32(p + pos, &s) < 0 || s < 0)
            return em_err_set(err, EM_ECORRUPT, "%s: packed.bin: layer %u: bad header", name,
                              l);
        size_t nnz = em_load_le32(p + pos + 4);
        pos += 8;
        if (nnz > cnt || n - pos < nb + nnz + 4 * out)
            return em_err_set(err, EM_ECORRUPT, "%s: packed.bin: layer %u: %zu non-zeros "
                              "for %zu weights, or truncated", name, l, nnz, cnt);
        const uint8_t *bits = p + pos;
        const int8_t *q = (const int8_t *)(p + pos + nb);
        size_t k = 0;
        for (size_t i = 0; i < cnt; i++) {
            bool on = bits[i / 8] >> (i % 8) & 1;
            if (on && k == nnz)
                return em_err_set(err, EM_ECORRUPT,
                                  "%s: packed.bin: layer %u: bitmap has more than %zu bits",
                                  name, l, nnz);
            w[i] = on ? (float)q[k++] * s : 0.0f;
        }
        if (k != nnz || (cnt % 8 && bits[nb - 1] >> (cnt % 8)))
            return em_err_set(err, EM_ECORRUPT,
                              "%s: packed.bin: layer %u: bitmap does not match %zu non-zeros",
                              name, l, nnz);
        pos += nb + nnz;
        for (size_t j = 0; j < out; j++, pos += 4)
            if (rd_f32(p + pos, &w[cnt + j]) < 0)
                return em_err_set(err, EM_ECORRUPT, "%s: packed.bin: layer %u: bad bias",
                                  name, l);
    }
    if (pos != n)
        return em_err_set(err, EM_ECORRUPT, "%s: packed.bin: %zu bytes after the last layer",
                          name, n - pos);
    return 0;
}

/* ---------------------------------------------------------------- save / load */

int em_mlp_model_save(const em_mlp_model *m, const char *dir, bool compressed, em_err *err)
{
    json_t *meta = json_object(), *layers = json_array();
    for (uint32_t l = 0; l <= m->nlayers; l++)
        json_array_append_new(layers, json_integer(m->sizes[l]));
    json_object_set_new(meta, "layers", layers);
    json_object_set_new(meta, "activation", json_string(em_mlp_act_name(m->act)));
    json_object_set_new(meta, "task",
                        json_string(m->regression ? "regression" : "classification"));
    json_object_set_new(meta, "encoding", json_string(compressed ? "int8" : "float"));
    size_t np = em_mlp_nparams(m);
    double *data;
    size_t count;
    em_vbuf b;
    em_vbuf_init(&b);
    if (compressed) {
        pack(m, &b);
        json_object_set_new(meta, "packed_bytes", json_integer((json_int_t)b.len));
        count = (b.len + 7) / 8;
        data = em_xcalloc(count ? count : 1, 8);
        memcpy(data, b.data, b.len);
    } else {
        count = np;
        data = em_xmalloc(8 * (np ? np : 1));
        for (size_t i = 0; i < np; i++)
            data[i] = m->params[i];
    }
    em_ml_array a = {.name = compressed ? "packed" : "params", .data = data, .count = count};
    int rc = em_ml_model_dir_write(dir, CLS, 1, meta, &a, 1, err);
    em_vbuf_destroy(&b);
    em_free(data);
    json_decref(meta);
    return rc;
}

static int parse_meta(const char *name, const json_t *meta, em_mlp_model *m, bool *int8,
                      uint64_t *packed, em_err *err)
{
    const char *act, *task, *enc;
    int rc;
    if ((rc = em_ml_meta_str(name, meta, "activation", &act, err)) < 0 ||
        (rc = em_ml_meta_str(name, meta, "task", &task, err)) < 0 ||
        (rc = em_ml_meta_str(name, meta, "encoding", &enc, err)) < 0)
        return rc;
    if (em_mlp_act_parse(act, &m->act) < 0 ||
        (strcmp(task, "regression") && strcmp(task, "classification")) ||
        (strcmp(enc, "float") && strcmp(enc, "int8")))
        return em_err_set(err, EM_ECORRUPT, "%s: metadata.json: bad activation, task or "
                          "encoding", name);
    m->regression = !strcmp(task, "regression");
    *int8 = !strcmp(enc, "int8");
    const json_t *ls = json_object_get(meta, "layers");
    size_t nl = json_array_size(ls);
    if (!json_is_array(ls) || nl < 2 || nl > EM_MLP_MAX_LAYERS + 1)
        return em_err_set(err, EM_ECORRUPT, "%s: metadata.json: 'layers' wants 2..%u sizes",
                          name, EM_MLP_MAX_LAYERS + 1);
    m->nlayers = (uint32_t)nl - 1;
    uint64_t np = 0;
    for (size_t i = 0; i < nl; i++) {
        json_t *v = json_array_get(ls, i);
        json_int_t s = json_is_integer(v) ? json_integer_value(v) : 0;
        if (s < 1 || s > EM_MLP_MAX_WIDTH)
            return em_err_set(err, EM_ECORRUPT, "%s: metadata.json: layer size %zu is not in "
                              "1..%u", name, i, EM_MLP_MAX_WIDTH);
        m->sizes[i] = (uint32_t)s;
        if (i)
            np += (uint64_t)m->sizes[i - 1] * m->sizes[i] + m->sizes[i];
    }
    if (np > ((uint64_t)1 << 28))
        return em_err_set(err, EM_ECORRUPT, "%s: metadata.json: %llu parameters", name,
                          (unsigned long long)np);
    if (m->regression && m->sizes[m->nlayers] != 1)
        return em_err_set(err, EM_ECORRUPT, "%s: metadata.json: regression wants one output",
                          name);
    *packed = 0;
    if (*int8 && (rc = em_ml_meta_u64(name, meta, "packed_bytes", 16 * np + 64, packed, err)) < 0)
        return rc;
    return 0;
}

int em_mlp_model_decode(const char *name, const uint8_t *meta_b, size_t meta_n,
                        const uint8_t *bin, size_t bin_n, em_mlp_model **out, em_err *err)
{
    *out = NULL;
    json_t *meta = NULL;
    int rc = em_ml_model_meta_parse(name, meta_b, meta_n, CLS, 1, &meta, err);
    if (rc < 0)
        return rc;
    em_mlp_model *m = em_xcalloc(1, sizeof *m);
    bool int8 = false;
    uint64_t packed = 0;
    em_ml_array a = {.name = "params"};
    if ((rc = parse_meta(name, meta, m, &int8, &packed, err)) < 0)
        goto done;
    size_t np = em_mlp_nparams(m);
    if (int8) {
        a.name = "packed";
        a.max_count = (packed + 7) / 8;
    } else {
        a.max_count = np;
    }
    if ((rc = em_ml_model_array_decode(name, meta, bin, bin_n, &a, err)) < 0)
        goto done;
    m->params = em_xcalloc(np, 4);
    if (int8) {
        if (a.count != (packed + 7) / 8) {
            rc = em_err_set(err, EM_ECORRUPT, "%s: packed.bin: %zu doubles for %llu bytes", name,
                            a.count, (unsigned long long)packed);
            goto done;
        }
        uint8_t *bytes = (uint8_t *)a.data;
        for (size_t i = packed; i < 8 * a.count; i++)
            if (bytes[i]) {
                rc = em_err_set(err, EM_ECORRUPT, "%s: packed.bin: padding not zero", name);
                goto done;
            }
        rc = unpack(name, m, bytes, packed, err);
    } else {
        if (a.count != np) {
            rc = em_err_set(err, EM_ECORRUPT, "%s: params.bin: %zu values for %zu parameters",
                            name, a.count, np);
            goto done;
        }
        for (size_t i = 0; i < np && rc == 0; i++) {
            if (!isfinite(a.data[i]) || fabs(a.data[i]) > 3e38)
                rc = em_err_set(err, EM_ECORRUPT, "%s: params.bin: value %zu is not a finite "
                                "float", name, i);
            m->params[i] = (float)a.data[i];
        }
    }
done:
    em_free(a.data);
    json_decref(meta);
    if (rc < 0)
        em_mlp_model_free(m);
    else
        *out = m;
    return rc;
}

int em_mlp_model_load(const char *dir, em_mlp_model **out, em_err *err)
{
    char *mp = em_xasprintf("%s/metadata.json", dir);
    uint8_t *meta = NULL, *bin = NULL;
    size_t mn = 0, bn = 0;
    *out = NULL;
    int rc = em_read_file(mp, &meta, &mn, err);
    char *bp = NULL;
    if (rc == 0) {
        /* The array file's name depends on the encoding: int8 -> packed.bin. */
        json_t *o = json_loadb((const char *)meta, mn, 0, NULL);
        const char *enc = json_string_value(json_object_get(o, "encoding"));
        bool int8 = enc && !strcmp(enc, "int8");
        json_decref(o);
        bp = em_xasprintf("%s/%s.bin", dir, int8 ? "packed" : "params");
        rc = em_read_file(bp, &bin, &bn, err);
    }
    if (rc == 0)
        rc = em_mlp_model_decode(dir, meta, mn, bin, bn, out, err);
    em_free(meta);
    em_free(bin);
    em_free(mp);
    em_free(bp);
    return rc;
}

uint64_t em_mlp_dir_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    uint64_t total = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *p = em_xasprintf("%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode))
            total += (uint64_t)st.st_size;
        em_free(p);
    }
    closedir(d);
    return total;
}
