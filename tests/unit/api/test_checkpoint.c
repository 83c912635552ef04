/* tests/unit/api/test_checkpoint.c - reliable and local checkpoints: lineage cut to one
 * node, identical results, partitioner kept, shuffles after a checkpoint, corrupt/missing
 * parts named in errors, no checkpoint dir, cleanup at context end (only when asked), and
 * reading a checkpoint after the shuffle files it came from are gone. */
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api_test_util.h"

static char g_dir[64];

static void setup(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/ember-ckpt-XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
}

static void teardown(void)
{
    em_err err = EM_ERR_INIT;
    em_rm_rf(g_dir, &err);
}

static em_context *ctx(const char *cleanup, bool set_dir)
{
    em_conf *c = em_conf_new();
    em_err err = EM_ERR_INIT;
    em_conf_set(c, "ember.master", "local[2]");
    em_conf_set(c, "ember.executor.memory", "64m");
    if (set_dir)
        em_conf_set(c, "ember.checkpoint.dir", g_dir);
    if (cleanup)
        em_conf_set(c, "ember.checkpoint.cleanup", cleanup);
    em_context *sc = em_context_new(c, &err);
    em_conf_free(c);
    cr_assert_not_null(sc, "context: %s", err.msg);
    return sc;
}

/* (key<k>, sum) over skewed random pairs: a shuffled, HASH-partitioned dataset. */
static em_rdd *summed(em_context *sc, tu_kv *d)
{
    *d = tu_random_kv(3000, 200, 7);
    em_rdd *p = em_parallelize(sc, EM_REC_KV, 0, d->recs, d->n, 4);
    return em_rdd_reduce_by_key(p, "em.sum_i64", em_slice_make(NULL, 0), 3);
}

static tu_list collect_list(em_rdd *r)
{
    em_records recs;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_rdd_collect(r, &recs, &err), 0, "collect: %s", err.msg);
    tu_list l = tu_from_records(&recs);
    em_records_destroy(&recs);
    return l;
}

TestSuite(checkpoint, .init = setup, .fini = teardown, .timeout = 60);

Test(checkpoint, cuts_lineage_keeps_results_and_partitioner)
{
    em_context *sc = ctx(NULL, true);
    tu_kv d;
    em_rdd *s = summed(sc, &d);
    em_err err = EM_ERR_INIT;
    cr_assert_gt(em_rdd_lineage_depth(s), 1);
    em_rdd *c = em_rdd_checkpoint(s, &err);
    cr_assert_not_null(c, "checkpoint: %s", err.msg);
    cr_assert_eq(em_rdd_lineage_depth(c), 1);
    cr_assert_eq(em_rdd_num_partitions(c), 3);
    cr_assert_eq(em_rdd_partitioner(c), EM_PART_HASH);
    tu_list want = collect_list(s);   /* same partitions, so the same order */
    tu_check(c, &want, true, "checkpoint");
    for (uint32_t i = 0; i < 3; i++) {
        struct stat st;
        const char *p = em_rdd_checkpoint_part(c, i);
        cr_assert_not_null(p);
        cr_assert_eq(strncmp(p, g_dir, strlen(g_dir)), 0, "%s under %s", p, g_dir);
        cr_assert_eq(stat(p, &st), 0, "%s", p);
    }
    cr_assert_null(em_rdd_checkpoint_part(c, 3));

    /* Further pair ops: co-partitioned (no new shuffle) and a real shuffle. */
    em_context_stats st0, st1;
    em_rdd *g = em_rdd_group_by_key(c, 3);
    em_rdd *g0 = em_rdd_group_by_key(s, 3);
    tu_list wg = collect_list(g0);
    em_context_stats_get(sc, &st0);
    tu_check(g, &wg, false, "group after checkpoint");
    em_context_stats_get(sc, &st1);
    cr_assert_eq(st1.map_tasks_run, st0.map_tasks_run, "co-partitioned: no map tasks");
    /* (sum, key) pairs: sums repeat, so group_by_key's lists would depend on arrival
     * order; their smallest key does not. */
    em_rdd *sw = em_rdd_reduce_by_key(em_rdd_map(c, "em.swap", em_slice_make(NULL, 0)),
                                      "em.min_bytes", em_slice_make(NULL, 0), 5);
    em_rdd *sw0 = em_rdd_reduce_by_key(em_rdd_map(s, "em.swap", em_slice_make(NULL, 0)),
                                       "em.min_bytes", em_slice_make(NULL, 0), 5);
    tu_list ws = collect_list(sw0);
    tu_check(sw, &ws, false, "shuffle after checkpoint");
    /* A checkpoint of a checkpoint's descendant works too. */
    em_rdd *c2 = em_rdd_checkpoint(sw, &err);
    cr_assert_not_null(c2, "%s", err.msg);
    ws = collect_list(sw0);
    tu_check(c2, &ws, false, "second checkpoint");
    em_context_free(sc);
    tu_kv_free(&d);
}

Test(checkpoint, survives_lost_shuffle_files)
{
    em_context *sc = ctx(NULL, true);
    tu_kv d;
    em_rdd *s = summed(sc, &d);
    em_err err = EM_ERR_INIT;
    em_rdd *c = em_rdd_checkpoint(s, &err);
    cr_assert_not_null(c, "%s", err.msg);
    tu_list want = collect_list(s);
    /* Whatever wrote it is gone: shuffle outputs removed. */
    char sh[4096];
    snprintf(sh, sizeof sh, "%s/shuffle", em_context_app_dir(sc));
    cr_assert_eq(em_rm_rf(sh, &err), 0);
    cr_assert_eq(em_mkdir_p(sh, &err), 0);
    em_context_stats a, b;
    em_context_stats_get(sc, &a);
    tu_check(c, &want, true, "after losing shuffle files");
    em_context_stats_get(sc, &b);
    cr_assert_eq(b.map_tasks_run, a.map_tasks_run, "no recomputation");
    em_context_free(sc);
    tu_kv_free(&d);
}

