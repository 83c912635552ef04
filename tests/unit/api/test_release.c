/* tests/unit/api/test_release.c - em_rdd_release (engine/api/release.c): a dataset that dies
 * takes its shuffle (tracker entry and files), its cached partitions, its parallelized
 * input and its local checkpoint blocks with it; anything a living dataset still needs
 * survives and is reused; released handles are errors, not crashes; internal handles of
 * distinct/join/count_by_key/... leave nothing behind; spill files go at task end; in
 * local-cluster[2,1] the executors delete a dead shuffle's files. The expectations are
 * exact: file names come from shuffle/shuffle.h (shuffle_<sid>_<mid>.*), shuffle ids from
 * the plan nodes. */
#include <dirent.h>
#include <glob.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api_test_util.h"
#include "engine/api/api_int.h"

static const em_slice none = {NULL, 0};

static em_context *ctx_with(const char *master, const char *shuffle_mem, const char *ckpt_dir)
{
    em_conf *c = em_conf_new();
    em_err err = EM_ERR_INIT;
    em_conf_set(c, "ember.master", master);
    em_conf_set(c, "ember.executor.memory", "64m");
    em_conf_set(c, "ember.task.maxFailures", "1");
    if (shuffle_mem)
        em_conf_set(c, "ember.shuffle.memory", shuffle_mem);
    if (ckpt_dir) {
        em_conf_set(c, "ember.checkpoint.dir", ckpt_dir);
        em_conf_set(c, "ember.checkpoint.cleanup", "true");
    }
    em_context *sc = em_context_new(c, &err);
    em_conf_free(c);
    cr_assert_not_null(sc, "context: %s", err.msg);
    return sc;
}

/* Files in dir whose name starts with prefix ("" = every entry but . and ..). */
static size_t count_prefix(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *e;
    cr_assert_not_null(d, "%s", dir);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
            strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            n++;
    closedir(d);
    return n;
}

static size_t sid_files(const char *dir, uint32_t sid)
{
    char prefix[32];
    snprintf(prefix, sizeof prefix, "shuffle_%u_", sid);
    return count_prefix(dir, prefix);
}

/* Local mode deletes dead shuffles on the context's cleaner thread: counts after what was
 * queued so far is done. */
static void settle(em_context *sc)
{
    if (sc->cleaner)
        em_shuffle_cleaner_wait(sc->cleaner);
}

static size_t shuffle_files(em_context *sc, uint32_t sid)
{
    settle(sc);
    return sid_files(sc->shuffle_dir, sid);
}

static size_t shuffle_dir_files(em_context *sc)
{
    settle(sc);
    return count_prefix(sc->shuffle_dir, "");
}

static uint32_t sid_of(const em_rdd *r)
{
    cr_assert_eq(r->node->op, EM_OP_SHUFFLED, "rdd %u is not a shuffle", r->node->id);
    return r->node->shuffle_id;
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

static uint64_t count_of(em_rdd *r)
{
    uint64_t n = 0;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_rdd_count(r, &n, &err), 0, "count: %s", err.msg);
    return n;
}

static em_rdd *kv_input(em_context *sc, tu_kv *d, uint32_t nparts)
{
    return em_parallelize(sc, EM_REC_KV, 0, d->recs, d->n, nparts);
}

