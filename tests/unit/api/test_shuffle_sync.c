/* tests/unit/api/test_shuffle_sync.c - ember.shuffle.sync (default false) and the context's
 * shuffle cleaner: a shuffle job gives the same answer with and without sync, in local[2]
 * and local-cluster[2,1] (the setting reaches the executors in the `registered` message);
 * a bad value is EM_EINVAL naming the key; releasing a dataset returns before its files
 * are gone and they go soon after; a context ended right after a release leaves no
 * directory behind. */
#include <sys/stat.h>

#include "api_test_util.h"
#include "engine/api/api_int.h"

static const em_slice none = {NULL, 0};

static em_context *ctx_sync(const char *master, const char *sync, em_err *err)
{
    em_conf *c = em_conf_new();
    em_conf_set(c, "ember.master", master);
    em_conf_set(c, "ember.executor.memory", "64m");
    if (sync)
        em_conf_set(c, "ember.shuffle.sync", sync);
    em_context *sc = em_context_new(c, err);
    em_conf_free(c);
    return sc;
}

/* sum over keys of reduce_by_key(k = i % 17, v = i) for i < 5000 (= sum of i) */
static int64_t shuffle_sum(em_context *sc)
{
    em_err err = EM_ERR_INIT;
    em_rec *recs = calloc(5000, sizeof *recs);
    uint8_t *b = calloc(5000, 16);
    for (int i = 0; i < 5000; i++) {
        em_enc_i64(b + 16 * i, i % 17);
        em_enc_i64(b + 16 * i + 8, i);
        recs[i] = (em_rec){em_slice_make(b + 16 * i, 8), em_slice_make(b + 16 * i + 8, 8)};
    }
    em_rdd *a = em_parallelize(sc, EM_REC_KV, 0, recs, 5000, 4);
    em_rdd *r = em_rdd_reduce_by_key(a, "em.sum_i64", none, 3);
    em_records out = {0};
    cr_assert_eq(em_rdd_collect(r, &out, &err), 0, "%s", err.msg);
    cr_assert_eq(out.n, 17);
    int64_t s = 0;
    for (size_t i = 0; i < out.n; i++)
        s += em_dec_i64(out.recs[i].val.p);
    em_records_destroy(&out);
    em_rdd_release(r);
    em_rdd_release(a);
    free(recs);
    free(b);
    return s;
}

static void same_answer(const char *master)
{
    const char *settings[] = {NULL, "false", "true"};
    for (size_t i = 0; i < 3; i++) {
        em_err err = EM_ERR_INIT;
        em_context *sc = ctx_sync(master, settings[i], &err);
        cr_assert_not_null(sc, "%s", err.msg);
        cr_assert_eq(sc->shuffle_sync, i == 2);
        cr_assert_eq(shuffle_sum(sc), (int64_t)5000 * 4999 / 2, "%s sync=%s", master,
                     settings[i] ? settings[i] : "(default)");
        em_context_free(sc);
    }
}

Test(shuffle_sync, same_answer_local, .timeout = 60)
{
    same_answer("local[2]");
}

Test(shuffle_sync, same_answer_local_cluster, .timeout = 120)
{
    same_answer("local-cluster[2,1]");
}

Test(shuffle_sync, bad_value_is_einval, .timeout = 30)
{
    em_err err = EM_ERR_INIT;
    em_context *sc = ctx_sync("local[2]", "yes", &err);
    cr_assert_null(sc);
    cr_assert_eq(err.code, EM_EINVAL);
    cr_assert(strstr(err.msg, "ember.shuffle.sync"), "%s", err.msg);
}

Test(shuffle_sync, released_files_go_off_the_driver_thread_and_at_context_end, .timeout = 60)
{
    em_err err = EM_ERR_INIT;
    em_context *sc = ctx_sync("local[2]", NULL, &err);
    cr_assert_not_null(sc, "%s", err.msg);
    cr_assert_not_null(sc->cleaner);
    cr_assert_eq(shuffle_sum(sc), (int64_t)5000 * 4999 / 2);   /* releases its shuffle */
    em_shuffle_cleaner_wait(sc->cleaner);
    size_t left = 0;
    char path[512];
    for (uint32_t m = 0; m < 4; m++) {
        struct stat st;
        em_shuffle_index_path(sc->shuffle_dir, 1, m, path, sizeof path);
        left += stat(path, &st) == 0;
    }
    cr_assert_eq(left, 0, "%zu index files of shuffle 1 left", left);
    /* a release just before the end: the context still leaves nothing behind */
    cr_assert_eq(shuffle_sum(sc), (int64_t)5000 * 4999 / 2);
    char *app = strdup(sc->app_dir);
    em_context_free(sc);
    struct stat st;
    cr_assert_neq(stat(app, &st), 0, "%s is left behind", app);
    free(app);
}
