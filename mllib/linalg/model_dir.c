/* mllib/linalg/model_dir.c - saved-model directories (format in model_dir.h): one writer
 * and one verifying reader for every MLlib model. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mllib/linalg/model_dir.h"

/* Largest metadata.json we read (a model's own fields are small; arrays live apart). */
#define META_MAX ((size_t)16 << 20)

static bool name_ok(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    return true;
}

int em_ml_model_dir_check_new(const char *dir, em_err *err)
{
    struct stat st;
    if (!dir || !*dir)
        return em_err_set(err, EM_EINVAL, "model directory: empty path");
    if (lstat(dir, &st) == 0)
        return em_err_set(err, EM_EINVAL, "%s: already exists (a model is saved into a new "
                          "directory)", dir);
    if (errno != ENOENT)
        return em_err_set(err, EM_EINVAL, "%s: %s", dir, strerror(errno));
    /* The parent: everything before the last '/' (trailing slashes ignored). */
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    size_t k = n;
    while (k > 0 && dir[k - 1] != '/')
        k--;
    char *parent = k == 0 ? em_xstrdup(".") : em_xasprintf("%.*s", (int)(k > 1 ? k - 1 : 1), dir);
    int rc = 0;
    if (stat(parent, &st) != 0)
        rc = em_err_set(err, EM_EINVAL, "%s: parent directory %s: %s", dir, parent,
                        strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        rc = em_err_set(err, EM_EINVAL, "%s: %s is not a directory", dir, parent);
    else if (access(parent, W_OK | X_OK) != 0)
        rc = em_err_set(err, EM_EINVAL, "%s: cannot write in %s: %s", dir, parent,
                        strerror(errno));
    em_free(parent);
    return rc;
}

static uint8_t *le_bytes(const double *d, size_t count)
{
    uint8_t *b = em_xmalloc(count ? 8 * count : 1);
    for (size_t i = 0; i < count; i++) {
        uint64_t u;
        memcpy(&u, &d[i], 8);
        em_store_le64(b + 8 * i, u);
    }
    return b;
}

int em_ml_model_dir_write(const char *dir, const char *cls, int version, const json_t *meta,
                          const em_ml_array *arrays, size_t narrays, em_err *err)
{
    int rc = em_ml_model_dir_check_new(dir, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < narrays; i++)
        if (!name_ok(arrays[i].name) || !strcmp(arrays[i].name, "metadata"))
            return em_err_set(err, EM_EINVAL, "%s: bad array name '%s'", dir,
                              arrays[i].name ? arrays[i].name : "(null)");
    json_t *m = meta ? json_deep_copy(meta) : json_object();
    json_t *arr = json_object();
    if (!m || !json_is_object(m) || !arr) {
        json_decref(m);
        json_decref(arr);
        return em_err_set(err, EM_EINVAL, "%s: model metadata is not a JSON object", dir);
    }
    json_object_set_new(m, "class", json_string(cls));
    json_object_set_new(m, "version", json_integer(version));
    char *tmp = em_xasprintf("%s.tmp.%ld", dir, (long)getpid());
    em_rm_rf(tmp, NULL);
    rc = em_mkdir_p(tmp, err);
    for (size_t i = 0; rc == 0 && i < narrays; i++) {
        size_t nb = 8 * arrays[i].count;
        uint8_t *b = le_bytes(arrays[i].data, arrays[i].count);
        json_object_set_new(arr, arrays[i].name,
                            json_pack("{s:I, s:I}", "count", (json_int_t)arrays[i].count,
                                      "crc32c", (json_int_t)em_crc32c(0, b, nb)));
        char *p = em_xasprintf("%s/%s.bin", tmp, arrays[i].name);
        rc = em_write_file_atomic(p, b, nb, err);
        em_free(p);
        em_free(b);
    }
    json_object_set_new(m, "arrays", arr);
    char *text = rc == 0 ? json_dumps(m, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    if (rc == 0 && !text)
        rc = em_err_set(err, EM_EINVAL, "%s: metadata does not encode as JSON (NaN?)", dir);
    if (rc == 0) {
        char *p = em_xasprintf("%s/metadata.json", tmp);
        char *line = em_xasprintf("%s\n", text);
        rc = em_write_file_atomic(p, line, strlen(line), err);
        em_free(line);
        em_free(p);
    }
    if (rc == 0 && rename(tmp, dir) != 0)
        rc = em_err_set(err, EM_EIO, "%s: rename: %s", dir, strerror(errno));
    if (rc < 0)
        em_rm_rf(tmp, NULL);
    free(text);   /* jansson's allocator is malloc */
    em_free(tmp);
    json_decref(m);
    return rc;
}

/* ---------------------------------------------------------------- decoders */

int em_ml_meta_u64(const char *name, const json_t *meta, const char *key, uint64_t max,
                   uint64_t *out, em_err *err)
{
    json_t *v = json_object_get(meta, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        (uint64_t)json_integer_value(v) > max)
        return em_err_set(err, EM_ECORRUPT, "%s: field '%s' is not an integer in [0, %llu]",
                          name, key, (unsigned long long)max);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

int em_ml_meta_f64(const char *name, const json_t *meta, const char *key, double *out,
                   em_err *err)
{
    json_t *v = json_object_get(meta, key);
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return em_err_set(err, EM_ECORRUPT, "%s: field '%s' is not a finite number", name, key);
    *out = json_number_value(v);
    return 0;
}

int em_ml_meta_str(const char *name, const json_t *meta, const char *key, const char **out,
                   em_err *err)
{
    json_t *v = json_object_get(meta, key);
    if (!json_is_string(v))
        return em_err_set(err, EM_ECORRUPT, "%s: field '%s' is not a string", name, key);
    *out = json_string_value(v);
    return 0;
}

int em_ml_model_meta_parse(const char *name, const uint8_t *bytes, size_t n, const char *cls,
                           int max_version, json_t **meta, em_err *err)
{
    *meta = NULL;
    if (n > META_MAX)
        return em_err_set(err, EM_ECORRUPT, "%s: %zu bytes of metadata (at most %zu)", name, n,
                          META_MAX);
    json_error_t je;
    json_t *m = json_loadb((const char *)bytes, n, JSON_REJECT_DUPLICATES, &je);
    if (!m)
        return em_err_set(err, EM_ECORRUPT, "%s:%d:%d: %s", name, je.line, je.column, je.text);
    const char *c;
    uint64_t ver, u;
    int rc = json_is_object(m) ? 0
                               : em_err_set(err, EM_ECORRUPT, "%s: not a JSON object", name);
    if (rc == 0)
        rc = em_ml_meta_str(name, m, "class", &c, err);
    if (rc == 0 && strcmp(c, cls) != 0)
        rc = em_err_set(err, EM_ECORRUPT, "%s: a saved %s, not %s", name, c, cls);
    if (rc == 0)
        rc = em_ml_meta_u64(name, m, "version", INT_MAX, &ver, err);
    if (rc == 0 && (ver < 1 || ver > (uint64_t)max_version))
        rc = em_err_set(err, EM_ECORRUPT, "%s: version %llu (this ember reads 1..%d)", name,
                        (unsigned long long)ver, max_version);
    json_t *arr = json_object_get(m, "arrays");
    if (rc == 0 && !json_is_object(arr))
        rc = em_err_set(err, EM_ECORRUPT, "%s: field 'arrays' is not an object", name);
    const char *k;
    json_t *e;
    if (rc == 0)
        json_object_foreach(arr, k, e) {
            if (rc == 0 && (!name_ok(k) || !json_is_object(e)))
                rc = em_err_set(err, EM_ECORRUPT, "%s: bad array entry '%s'", name, k);
            if (rc == 0)
                rc = em_ml_meta_u64(name, e, "count", SIZE_MAX / 8, &u, err);
            if (rc == 0)
                rc = em_ml_meta_u64(name, e, "crc32c", UINT32_MAX, &u, err);
        }
    if (rc < 0) {
        json_decref(m);
        return rc;
    }
    *meta = m;
    return 0;
}

int em_ml_model_array_decode(const char *name, const json_t *meta, const uint8_t *bytes,
                             size_t n, em_ml_array *a, em_err *err)
{
    a->data = NULL;
    a->count = 0;
    json_t *e = json_object_get(json_object_get(meta, "arrays"), a->name);
    uint64_t count, crc;
    if (!e)
        return em_err_set(err, EM_ECORRUPT, "%s: the metadata lists no array '%s'", name,
                          a->name);
    int rc = em_ml_meta_u64(name, e, "count", SIZE_MAX / 8, &count, err);
    if (rc == 0)
        rc = em_ml_meta_u64(name, e, "crc32c", UINT32_MAX, &crc, err);
    if (rc < 0)
        return rc;
    if (count > a->max_count)
        return em_err_set(err, EM_ECORRUPT, "%s: %llu values (the model needs %zu)", name,
                          (unsigned long long)count, a->max_count);
    if (n != 8 * count)
        return em_err_set(err, EM_ECORRUPT, "%s: %zu bytes, expected %llu (8 x %llu)", name, n,
                          (unsigned long long)(8 * count), (unsigned long long)count);
    if (em_crc32c(0, bytes, n) != (uint32_t)crc)
        return em_err_set(err, EM_ECORRUPT, "%s: checksum mismatch (the file is damaged)",
                          name);
    double *d = count ? em_malloc(8 * (size_t)count) : NULL;
    if (count && !d)
        return em_err_set(err, EM_ENOMEM, "%s: out of memory for %llu values", name,
                          (unsigned long long)count);
    for (size_t i = 0; i < count; i++) {
        uint64_t u = em_load_le64(bytes + 8 * i);
        memcpy(&d[i], &u, 8);
    }
    a->data = d;
    a->count = (size_t)count;
    return 0;
}

int em_ml_model_dir_read(const char *dir, const char *cls, int max_version, json_t **meta,
                         em_ml_array *arrays, size_t narrays, em_err *err)
{
    *meta = NULL;
    for (size_t i = 0; i < narrays; i++)
        arrays[i].data = NULL;
    char *p = em_xasprintf("%s/metadata.json", dir);
    uint8_t *b = NULL;
    size_t n = 0;
    json_t *m = NULL;
    int rc = em_read_file(p, &b, &n, err);
    if (rc == 0)
        rc = em_ml_model_meta_parse(p, b, n, cls, max_version, &m, err);
    em_free(b);
    em_free(p);
    for (size_t i = 0; rc == 0 && i < narrays; i++) {
        if (!name_ok(arrays[i].name)) {
            rc = em_err_set(err, EM_EINVAL, "%s: bad array name", dir);
            break;
        }
        p = em_xasprintf("%s/%s.bin", dir, arrays[i].name);
        rc = em_read_file(p, &b, &n, err);
        if (rc == 0)
            rc = em_ml_model_array_decode(p, m, b, n, &arrays[i], err);
        em_free(b);
        b = NULL;
        em_free(p);
    }
    if (rc < 0) {
        for (size_t i = 0; i < narrays; i++) {
            em_free(arrays[i].data);
            arrays[i].data = NULL;
            arrays[i].count = 0;
        }
        json_decref(m);
        return rc;
    }
    *meta = m;
    return 0;
}