Test(release, chain_frees_every_shuffle_once_nothing_needs_it, .timeout = 60)
{
    em_context *sc = ctx_with("local[2]", NULL, NULL);
    tu_kv d = tu_random_kv(3000, 50, 1);
    em_rdd *a = kv_input(sc, &d, 4);
    em_rdd *s1 = em_rdd_reduce_by_key(a, "em.sum_i64", none, 3);
    em_rdd *m = em_rdd_map(s1, "em.swap", none);
    em_rdd *s2 = em_rdd_group_by_key(m, 2);
    em_rdd *s3 = em_rdd_repartition(s2, 3);
    uint32_t sids[3] = {sid_of(s1), sid_of(s2), sid_of(s3)};
    uint32_t nmaps[3] = {4, 3, 2};
    tu_list first = collect_list(s3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(shuffle_files(sc, sids[i]), 2 * nmaps[i], "shuffle %u", sids[i]);
        cr_assert(em_map_tracker_has_shuffle(sc->tracker, sids[i]));
    }
    /* s3 needs the whole chain: releasing the rest frees nothing */
    em_rdd_release(a);
    em_rdd_release(s1);
    em_rdd_release(m);
    em_rdd_release(s2);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(shuffle_files(sc, sids[i]), 2 * nmaps[i], "shuffle %u", sids[i]);
    /* ... and the next job over s3 reuses every map output: no map task runs */
    em_context_stats st0, st1;
    em_context_stats_get(sc, &st0);
    tu_list again = collect_list(s3);
    em_context_stats_get(sc, &st1);
    cr_assert_eq(st1.map_tasks_run, st0.map_tasks_run);
    cr_assert_eq(st1.stages_skipped, st0.stages_skipped + 3);
    tu_expect(&again, &first, false, "after releasing the lineage's handles");
    tu_free(&again);
    tu_free(&first);
    /* the last handle goes: every shuffle, tracker entry and input block with it */
    cr_assert(em__rdd_is_released(a));
    em_rdd_release(s3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(shuffle_files(sc, sids[i]), 0, "shuffle %u", sids[i]);
        cr_assert(!em_map_tracker_has_shuffle(sc->tracker, sids[i]));
        cr_assert_eq(em_map_tracker_missing(sc->tracker, sids[i], NULL), 0);
    }
    cr_assert_eq(shuffle_dir_files(sc), 0);
    em_context_free(sc);
    tu_kv_free(&d);
}

Test(release, input_blocks_and_nodes_go_with_the_dataset)
{
    em_context *sc = ctx_with("local[2]", NULL, NULL);
    tu_kv d = tu_random_kv(100, 5, 2);
    em_rdd *a = kv_input(sc, &d, 3);
    uint32_t id = em_rdd_id(a);
    em_rdd *b = em_rdd_map(a, "em.swap", none);
    for (uint32_t p = 0; p < 3; p++)
        cr_assert(em_block_store_contains(sc->store, (em_block_id){EM_BLOCK_INPUT, id, p, 0}));
    em_rdd_release(a);   /* b still reads it */
    cr_assert(em_block_store_contains(sc->store, (em_block_id){EM_BLOCK_INPUT, id, 0, 0}));
    cr_assert_eq(count_of(b), 100);
    cr_assert_not_null(em_plan_graph_find(sc->graph, id));
    em_rdd_release(b);
    for (uint32_t p = 0; p < 3; p++)
        cr_assert(!em_block_store_contains(sc->store, (em_block_id){EM_BLOCK_INPUT, id, p, 0}));
    cr_assert_null(em_plan_graph_find(sc->graph, id), "node %u still in the graph", id);
    em_context_free(sc);
    tu_kv_free(&d);
}

Test(release, a_live_shuffle_survives_its_siblings_release, .timeout = 60)
{
    em_context *sc = ctx_with("local[2]", NULL, NULL);
    tu_kv d = tu_random_kv(2000, 40, 3);
    em_rdd *a = kv_input(sc, &d, 4);
    em_rdd *x = em_rdd_reduce_by_key(a, "em.sum_i64", none, 2);
    em_rdd *y = em_rdd_group_by_key(a, 3);
    em_rdd *ys = em_rdd_map(y, "em.swap", none);   /* any narrow child */
    uint32_t sx = sid_of(x), sy = sid_of(y);
    tu_list want = collect_list(x);
    cr_assert_gt(count_of(ys), 0);
    em_rdd_release(a);
    em_rdd_release(y);
    cr_assert_eq(shuffle_files(sc, sy), 8, "ys keeps y's shuffle");
    em_rdd_release(ys);
    cr_assert_eq(shuffle_files(sc, sy), 0);
    cr_assert(!em_map_tracker_has_shuffle(sc->tracker, sy));
    cr_assert_eq(shuffle_files(sc, sx), 8);
    cr_assert_eq(em_map_tracker_missing(sc->tracker, sx, NULL), 0);
    em_context_stats st0, st1;
    em_context_stats_get(sc, &st0);
    tu_list got = collect_list(x);
    em_context_stats_get(sc, &st1);
    cr_assert_eq(st1.map_tasks_run, st0.map_tasks_run, "x's map outputs were reused");
    cr_assert_eq(st1.stages_skipped, st0.stages_skipped + 1);
    tu_expect(&got, &want, false, "x");
    tu_free(&got);
    tu_free(&want);
    em_rdd_release(x);
    cr_assert_eq(shuffle_dir_files(sc), 0);
    em_context_free(sc);
    tu_kv_free(&d);
}

