/* mllib/als/model_io.c - saving and loading the ALS model directory (format in model.c).
 * Loading treats every file as untrusted: sizes are checked against the metadata before any
 * copy, and em_als_model_decode is the fuzz target (tests/fuzz/fuzz_model.c). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mllib/als/als_int.h"

static int write_ids(const char *path, const em_idmap *ids, int32_t n, em_err *err)
{
    em_vbuf b;
    char buf[24];
    int rc = 0;
    em_vbuf_init(&b);
    for (int32_t i = 0; i < n && rc == 0; i++) {
        const char *s = em_idmap_name(ids, i, buf);
        rc = em_vbuf_printf(&b, "%s\n", s ? s : "");
    }
    if (rc < 0)
        rc = em_err_set(err, EM_ENOMEM, "%s", path);
    else
        rc = em_write_file_atomic(path, b.data ? (const void *)b.data : "", b.len, err);
    em_vbuf_destroy(&b);
    return rc;
}

static int save_files(const em_als_model *m, const char *tmp, const em_idmap *users,
                      const em_idmap *items, em_err *err)
{
    json_t *j = json_pack("{s:s,s:i,s:i,s:i,s:i,s:b}", "class", "ember.als", "version", 1,
                          "rank", m->rank, "n_users", (int)m->n_users, "n_items",
                          (int)m->n_items, "implicit", m->implicit);
    char *meta = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    char *p = NULL;
    int rc;
    json_decref(j);
    if (!meta)
        return em_err_set(err, EM_ENOMEM, "als save: metadata");
    p = em_xasprintf("%s/metadata.json", tmp);
    rc = em_write_file_atomic(p, meta, strlen(meta), err);
    free(meta);
    em_free(p);
    p = em_xasprintf("%s/user_factors.bin", tmp);
    if (rc == 0)
        rc = em_write_file_atomic(p, m->user_factors, (size_t)m->n_users * m->rank * 4, err);
    em_free(p);
    p = em_xasprintf("%s/item_factors.bin", tmp);
    if (rc == 0)
        rc = em_write_file_atomic(p, m->item_factors, (size_t)m->n_items * m->rank * 4, err);
    em_free(p);
    if (rc == 0 && users && em_idmap_size(users) >= m->n_users) {
        p = em_xasprintf("%s/user_ids.txt", tmp);
        rc = write_ids(p, users, m->n_users, err);
        em_free(p);
    }
    if (rc == 0 && items && em_idmap_size(items) >= m->n_items) {
        p = em_xasprintf("%s/item_ids.txt", tmp);
        rc = write_ids(p, items, m->n_items, err);
        em_free(p);
    }
    return rc;
}

int em_als_model_save(const em_als_model *m, const char *dir, const em_idmap *users,
                      const em_idmap *items, em_err *err)
{
    struct stat st;
    if (stat(dir, &st) == 0)
        return em_err_set(err, EM_EINVAL, "%s: exists", dir);
    char *tmp = em_xasprintf("%s.tmp.%ld", dir, (long)getpid());
    em_err ignore = EM_ERR_INIT;
    em_rm_rf(tmp, &ignore);
    int rc = em_mkdir_p(tmp, err);
    if (rc == 0)
        rc = save_files(m, tmp, users, items, err);
    if (rc == 0 && rename(tmp, dir) != 0)
        rc = em_err_set(err, EM_EIO, "%s: rename: %s", dir, strerror(errno));
    if (rc < 0)
        em_rm_rf(tmp, &ignore);
    em_free(tmp);
    return rc;
}

static int meta_int(json_t *j, const char *key, json_int_t lo, json_int_t hi, json_int_t *out)
{
    json_t *v = json_object_get(j, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return -1;
    *out = json_integer_value(v);
    return 0;
}

int em_als_model_decode(const char *name, const uint8_t *meta, size_t meta_len,
                        const uint8_t *uf, size_t uf_len, const uint8_t *itf, size_t if_len,
                        em_als_model **out, em_err *err)
{
    json_error_t je;
    json_int_t rank, nu, ni;
    *out = NULL;
    json_t *j = json_loadb((const char *)meta, meta_len, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return em_err_set(err, EM_ECORRUPT, "%s/metadata.json:%d: %s", name, je.line, je.text);
    json_t *cls = json_object_get(j, "class"), *imp = json_object_get(j, "implicit");
    json_int_t ver;
    int bad = !json_is_string(cls) || strcmp(json_string_value(cls), "ember.als") != 0 ||
              meta_int(j, "version", 1, 1, &ver) < 0 ||
              meta_int(j, "rank", 1, EM__ALS_MAX_RANK, &rank) < 0 ||
              meta_int(j, "n_users", 0, INT32_MAX, &nu) < 0 ||
              meta_int(j, "n_items", 0, INT32_MAX, &ni) < 0 || (imp && !json_is_boolean(imp));
    bool implicit = imp && json_is_true(imp);
    json_decref(j);
    if (bad)
        return em_err_set(err, EM_ECORRUPT, "%s/metadata.json: not an ember.als version 1 "
                          "model (class, version, rank 1..%d, n_users, n_items)", name,
                          EM__ALS_MAX_RANK);
    if ((uint64_t)nu * (uint64_t)rank * 4 != uf_len)
        return em_err_set(err, EM_ECORRUPT, "%s/user_factors.bin: %zu bytes, expected %lld "
                          "x %lld floats", name, uf_len, (long long)nu, (long long)rank);
    if ((uint64_t)ni * (uint64_t)rank * 4 != if_len)
        return em_err_set(err, EM_ECORRUPT, "%s/item_factors.bin: %zu bytes, expected %lld "
                          "x %lld floats", name, if_len, (long long)ni, (long long)rank);
    em_als_model *m = em_als_model_new((int)rank, (int32_t)nu, (int32_t)ni);
    if (!m)
        return em_err_set(err, EM_ENOMEM, "%s: model of %lld + %lld rows", name,
                          (long long)nu, (long long)ni);
    m->implicit = implicit;
    if (uf_len)
        memcpy(m->user_factors, uf, uf_len);
    if (if_len)
        memcpy(m->item_factors, itf, if_len);
    *out = m;
    return 0;
}

static int read_ids(const char *dir, const char *file, int32_t n, em_idmap **out, em_err *err)
{
    char *p = em_xasprintf("%s/%s", dir, file);
    uint8_t *b = NULL;
    size_t len = 0;
    int rc = 0;
    if (access(p, F_OK) != 0)
        goto out;   /* optional */
    if ((rc = em_read_file(p, &b, &len, err)) < 0)
        goto out;
    em_idmap *m = em_idmap_new();
    if (!m) {
        rc = em_err_set(err, EM_ENOMEM, "%s", p);
        goto out;
    }
    size_t s = 0;
    for (int32_t i = 0; i < n && rc == 0; i++) {
        const uint8_t *nl = s < len ? memchr(b + s, '\n', len - s) : NULL;
        int32_t idx;
        if (!nl)
            rc = em_err_set(err, EM_ECORRUPT, "%s:%d: missing id", p, i + 1);
        else if ((rc = em_idmap_intern(m, (const char *)b + s, (size_t)(nl - b - s), &idx,
                                       err)) == 0 && idx != i)
            rc = em_err_set(err, EM_ECORRUPT, "%s:%d: duplicate id", p, i + 1);
        s = nl ? (size_t)(nl - b) + 1 : len;
    }
    if (rc == 0 && s != len)
        rc = em_err_set(err, EM_ECORRUPT, "%s: more than %d ids", p, n);
    if (rc == 0 && out)
        *out = m;
    else
        em_idmap_free(m);