static void flip_byte(const char *path, long off)
{
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fseek(f, off, off < 0 ? SEEK_END : SEEK_SET), 0);
    int ch = fgetc(f);
    cr_assert_neq(ch, EOF);
    cr_assert_eq(fseek(f, -1, SEEK_CUR), 0);
    fputc(ch ^ 0x5a, f);
    fclose(f);
}

Test(checkpoint, corrupt_or_missing_part_is_named)
{
    em_context *sc = ctx(NULL, true);
    tu_kv d;
    em_rdd *s = summed(sc, &d);
    em_err err = EM_ERR_INIT;
    em_records recs;
    const long offs[] = {50, -3, -40};   /* payload, trailer crc, trailer counts */
    for (size_t k = 0; k < 3; k++) {
        em_rdd *c = em_rdd_checkpoint(s, &err);
        cr_assert_not_null(c, "%s", err.msg);
        const char *p = em_rdd_checkpoint_part(c, 1);
        flip_byte(p, offs[k]);
        err = (em_err)EM_ERR_INIT;
        int rc = em_rdd_collect(c, &recs, &err);
        cr_assert_lt(rc, 0, "corrupt part at %ld read back", offs[k]);
        cr_assert_not_null(strstr(err.msg, p), "error names %s: %s", p, err.msg);
    }
    em_rdd *c = em_rdd_checkpoint(s, &err);
    cr_assert_not_null(c, "%s", err.msg);
    const char *p = em_rdd_checkpoint_part(c, 2);
    cr_assert_eq(unlink(p), 0);
    err = (em_err)EM_ERR_INIT;
    cr_assert_lt(em_rdd_count(c, &(uint64_t){0}, &err), 0);
    cr_assert_not_null(strstr(err.msg, p), "error names %s: %s", p, err.msg);
    em_context_free(sc);
    tu_kv_free(&d);
}

Test(checkpoint, no_dir_and_plan_errors)
{
    em_context *sc = ctx(NULL, false);
    tu_kv d;
    em_rdd *s = summed(sc, &d);
    em_err err = EM_ERR_INIT;
    cr_assert_null(em_rdd_checkpoint(s, &err));
    cr_assert_eq(err.code, EM_EINVAL);
    cr_assert_not_null(strstr(err.msg, "ember.checkpoint.dir"), "%s", err.msg);
    em_rdd *bad = em_rdd_map(s, "no.such.fn", em_slice_make(NULL, 0));
    err = (em_err)EM_ERR_INIT;
    cr_assert_null(em_rdd_local_checkpoint(bad, &err));
    cr_assert_eq(err.code, EM_EPLAN, "%d %s", err.code, err.msg);
    em_context_free(sc);
    tu_kv_free(&d);
}

static bool dir_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void parent_dir(const char *part, char *out, size_t n)
{
    snprintf(out, n, "%s", part);
    *strrchr(out, '/') = '\0';
}

Test(checkpoint, cleanup_only_when_asked)
{
    char kept[4096], gone[4096];
    for (int pass = 0; pass < 2; pass++) {
        em_context *sc = ctx(pass ? "true" : NULL, true);
        tu_kv d;
        em_rdd *s = summed(sc, &d);
        em_err err = EM_ERR_INIT;
        em_rdd *c = em_rdd_checkpoint(s, &err);
        cr_assert_not_null(c, "%s", err.msg);
        parent_dir(em_rdd_checkpoint_part(c, 0), pass ? gone : kept, sizeof kept);
        cr_assert(dir_exists(pass ? gone : kept));
        em_context_free(sc);
        tu_kv_free(&d);
    }
    cr_assert(dir_exists(kept), "default keeps %s (as Spark)", kept);
    cr_assert(!dir_exists(gone), "cleanup=true removes %s", gone);
    *strrchr(gone, '/') = '\0';
    cr_assert(!dir_exists(gone), "and its empty application directory %s", gone);
}

Test(checkpoint, local_checkpoint)
{
    em_context *sc = ctx(NULL, false);   /* needs no directory */
    tu_kv d;
    em_rdd *s = summed(sc, &d);
    em_err err = EM_ERR_INIT;
    em_rdd *c = em_rdd_local_checkpoint(s, &err);
    cr_assert_not_null(c, "local checkpoint: %s", err.msg);
    cr_assert_eq(em_rdd_lineage_depth(c), 1);
    cr_assert_eq(em_rdd_partitioner(c), EM_PART_HASH);
    cr_assert_null(em_rdd_checkpoint_part(c, 0));
    tu_list want = collect_list(s);
    tu_check(c, &want, true, "local checkpoint");
    want = collect_list(s);
    tu_check(c, &want, true, "local checkpoint, second read");
    em_rdd *g = em_rdd_reduce_by_key(em_rdd_map(c, "em.swap", em_slice_make(NULL, 0)),
                                     "em.min_bytes", em_slice_make(NULL, 0), 2);
    em_rdd *g0 = em_rdd_reduce_by_key(em_rdd_map(s, "em.swap", em_slice_make(NULL, 0)),
                                      "em.min_bytes", em_slice_make(NULL, 0), 2);
    tu_list wg = collect_list(g0);
    tu_check(g, &wg, false, "shuffle after local checkpoint");
    em_context_free(sc);
    tu_kv_free(&d);
}