Test(release, a_persisted_dataset_is_unpersisted)
{
    em_context *sc = ctx_with("local[2]", NULL, NULL);
    tu_kv d = tu_random_kv(500, 10, 4);
    em_rdd *a = kv_input(sc, &d, 2);
    em_rdd *p = em_rdd_persist(em_rdd_map(a, "em.swap", none), EM_PERSIST_MEMORY_AND_DISK);
    em_rdd *q = em_rdd_map_values(p, "em.values", none);
    uint32_t id = em_rdd_id(p);
    cr_assert_eq(count_of(p), 500);
    for (uint32_t i = 0; i < 2; i++)
        cr_assert(em_block_store_contains(sc->store, (em_block_id){EM_BLOCK_RDD, id, i, 0}));
    em_rdd_release(p);   /* q still depends on p: its cache stays */
    cr_assert(em_block_store_contains(sc->store, (em_block_id){EM_BLOCK_RDD, id, 0, 0}));
    em_rdd_release(q);
    for (uint32_t i = 0; i < 2; i++)
        cr_assert(!em_block_store_contains(sc->store, (em_block_id){EM_BLOCK_RDD, id, i, 0}));
    em_rdd_release(a);
    em_context_free(sc);
    tu_kv_free(&d);
}

Test(release, released_handles_are_errors_not_crashes)
{
    em_context *sc = ctx_with("local[2]", NULL, NULL);
    tu_kv d = tu_random_kv(50, 5, 5);
    em_rdd *a = kv_input(sc, &d, 2);
    em_rdd *r = em_rdd_reduce_by_key(a, "em.sum_i64", none, 2);
    cr_assert_gt(count_of(r), 0);
    em_rdd_release(r);
    em_rdd_release(r);      /* twice: a no-op */
    em_rdd_release(NULL);   /* a no-op */
    const em_err *e = em_rdd_error(r);
    cr_assert_not_null(e);
    cr_assert_eq(e->code, EM_EINVAL);
    cr_assert(strstr(e->msg, "dataset released"), "%s", e->msg);
    cr_assert_eq(em_rdd_id(r), 0);
    cr_assert_eq(em_rdd_num_partitions(r), 0);
    uint64_t n = 7;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_rdd_count(r, &n, &err), EM_EINVAL);
    cr_assert(strstr(err.msg, "dataset released"), "%s", err.msg);
    em_records recs;
    err = (em_err)EM_ERR_INIT;
    cr_assert_eq(em_rdd_collect(r, &recs, &err), EM_EINVAL);
    cr_assert_eq(recs.n, 0);
    /* transformations give invalid datasets carrying the error, whatever they are */
    em_rdd *derived[] = {em_rdd_map(r, "em.swap", none), em_rdd_group_by_key(r, 2),
                         em_rdd_union(a, r),          em_rdd_sort_by_key(r, true, 2),
                         em_rdd_coalesce(r, 1, false), em_rdd_zip_with_index(r),
                         em_rdd_partition_by(r, EM_PART_RANGE, 3), em_rdd_distinct(r, 2),
                         em_rdd_join(a, r, 2)};
    for (size_t i = 0; i < sizeof derived / sizeof *derived; i++) {
        e = em_rdd_error(derived[i]);
        cr_assert_not_null(e, "derived %zu", i);
        cr_assert(strstr(e->msg, "dataset released"), "derived %zu: %s", i, e->msg);
        err = (em_err)EM_ERR_INIT;
        cr_assert_eq(em_rdd_count(derived[i], &n, &err), EM_EINVAL, "derived %zu", i);
        em_rdd_release(derived[i]);
    }
    err = (em_err)EM_ERR_INIT;
    cr_assert_null(em_rdd_local_checkpoint(r, &err));
    cr_assert(strstr(err.msg, "dataset released"), "%s", err.msg);
    cr_assert_eq(em_rdd_persist(r, EM_PERSIST_MEMORY_ONLY), r);   /* harmless */
    em_rdd_unpersist(r);
    char *dbg = em_rdd_debug_string(r);
    cr_assert_not_null(dbg);
    em_free(dbg);
    cr_assert_eq(em_rdd_lineage_depth(r), 1);
    cr_assert_null(em_rdd_checkpoint_part(r, 0));
    /* a, still held, is intact */
    cr_assert_eq(count_of(a), 50);
    em_rdd_release(a);
    cr_assert_eq(shuffle_dir_files(sc), 0);
    em_context_free(sc);
    tu_kv_free(&d);
}

