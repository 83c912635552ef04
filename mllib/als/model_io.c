/* mllib/als/model_io.c - saving and loading the ALS model directory (format in model.c).
 * Loading treats every file as untrusted: sizes are checked against the metadata before any
 * copy, and em_als_model_decode is the fuzz target (tests/fuzz/fuzz_model.c). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mllib/als/als_int.h"

/* The ids of one side, one a line, into b (empty when there is no map for every row). */
static int ids_bytes(const em_idmap *ids, int32_t n, em_vbuf *b)
{
    char buf[24];
    for (int32_t i = 0; i < n; i++) {
        const char *s = em_idmap_name(ids, i, buf);
        if (em_vbuf_printf(b, "%s\n", s ? s : "") < 0)
            return EM_ENOMEM;
    }
    return 0;
}

static int write_in(const char *dir, const char *file, const void *p, size_t n, em_err *err)
{
    char *path = em_xasprintf("%s/%s", dir, file);
    int rc = em_write_file_atomic(path, n ? p : "", n, err);
    em_free(path);
    return rc;
}

/* Version 2: metadata.json holds the crc32c (Castagnoli, em_crc32c from 0) of every other
 * file, so a flipped bit anywhere is found on load instead of recommending with inf. */
static int save_files(const em_als_model *m, const char *tmp, const em_idmap *users,
                      const em_idmap *items, em_err *err)
{
    size_t ub = (size_t)m->n_users * m->rank * 4, ib = (size_t)m->n_items * m->rank * 4;
    bool has_u = users && em_idmap_size(users) >= m->n_users;
    bool has_i = items && em_idmap_size(items) >= m->n_items;
    em_vbuf uid, iid;
    em_vbuf_init(&uid);
    em_vbuf_init(&iid);
    int rc = 0;
    if ((has_u && ids_bytes(users, m->n_users, &uid) < 0) ||
        (has_i && ids_bytes(items, m->n_items, &iid) < 0))
        rc = em_err_set(err, EM_ENOMEM, "als save: id files");
    json_t *j = rc ? NULL : json_pack("{s:s,s:i,s:i,s:i,s:i,s:b,s:I,s:I}", "class",
                                      "ember.als", "version", 2, "rank", m->rank, "n_users",
                                      (int)m->n_users, "n_items", (int)m->n_items,
                                      "implicit", m->implicit, "user_factors_crc32c",
                                      (json_int_t)em_crc32c(0, m->user_factors, ub),
                                      "item_factors_crc32c",
                                      (json_int_t)em_crc32c(0, m->item_factors, ib));
    if (j && has_u)
        json_object_set_new(j, "user_ids_crc32c",
                            json_integer((json_int_t)em_crc32c(0, uid.data, uid.len)));
    if (j && has_i)
        json_object_set_new(j, "item_ids_crc32c",
                            json_integer((json_int_t)em_crc32c(0, iid.data, iid.len)));
    char *meta = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    json_decref(j);
    if (rc == 0 && !meta)
        rc = em_err_set(err, EM_ENOMEM, "als save: metadata");
    /* The factors first, the metadata naming their checksums last. */
    if (rc == 0)
        rc = write_in(tmp, "user_factors.bin", m->user_factors, ub, err);
    if (rc == 0)
        rc = write_in(tmp, "item_factors.bin", m->item_factors, ib, err);
    if (rc == 0 && has_u)
        rc = write_in(tmp, "user_ids.txt", uid.data, uid.len, err);
    if (rc == 0 && has_i)
        rc = write_in(tmp, "item_ids.txt", iid.data, iid.len, err);
    if (rc == 0)
        rc = write_in(tmp, "metadata.json", meta, strlen(meta), err);
    free(meta);
    em_vbuf_destroy(&uid);
    em_vbuf_destroy(&iid);
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

/* The checksum `key` of a version 2 metadata object: 0 and *crc, 1 when absent (allowed for
 * the id files only), -1 when malformed. */
static int meta_crc(json_t *j, const char *key, uint32_t *crc)
{
    json_int_t v;
    if (!json_object_get(j, key))
        return 1;
    if (meta_int(j, key, 0, UINT32_MAX, &v) < 0)
        return -1;
    *crc = (uint32_t)v;
    return 0;
}

/* Checks the bytes of dir/file against the checksum the metadata gives for it. */
static int check_crc(const char *name, const char *file, const void *p, size_t n,
                     uint32_t want, em_err *err)
{
    uint32_t got = em_crc32c(0, p, n);
    if (got != want)
        return em_err_set(err, EM_ECORRUPT, "%s/%s: checksum mismatch (crc32c %08x, "
                          "metadata.json says %08x): the file is damaged", name, file, got,
                          want);
    return 0;
}

/* Factors are finite or NaN (a cold row): an infinity can only come from damage. */
static int check_finite(const char *name, const char *file, const uint8_t *p, size_t n,
                        em_err *err)
{
    for (size_t i = 0; i + 4 <= n; i += 4) {
        float f;
        memcpy(&f, p + i, 4);
        if (isinf(f))
            return em_err_set(err, EM_ECORRUPT, "%s/%s: float %zu is infinite: the file is "
                              "damaged", name, file, i / 4);
    }
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
    json_int_t ver = 0;
    uint32_t ucrc = 0, icrc = 0;
    int bad = !json_is_string(cls) || strcmp(json_string_value(cls), "ember.als") != 0 ||
              meta_int(j, "version", 1, 2, &ver) < 0 ||
              meta_int(j, "rank", 1, EM__ALS_MAX_RANK, &rank) < 0 ||
              meta_int(j, "n_users", 0, INT32_MAX, &nu) < 0 ||
              meta_int(j, "n_items", 0, INT32_MAX, &ni) < 0 || (imp && !json_is_boolean(imp));
    /* Version 1 (before checksums) still loads; version 2 must name both factor sums. */
    if (!bad && ver == 2)
        bad = meta_crc(j, "user_factors_crc32c", &ucrc) != 0 ||
              meta_crc(j, "item_factors_crc32c", &icrc) != 0 ? 2 : 0;
    bool implicit = imp && json_is_true(imp);
    json_decref(j);
    if (bad == 2)
        return em_err_set(err, EM_ECORRUPT, "%s/metadata.json: version 2 without "
                          "user_factors_crc32c and item_factors_crc32c", name);
    if (bad)
        return em_err_set(err, EM_ECORRUPT, "%s/metadata.json: not an ember.als version 1 "
                          "or 2 model (class, version, rank 1..%d, n_users, n_items)", name,
                          EM__ALS_MAX_RANK);
    if ((uint64_t)nu * (uint64_t)rank * 4 != uf_len)
        return em_err_set(err, EM_ECORRUPT, "%s/user_factors.bin: %zu bytes, expected %lld "
                          "x %lld floats", name, uf_len, (long long)nu, (long long)rank);
    if ((uint64_t)ni * (uint64_t)rank * 4 != if_len)
        return em_err_set(err, EM_ECORRUPT, "%s/item_factors.bin: %zu bytes, expected %lld "
                          "x %lld floats", name, if_len, (long long)ni, (long long)rank);
    int rc = 0;
    if (ver == 2 && ((rc = check_crc(name, "user_factors.bin", uf, uf_len, ucrc, err)) < 0 ||
                     (rc = check_crc(name, "item_factors.bin", itf, if_len, icrc, err)) < 0))
        return rc;
    if ((rc = check_finite(name, "user_factors.bin", uf, uf_len, err)) < 0 ||
        (rc = check_finite(name, "item_factors.bin", itf, if_len, err)) < 0)
        return rc;
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

/* Reads dir/file (optional) into *out, checked against the checksum `crc_key` of the
 * metadata when it has one (version 2 writes it for every id file it writes). */
static int read_ids(const char *dir, const char *file, const uint8_t *meta, size_t meta_len,
                    const char *crc_key, int32_t n, em_idmap **out, em_err *err)
{
    char *p = em_xasprintf("%s/%s", dir, file);
    uint8_t *b = NULL;
    size_t len = 0;
    int rc = 0;
    json_t *j = json_loadb((const char *)meta, meta_len, 0, NULL);   /* decoded before */
    uint32_t crc = 0;
    int has = j ? meta_crc(j, crc_key, &crc) : 1;
    json_decref(j);
    if (access(p, F_OK) != 0) {
        if (has == 0)
            rc = em_err_set(err, EM_ECORRUPT, "%s: missing (metadata.json names its "
                            "checksum)", p);
        goto out;   /* optional */
    }
    if ((rc = em_read_file(p, &b, &len, err)) < 0 ||
        (has == 0 && (rc = check_crc(dir, file, b, len, crc, err)) < 0))
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
        rc = read_ids(dir, "user_ids.txt", buf[0], len[0], "user_ids_crc32c", (*out)->n_users,
                      users, err);
    if (rc == 0 && items)
        rc = read_ids(dir, "item_ids.txt", buf[0], len[0], "item_ids_crc32c", (*out)->n_items,
                      items, err);
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