out:
    em_free(b);
    em_free(p);
    return rc;
}

int em_als_model_load(const char *dir, em_als_model **out, em_idmap **users,
                      em_idmap **items, em_err *err)
{
    static const char *const files[3] = {"metadata.json", "user_factors.bin",
                                         "item_factors.bin"};
    uint8_t *buf[3] = {NULL, NULL, NULL};
    size_t len[3] = {0, 0, 0};
    int rc = 0;
    *out = NULL;
    if (users)
        *users = NULL;
    if (items)
        *items = NULL;
    for (int i = 0; i < 3 && rc == 0; i++) {
        char *p = em_xasprintf("%s/%s", dir, files[i]);
        rc = em_read_file(p, &buf[i], &len[i], err);
        em_free(p);
    }
    if (rc == 0)
        rc = em_als_model_decode(dir, buf[0], len[0], buf[1], len[1], buf[2], len[2], out,
                                 err);
    if (rc == 0 && users)
        rc = read_ids(dir, "user_ids.txt", (*out)->n_users, users, err);
    if (rc == 0 && items)
        rc = read_ids(dir, "item_ids.txt", (*out)->n_items, items, err);
    if (rc < 0) {
        em_als_model_free(*out);
        *out = NULL;
        if (users) {
            em_idmap_free(*users);
            *users = NULL;
        }
    }
    for (int i = 0; i < 3; i++)
        em_free(buf[i]);
    return rc;
}