Test(release, a_handle_returned_twice_needs_two_releases)
{
    em_context *sc = ctx_with("local[2]", NULL, NULL);
    tu_kv d = tu_random_kv(300, 20, 6);
    em_rdd *a = kv_input(sc, &d, 2);
    em_rdd *b = em_rdd_coalesce(a, 5, false);       /* Spark returns the RDD itself */
    cr_assert_eq(b, a);
    em_rdd *p = em_rdd_partition_by(a, EM_PART_HASH, 3);
    em_rdd *p2 = em_rdd_partition_by(p, EM_PART_HASH, 3);
    cr_assert_eq(p2, p);
    cr_assert_eq(count_of(p), 300);
    uint32_t sid = sid_of(p);
    em_rdd_release(a);              /* b is the same handle and still held */
    cr_assert_null(em_rdd_error(b));
    cr_assert_eq(count_of(b), 300);
    em_rdd_release(p);              /* p2 holds it */
    cr_assert_eq(count_of(p2), 300);
    cr_assert_eq(shuffle_files(sc, sid), 4);
    em_rdd_release(p2);
    cr_assert_not_null(em_rdd_error(p));
    cr_assert_eq(shuffle_files(sc, sid), 0);
    em_rdd_release(b);
    cr_assert_not_null(em_rdd_error(a));
    cr_assert_eq(em_rdd_id(a), 0);
    em_context_free(sc);
    tu_kv_free(&d);
}

/* distinct count-per-key of shuffle ids whose files are present */
static size_t live_shuffles(const char *dir)
{
    DIR *d = opendir(dir);
    uint32_t seen[256];
    size_t n = 0;
    struct dirent *e;
    cr_assert_not_null(d);
    while ((e = readdir(d)) != NULL) {
        unsigned sid;
        if (sscanf(e->d_name, "shuffle_%u_", &sid) != 1)
            continue;
        bool dup = false;
        for (size_t i = 0; i < n; i++)
            dup |= seen[i] == sid;
        if (!dup && n < 256)
            seen[n++] = sid;
    }
    closedir(d);
    return n;
}

/* The ALS/PageRank pattern: next = f(cur); every K steps next = checkpoint(next); release the
 * old handles. Live shuffles stay at most K; without release they would grow to STEPS. */
