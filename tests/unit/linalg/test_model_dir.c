/* tests/unit/linalg/test_model_dir.c - saved-model directories: a round trip keeps every
 * value bit for bit; an existing DIR, a missing parent, a flipped byte in an array, a
 * truncated array, another model's class and a newer version are refused with a message
 * naming the file; a failed write leaves no directory behind. */
#define _XOPEN_SOURCE 700
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mllib/linalg/model_dir.h"

static char g_root[64];

static void setup(void)
{
    strcpy(g_root, "/tmp/ember-test-modeldir-XXXXXX");
    cr_assert(mkdtemp(g_root));
}

static void teardown(void)
{
    em_rm_rf(g_root, NULL);
}

TestSuite(model_dir, .init = setup, .fini = teardown);

static char *save_one(void)
{
    char *dir = em_xasprintf("%s/m", g_root);
    double w[5] = {1.5, -0.0, 1e-300, 3.25e10, -7};
    double b[1] = {0.125};
    em_ml_array arr[] = {{.name = "coef", .data = w, .count = 5},
                         {.name = "intercept", .data = b, .count = 1}};
    json_t *meta = json_pack("{s:i, s:s}", "dim", 5, "kind", "logistic");
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_ml_model_dir_write(dir, "ember.Test", 1, meta, arr, 2, &err), 0, "%s",
                 err.msg);
    json_decref(meta);
    return dir;
}

Test(model_dir, round_trip)
{
    char *dir = save_one();
    json_t *meta;
    em_ml_array arr[] = {{.name = "coef", .max_count = 5}, {.name = "intercept", .max_count = 1}};
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_ml_model_dir_read(dir, "ember.Test", 1, &meta, arr, 2, &err), 0, "%s",
                 err.msg);
    double w[5] = {1.5, -0.0, 1e-300, 3.25e10, -7};
    cr_assert_eq(arr[0].count, 5);
    cr_assert_eq(memcmp(arr[0].data, w, sizeof w), 0);
    cr_assert_eq(arr[1].data[0], 0.125);
    uint64_t dim;
    const char *kind;
    cr_assert_eq(em_ml_meta_u64(dir, meta, "dim", 100, &dim, &err), 0);
    cr_assert_eq(dim, 5);
    cr_assert_eq(em_ml_meta_str(dir, meta, "kind", &kind, &err), 0);
    cr_assert_str_eq(kind, "logistic");
    cr_assert_neq(em_ml_meta_u64(dir, meta, "dim", 4, &dim, &err), 0);
    json_decref(meta);
    em_free(arr[0].data);
    em_free(arr[1].data);
    /* Saving again into the same place is refused before anything is written. */
    cr_assert_neq(em_ml_model_dir_write(dir, "ember.Test", 1, NULL, NULL, 0, &err), 0);
    cr_assert(strstr(err.msg, "already exists"), "%s", err.msg);
    em_free(dir);
}

static int read_err(const char *dir, const char *cls, int ver, size_t max, em_err *err)
{
    json_t *meta = NULL;
    em_ml_array arr[] = {{.name = "coef", .max_count = max}};
    int rc = em_ml_model_dir_read(dir, cls, ver, &meta, arr, 1, err);
    cr_assert(rc < 0 || (meta && arr[0].data));
    json_decref(meta);
    em_free(arr[0].data);
    return rc;
}

Test(model_dir, damage_is_refused)
{
    char *dir = save_one();
    em_err err = EM_ERR_INIT;
    cr_assert_neq(read_err(dir, "ember.Other", 1, 5, &err), 0);
    cr_assert(strstr(err.msg, "ember.Test"), "%s", err.msg);
    cr_assert_neq(read_err(dir, "ember.Test", 1, 4, &err), 0);   /* more than expected */
    char *p = em_xasprintf("%s/coef.bin", dir);
    FILE *f = fopen(p, "r+b");
    cr_assert(f);
    fseek(f, 13, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 13, SEEK_SET);
    fputc(c ^ 0x10, f);
    fclose(f);
    cr_assert_neq(read_err(dir, "ember.Test", 1, 5, &err), 0);
    cr_assert(strstr(err.msg, "checksum") && strstr(err.msg, "coef.bin"), "%s", err.msg);
    cr_assert_eq(truncate(p, 16), 0);
    cr_assert_neq(read_err(dir, "ember.Test", 1, 5, &err), 0);
    cr_assert(strstr(err.msg, "bytes"), "%s", err.msg);
    em_free(p);
    em_free(dir);
}

Test(model_dir, version_and_paths)
{
    char *dir = save_one();
    em_err err = EM_ERR_INIT;
    json_t *meta;
    const char *txt = "{\"class\": \"ember.Test\", \"version\": 2, \"arrays\": {}}";
    cr_assert_neq(em_ml_model_meta_parse("m.json", (const uint8_t *)txt, strlen(txt),
                                         "ember.Test", 1, &meta, &err), 0);
    cr_assert(strstr(err.msg, "version 2"), "%s", err.msg);
    cr_assert_eq(em_ml_model_meta_parse("m.json", (const uint8_t *)txt, strlen(txt),
                                        "ember.Test", 2, &meta, &err), 0, "%s", err.msg);
    json_decref(meta);
    char *bad = em_xasprintf("%s/no/such/dir", g_root);
    cr_assert_neq(em_ml_model_dir_check_new(bad, &err), 0);
    cr_assert(strstr(err.msg, "parent"), "%s", err.msg);
    cr_assert_neq(em_ml_model_dir_check_new(dir, &err), 0);
    em_free(bad);
    em_free(dir);
}