static void iterate(em_context *sc, bool local_ckpt)
{
    enum { STEPS = 12, K = 3 };
    tu_kv d = tu_random_kv(400, 30, 7);
    em_rdd *in = kv_input(sc, &d, 3);
    em_rdd *cur = em_rdd_reduce_by_key(in, "em.sum_i64", none, 3);
    em_rdd_release(in);
    uint64_t want = count_of(cur);
    char ckpt_dir[4096] = "";
    for (int i = 1; i <= STEPS; i++) {
        em_rdd *sw = em_rdd_map(cur, "em.swap", none);
        em_rdd *kv = em_rdd_map(sw, "em.swap", none);
        em_rdd_release(sw);
        em_rdd *next = em_rdd_reduce_by_key(kv, "em.sum_i64", none, 3);
        em_rdd_release(kv);
        em_rdd_release(cur);
        cur = next;
        if (i % K == 0) {
            em_err err = EM_ERR_INIT;
            em_rdd *c = local_ckpt ? em_rdd_local_checkpoint(cur, &err)
                                   : em_rdd_checkpoint(cur, &err);
            cr_assert_not_null(c, "checkpoint %d: %s", i, err.msg);
            if (!local_ckpt && i == K)
                snprintf(ckpt_dir, sizeof ckpt_dir, "%s", em_rdd_checkpoint_part(c, 0));
            em_rdd_release(cur);
            cur = c;
            /* every shuffle of the steps before the checkpoint is gone */
            cr_assert_eq((settle(sc), live_shuffles(sc->shuffle_dir)), 0, "step %d", i);
        }
        cr_assert_eq(count_of(cur), want, "step %d", i);
        cr_assert_leq((settle(sc), live_shuffles(sc->shuffle_dir)), K, "step %d", i);
    }
    if (!local_ckpt) {
        /* the first checkpoint died with its handles: cleanup=true removed its files */
        cr_assert_neq(ckpt_dir[0], '\0');
        cr_assert_neq(access(ckpt_dir, F_OK), 0, "%s still there", ckpt_dir);
    }
    uint32_t ck = local_ckpt ? cur->node->ckpt_rdd : 0;
    if (local_ckpt)
        cr_assert(em_block_store_contains(sc->store, (em_block_id){EM_BLOCK_RDD, ck, 0, 0}));
    em_rdd_release(cur);
    if (local_ckpt)
        for (uint32_t p = 0; p < 3; p++)
            cr_assert(!em_block_store_contains(sc->store, (em_block_id){EM_BLOCK_RDD, ck, p, 0}));
    cr_assert_eq(shuffle_dir_files(sc), 0);
    tu_kv_free(&d);
}

Test(release, checkpoint_loop_keeps_shuffles_bounded_local, .timeout = 120)
{
    em_context *sc = ctx_with("local[2]", NULL, NULL);
    iterate(sc, true);
    em_context_free(sc);
}

Test(release, checkpoint_loop_keeps_shuffles_bounded_reliable, .timeout = 120)
{
    char root[] = "/tmp/ember-release-ckpt-XXXXXX";
    cr_assert_not_null(mkdtemp(root));
    em_context *sc = ctx_with("local[2]", NULL, root);
    iterate(sc, false);
    em_context_free(sc);
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_rm_rf(root, &err), 0, "%s", err.msg);
}

Test(release, internal_handles_leave_nothing_behind, .timeout = 120)
{
    em_context *sc = ctx_with("local[2]", NULL, NULL);
    tu_kv d = tu_random_kv(400, 25, 8);
    em_rdd *a = kv_input(sc, &d, 4);
    em_rdd *b = kv_input(sc, &d, 3);
    size_t handles = sc->nrdds;
    em_err err = EM_ERR_INIT;
    em_records recs;
    em_vbuf out;
    uint8_t zero[8];
    em_enc_i64(zero, 0);
    for (int round = 0; round < 3; round++) {
        cr_assert_eq(em_rdd_count_by_key(a, &recs, &err), 0, "%s", err.msg);
        cr_assert_eq(recs.n, 25);
        em_records_destroy(&recs);
        cr_assert_eq(em_rdd_count_by_value(a, &recs, &err), 0, "%s", err.msg);
        em_records_destroy(&recs);
        cr_assert_eq(em_rdd_lookup(a, em_slice_make("key0", 4), &recs, &err), 0, "%s", err.msg);
        cr_assert_gt(recs.n, 0);
        em_records_destroy(&recs);
        cr_assert_eq(em_rdd_take_sample(a, false, 10, 3, &recs, &err), 0, "%s", err.msg);
        em_records_destroy(&recs);
        cr_assert_eq(em_rdd_tree_aggregate(em_rdd_values(a), em_slice_make(zero, 8),
                                           "em.sum_i64", "em.sum_i64", none, 2, &out, &err),
                     0, "%s", err.msg);
        em_vbuf_destroy(&out);
        /* every shuffle those actions made is gone when they return */
        cr_assert_eq(shuffle_dir_files(sc), 0, "round %d", round);
    }
    cr_assert_eq(sc->nrdds, handles + 3, "only the three values() handles are new");
    /* transformations built from internal steps: only their result handle stays */
    handles = sc->nrdds;
    em_rdd *ds = em_rdd_distinct(a, 3);
    em_rdd *j = em_rdd_join(a, b, 2);
    em_rdd *s = em_rdd_sort_by(a, "em.keys", none, true, 2);
    cr_assert_eq(sc->nrdds, handles + 3);
    cr_assert_gt(count_of(ds), 0);
    cr_assert_gt(count_of(j), 0);
    cr_assert_eq(count_of(s), 400);
    cr_assert_gt(shuffle_dir_files(sc), 0);
    em_rdd_release(ds);
    em_rdd_release(j);
    em_rdd_release(s);
    cr_assert_eq(shuffle_dir_files(sc), 0);
    em_context_free(sc);
    tu_kv_free(&d);
}

/* Test-only hooks (local mode runs tasks in this process): the directory and name part
 * tr_fail_on_boom looks for when it fails, and how many such files it saw. Set by the test
 * before the job; read after it. */
static char g_watch_dir[4096];
static const char *g_watch_sub = "";
static atomic_size_t g_watch_seen;

static size_t count_sub(const char *dir, const char *sub)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strstr(e->d_name, sub);
    if (d)
        closedir(d);
    return n;
}

/* Fails on the record whose key is "boom" (map side or, after a shuffle, reduce side),
 * noting first how many watched files exist at that moment (the spills of the task). */
int tr_fail_on_boom(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int tr_fail_on_boom(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    if (in->key.n == 4 && memcmp(in->key.p, "boom", 4) == 0) {
        atomic_store(&g_watch_seen, count_sub(g_watch_dir, g_watch_sub));
        return em_err_set(err, EM_EINVAL, "boom");
    }
    return em_emit_kv(out, in->key, in->val, err);
}

/* n records with distinct 12-byte keys and 100-byte values, "boom" last when boom. */
static em_rdd *wide_input(em_context *sc, size_t n, bool boom, char **store)
{
    char *buf = calloc(n + 1, 112);
    em_rec *recs = calloc(n + 1, sizeof *recs);
    for (size_t i = 0; i < n; i++) {
        char *k = buf + 112 * i;
        snprintf(k, 13, "k%011u", (unsigned)((i * 7919) % n));
        memset(k + 12, 'v', 100);
        recs[i].key = em_slice_make(k, 12);
        recs[i].val = em_slice_make(k + 12, 100);
    }
    if (boom) {
        memcpy(buf + 112 * n, "boom", 4);
        recs[n].key = em_slice_make(buf + 112 * n, 4);
        recs[n].val = em_slice_make(buf + 112 * n + 12, 0);
    }
    em_rdd *r = em_parallelize(sc, EM_REC_KV, 0, recs, n + boom, 1);
    free(recs);
    *store = buf;
    return r;
}

static size_t spill_files(const char *shuffle_dir)
{
    return count_sub(shuffle_dir, ".spill.");
}

Test(release, spill_files_go_when_their_task_ends, .timeout = 120)
{
    em_fn_register("tr_fail_on_boom", EM_FN_MAP, (void (*)(void))tr_fail_on_boom);
    em_context *sc = ctx_with("local[2]", "16k", NULL);
    char *store;
    em_rdd *in = wide_input(sc, 4000, false, &store);
    /* succeeding jobs that spill on both sides */
    em_rdd *g = em_rdd_group_by_key(in, 2);
    em_rdd *srt = em_rdd_sort_by_key(in, true, 2);
    cr_assert_eq(count_of(g), 4000);
    cr_assert_eq(count_of(srt), 4000);
    em_context_stats st;
    em_context_stats_get(sc, &st);
    cr_assert_gt(st.spill_bytes, 0, "the jobs were meant to spill");
    cr_assert_eq(count_prefix(sc->spill_dir, ""), 0);
    cr_assert_eq(spill_files(sc->shuffle_dir), 0);
    /* failing tasks: the map side fails after its writer spilled ... */
    char *store2;
    em_rdd *bad_in = wide_input(sc, 4000, true, &store2);
    em_rdd *bad_map = em_rdd_group_by_key(em_rdd_map(bad_in, "tr_fail_on_boom", none), 2);
    uint64_t n;
    em_err err = EM_ERR_INIT;
    snprintf(g_watch_dir, sizeof g_watch_dir, "%s", sc->shuffle_dir);
    g_watch_sub = ".spill.";
    atomic_store(&g_watch_seen, 0);
    cr_assert_lt(em_rdd_count(bad_map, &n, &err), 0);
    cr_assert(strstr(err.msg, "boom"), "%s", err.msg);
    cr_assert_gt(atomic_load(&g_watch_seen), 0, "the failing map task had spilled");
    cr_assert_eq(spill_files(sc->shuffle_dir), 0);
    cr_assert_eq(count_prefix(sc->spill_dir, ""), 0);
    /* ... and the reduce side fails after its reducer spilled runs */
    /* (descending: "boom" sorts last, so every run exists when it is reached) */
    em_rdd *bad_red = em_rdd_map(em_rdd_sort_by_key(bad_in, false, 1), "tr_fail_on_boom", none);
    err = (em_err)EM_ERR_INIT;
    snprintf(g_watch_dir, sizeof g_watch_dir, "%s", sc->spill_dir);
    g_watch_sub = "";
    atomic_store(&g_watch_seen, 0);
    cr_assert_lt(em_rdd_count(bad_red, &n, &err), 0);
    cr_assert(strstr(err.msg, "boom"), "%s", err.msg);
    cr_assert_gt(atomic_load(&g_watch_seen), 0, "the failing reduce task had spilled runs");
    cr_assert_eq(count_prefix(sc->spill_dir, ""), 0);
    cr_assert_eq(spill_files(sc->shuffle_dir), 0);
    em_context_free(sc);
    free(store);
    free(store2);
}

/* Index files of shuffle sid in every executor's shuffle dir under the app dir. */
static size_t exec_sid_files(em_context *sc, uint32_t sid)
{
    char pat[4200];
    glob_t g;
    size_t n = 0;
    snprintf(pat, sizeof pat, "%s/ember-exec-*/shuffle", sc->app_dir);
    if (glob(pat, 0, NULL, &g) != 0)
        return 0;
    for (size_t i = 0; i < g.gl_pathc; i++)
        n += sid_files(g.gl_pathv[i], sid);
    globfree(&g);
    return n;
}

static bool wait_files(em_context *sc, uint32_t sid, size_t want)
{
    for (int i = 0; i < 400; i++) {
        if (exec_sid_files(sc, sid) == want)
            return true;
        nanosleep(&(struct timespec){0, 25 * 1000 * 1000}, NULL);
    }
    return false;
}

Test(release, cluster_executors_delete_a_dead_shuffle, .timeout = 120)
{
    em_context *sc = ctx_with("local-cluster[2,1]", NULL, NULL);
    tu_kv d = tu_random_kv(1000, 30, 9);
    em_rdd *a = kv_input(sc, &d, 4);
    em_rdd *x = em_rdd_reduce_by_key(a, "em.sum_i64", none, 2);
    em_rdd *y = em_rdd_group_by_key(a, 3);
    uint32_t sx = sid_of(x), sy = sid_of(y);
    tu_list want = collect_list(x);
    cr_assert_gt(count_of(y), 0);
    /* 4 map outputs each: data + index, spread over the two executors */
    cr_assert_eq(exec_sid_files(sc, sx), 8);
    cr_assert_eq(exec_sid_files(sc, sy), 8);
    em_rdd_release(y);
    cr_assert(!em_map_tracker_has_shuffle(sc->tracker, sy));
    cr_assert(wait_files(sc, sy, 0), "shuffle %u: %zu files left", sy, exec_sid_files(sc, sy));
    cr_assert_eq(exec_sid_files(sc, sx), 8);
    em_context_stats st0, st1;
    em_context_stats_get(sc, &st0);
    tu_list got = collect_list(x);
    em_context_stats_get(sc, &st1);
    cr_assert_eq(st1.map_tasks_run, st0.map_tasks_run, "x's map outputs were reused");
    tu_expect(&got, &want, false, "x");
    tu_free(&got);
    tu_free(&want);
    em_rdd_release(a);
    em_rdd_release(x);
    cr_assert(wait_files(sc, sx, 0), "shuffle %u: %zu files left", sx, exec_sid_files(sc, sx));
    em_context_free(sc);
    tu_kv_free(&d);
}
