/* tests/unit/sched/test_sched.c - the DAG scheduler through the user API (stage reuse, task
 * retries, fetch-failure recovery after corrupting a shuffle file) and the map-output
 * tracker on its own. */
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <unistd.h>

#include "../api/api_test_util.h"
#include "engine/sched/sched.h"

TestSuite(sched, .timeout = 60);

/* map: fails on a task's first attempt, identity afterwards. */
int tst_fail_first(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int tst_fail_first(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    if (em_task_attempt(c->task) == 0)
        return em_err_set(err, EM_EIO, "injected failure on partition %u",
                          em_task_partition(c->task));
    return em_emit(out, in, err);
}

int tst_always_fail(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int tst_always_fail(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    (void)in;
    (void)out;
    return em_err_set(err, EM_EINVAL, "boom");
}

static em_rdd *word_counts(em_context *sc, const tu_kv *d)
{
    em_rdd *r = em_parallelize(sc, EM_REC_KV, 0, d->recs, d->n, 4);
    return em_rdd_reduce_by_key(r, "em.sum_i64", em_slice_make(NULL, 0), 3);
}

Test(sched, second_action_skips_the_map_stage)
{
    em_context *sc = tu_ctx(NULL);
    tu_kv d = tu_random_kv(400, 50, 5);
    em_rdd *s = word_counts(sc, &d);
    uint64_t n1, n2;
    em_err err = EM_ERR_INIT;
    em_context_stats a, b;
    cr_assert_eq(em_rdd_count(s, &n1, &err), 0, "%s", err.msg);
    em_context_stats_get(sc, &a);
    cr_assert_eq(a.jobs, 1);
    cr_assert_eq(a.stages_run, 2);
    cr_assert_eq(a.stages_skipped, 0);
    cr_assert_eq(a.map_tasks_run, 4);
    cr_assert_eq(a.tasks_run, 7);
    cr_assert_eq(em_rdd_count(s, &n2, &err), 0, "%s", err.msg);
    em_context_stats_get(sc, &b);
    cr_assert_eq(n1, n2);
    cr_assert_eq(b.stages_skipped, 1);
    cr_assert_eq(b.map_tasks_run, 4, "no map task re-ran");
    cr_assert_eq(b.stages_run, 3);
    tu_kv_free(&d);
    em_context_free(sc);
}

Test(sched, map_stages_run_alone_and_the_action_then_skips_them)
{
    em_context *sc = tu_ctx(NULL);
    tu_kv d = tu_random_kv(400, 50, 5);
    em_rdd *in = em_rdd_persist(em_parallelize(sc, EM_REC_KV, 0, d.recs, d.n, 4),
                                EM_PERSIST_MEMORY_ONLY);
    em_rdd *s = em_rdd_reduce_by_key(in, "em.sum_i64", em_slice_make(NULL, 0), 3);
    em_err err = EM_ERR_INIT;
    em_context_stats a, b, c;
    uint64_t n, want = 0;
    for (size_t i = 0; i < d.n; i++) {   /* distinct keys */
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = d.recs[k].key.n == d.recs[i].key.n &&
                   memcmp(d.recs[k].key.p, d.recs[i].key.p, d.recs[i].key.n) == 0;
        want += !seen;
    }
    cr_assert_eq(em_rdd_run_map_stages(s, &err), 0, "%s", err.msg);
    em_context_stats_get(sc, &a);
    cr_assert_eq(a.jobs, 1);
    cr_assert_eq(a.stages_run, 1, "the map stage only");
    cr_assert_eq(a.map_tasks_run, 4);
    cr_assert_eq(a.tasks_run, 4, "no result task");
    /* the input can go: the shuffle's outputs are all the action needs */
    em_rdd_unpersist(in);
    cr_assert_eq(em_rdd_run_map_stages(s, &err), 0, "%s", err.msg);
    em_context_stats_get(sc, &b);
    cr_assert_eq(b.map_tasks_run, 4, "nothing missing, nothing run");
    cr_assert_eq(b.stages_skipped, a.stages_skipped + 1);
    cr_assert_eq(em_rdd_count(s, &n, &err), 0, "%s", err.msg);
    em_context_stats_get(sc, &c);
    cr_assert_eq(n, want, "%llu keys, want %llu", (unsigned long long)n,
                 (unsigned long long)want);
    cr_assert_eq(c.map_tasks_run, 4, "the count did not recompute the map side");
    cr_assert_eq(c.tasks_run, 7);
    cr_assert_eq(c.stages_skipped, b.stages_skipped + 1);
    em_rdd_release(s);
    em_rdd_release(in);
    tu_kv_free(&d);
    em_context_free(sc);
}

Test(sched, failed_attempts_are_retried)
{
    em_context *sc = tu_ctx(NULL);
    em_err err = EM_ERR_INIT;
    em_rdd *r = em_rdd_map(em_range(sc, 0, 100, 1, 3), "tst_fail_first", em_slice_make(NULL, 0));
    uint64_t n;
    cr_assert_eq(em_rdd_count(r, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 100);
    em_context_stats st;
    em_context_stats_get(sc, &st);
    cr_assert_eq(st.task_failures, 3);
    cr_assert_eq(st.tasks_run, 6);
    em_rdd *bad = em_rdd_map(em_range(sc, 0, 10, 1, 2), "tst_always_fail", em_slice_make(NULL, 0));
    cr_assert_eq(em_rdd_count(bad, &n, &err), EM_EINVAL);
    cr_assert(strstr(err.msg, "failed 4 times; last error:"), "%s", err.msg);
    cr_assert(strstr(err.msg, "boom"), "%s", err.msg);
    em_context_free(sc);
}

/* Flips one byte in the middle of every shuffle .data file under dir that is non-empty. */
static int corrupt_shuffle_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    cr_assert_not_null(d, "%s", dir);
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".data") != 0)
            continue;
        char p[512];
        int plen = snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        cr_assert(plen > 0 && (size_t)plen < sizeof p, "path too long: %s/%s", dir, e->d_name);
        int fd = open(p, O_RDWR);
        off_t size = lseek(fd, 0, SEEK_END);
        if (size > 60 && n == 0) {
            uint8_t c;
            cr_assert_eq(pread(fd, &c, 1, size / 2), 1);
            c ^= 0xff;
            cr_assert_eq(pwrite(fd, &c, 1, size / 2), 1);
            n++;
        }
        close(fd);
    }
    closedir(d);
    return n;
}

Test(sched, fetch_failure_reruns_the_lost_map_output)
{
    em_context *sc = tu_ctx(NULL);
    tu_kv d = tu_random_kv(2000, 300, 21);
    em_rdd *s = word_counts(sc, &d);
    em_records r1, r2;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_rdd_collect(s, &r1, &err), 0, "%s", err.msg);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/shuffle", em_context_app_dir(sc));
    cr_assert_eq(corrupt_shuffle_files(dir), 1);
    em_context_stats a, b;
    em_context_stats_get(sc, &a);
    cr_assert_eq(em_rdd_collect(s, &r2, &err), 0, "%s", err.msg);
    em_context_stats_get(sc, &b);
    tu_list l1 = tu_from_records(&r1), l2 = tu_from_records(&r2);
    tu_expect(&l2, &l1, false, "same answer after recovery");
    cr_assert_geq(b.fetch_failures, 1);
    cr_assert_geq(b.map_tasks_run - a.map_tasks_run, 1, "the lost map output was re-run");
    cr_assert_lt(b.map_tasks_run - a.map_tasks_run, 4, "only the lost map output re-ran");
    tu_free(&l1);
    tu_free(&l2);
    em_records_destroy(&r1);
    em_records_destroy(&r2);
    tu_kv_free(&d);
    em_context_free(sc);
}

Test(sched, context_free_leaves_nothing_behind)
{
    em_context *sc = tu_ctx(NULL);
    tu_kv d = tu_random_kv(100, 10, 2);
    uint64_t n;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_rdd_count(em_rdd_persist(word_counts(sc, &d), EM_PERSIST_DISK_ONLY), &n,
                              &err), 0, "%s", err.msg);
    char *dir = strdup(em_context_app_dir(sc));
    cr_assert_eq(access(dir, F_OK), 0);
    em_context_free(sc);
    cr_assert_neq(access(dir, F_OK), 0, "%s removed", dir);
    free(dir);
    tu_kv_free(&d);
}

Test(sched, tracker_register_missing_outputs)
{
    em_map_tracker *t = em_map_tracker_new();
    em_err err = EM_ERR_INIT;
    uint64_t sizes[3] = {10, 0, 30};
    uint32_t miss[4];
    em_shuffle_src *srcs;
    uint32_t n;
    em_map_tracker_add_shuffle(t, 7, 2);
    cr_assert_eq(em_map_tracker_missing(t, 7, miss), 2);
    cr_assert_eq(em_map_tracker_outputs(t, 7, 0, &srcs, &n, &err), EM_EFETCH);
    cr_assert_eq(em_map_tracker_register(t, 7, 0, "/a", sizes, 3, &err), 0);
    cr_assert_eq(em_map_tracker_register(t, 7, 1, "/b", sizes, 3, &err), 0);
    cr_assert_eq(em_map_tracker_register(t, 9, 0, "/b", sizes, 3, &err), EM_EINVAL);
    cr_assert_eq(em_map_tracker_missing(t, 7, NULL), 0);
    cr_assert_eq(em_map_tracker_outputs(t, 7, 2, &srcs, &n, &err), 0);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(srcs[1].loc, "/b");
    cr_assert_eq(srcs[0].size, 30);
    const char *loc = srcs[1].loc;
    em_free(srcs);
    em_map_tracker_unregister(t, 7, 1);
    cr_assert_eq(em_map_tracker_missing(t, 7, miss), 1);
    cr_assert_eq(miss[0], 1);
    cr_assert_str_eq(loc, "/b", "interned locations outlive unregistering");
    cr_assert_eq(em_map_tracker_outputs(t, 7, 3, &srcs, &n, &err), EM_EFETCH);
    em_map_tracker_remove_shuffle(t, 7);
    cr_assert(!em_map_tracker_has_shuffle(t, 7));
    em_map_tracker_free(t);
}

Test(sched, bad_masters_and_settings)
{
    const char *bad[][2] = {{"ember.master", "local-cluster[2]"},
                            {"ember.master", "ember://host:7077"},
                            {"ember.master", "local[0]"},
                            {"ember.master", "yarn"},
                            {"ember.executor.memory", "lots"},
                            {"ember.task.maxFailures", "0"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        em_conf *c = em_conf_new();
        em_err err = EM_ERR_INIT;
        em_conf_set(c, bad[i][0], bad[i][1]);
        em_context *sc = em_context_new(c, &err);
        cr_assert_null(sc, "%s = %s accepted", bad[i][0], bad[i][1]);
        cr_assert_eq(err.code, EM_EINVAL);
        cr_assert(strstr(err.msg, bad[i][1]), "%s", err.msg);
        em_conf_free(c);
    }
    em_conf *c = em_conf_new();
    em_err err = EM_ERR_INIT;
    em_conf_set(c, "ember.master", "local-cluster[0,1]");
    cr_assert_null(em_context_new(c, &err));
    cr_assert_eq(err.code, EM_EINVAL);
    cr_assert(strstr(err.msg, "local-cluster[0,1]"), "%s", err.msg);
    em_conf_set(c, "ember.master", "local[3]");
    em_context *sc = em_context_new(c, &err);
    cr_assert_not_null(sc, "%s", err.msg);
    cr_assert_eq(em_context_default_parallelism(sc), 3);
    em_context_free(sc);
    em_conf_free(c);
}

Test(sched, conf_file_and_environment)
{
    char path[] = "/tmp/ember-api-conf-XXXXXX";
    int fd = mkstemp(path);
    const char *text = "# comment\nember.app.name = demo  # trailing\n\nember.master local[2]\n"
                       "ember.default.parallelism=5\n";
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    em_conf *c = em_conf_new();
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_conf_load_file(c, path, &err), 0, "%s", err.msg);
    cr_assert_str_eq(em_conf_get(c, "ember.app.name"), "demo");
    cr_assert_str_eq(em_conf_get(c, "ember.master"), "local[2]");
    cr_assert_str_eq(em_conf_get(c, "ember.default.parallelism"), "5");
    setenv("EMBER_DEFAULT_PARALLELISM", "6", 1);
    setenv("EMBER_TASK_MAXFAILURES", "2", 1);
    em_conf_load_env(c);
    cr_assert_str_eq(em_conf_get(c, "ember.default.parallelism"), "6", "env beats file");
    cr_assert_str_eq(em_conf_get(c, "ember.task.maxFailures"), "2");
    em_conf_set(c, "ember.default.parallelism", "7");
    em_conf_load_env(c);
    cr_assert_str_eq(em_conf_get(c, "ember.default.parallelism"), "7", "set beats env");
    em_context *sc = em_context_new(c, &err);
    cr_assert_not_null(sc, "%s", err.msg);
    cr_assert_eq(em_context_default_parallelism(sc), 7);
    em_context_free(sc);
    em_conf_free(c);
    unsetenv("EMBER_DEFAULT_PARALLELISM");
    unsetenv("EMBER_TASK_MAXFAILURES");
    /* errors name file:line */
    FILE *f = fopen(path, "w");
    fputs("ember.master = local\nember.app.name\n", f);
    fclose(f);
    c = em_conf_new();
    cr_assert_eq(em_conf_load_file(c, path, &err), EM_ECORRUPT);
    char want[128];
    snprintf(want, sizeof want, "%s:2:", path);
    cr_assert(strstr(err.msg, want), "%s", err.msg);
    cr_assert_eq(em_conf_load_file(c, "/nonexistent/ember.conf", &err), EM_EIO);
    em_conf_free(c);
    unlink(path);
}

/* map: partition 3 sleeps 300 ms per record (one record per partition below), the others
 * do not: a task's own run time then differs from its task set's span. */
int tst_sleep_part3(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int tst_sleep_part3(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    if (em_task_partition(c->task) == 3)
        usleep(300 * 1000);
    return em_emit(out, in, err);
}

/* The task_end lines of the event log in dir (its only file): executor and duration per
 * partition (< 8); returns how many there were. Removes the file and dir. */
static int read_task_ends(const char *dir, char exec[8][64], double dur[8])
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s", dir);
    struct dirent *e;
    char path[512] = "";
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".jsonl"))
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    closedir(d);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "no event log in %s", dir);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        json_t *o = json_loads(line, 0, NULL);
        cr_assert_not_null(o, "%s", line);
        const char *ev = json_string_value(json_object_get(o, "event"));
        if (ev && strcmp(ev, "task_end") == 0) {
            json_int_t p = json_integer_value(json_object_get(o, "partition"));
            cr_assert(p >= 0 && p < 8, "%s", line);
            const char *x = json_string_value(json_object_get(o, "executor"));
            snprintf(exec[p], 64, "%s", x ? x : "(null)");
            dur[p] = json_number_value(json_object_get(o, "duration"));
            n++;
        }
        json_decref(o);
    }
    fclose(f);
    unlink(path);
    rmdir(dir);
    return n;
}

Test(sched, task_end_events_carry_run_time_and_executor)
{
    char dir[] = "/tmp/ember-sched-evlog-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    em_conf *c = em_conf_new();
    em_err err = EM_ERR_INIT;
    em_conf_set(c, "ember.master", "local[4]");
    em_conf_set(c, "ember.executor.memory", "64m");
    em_conf_set(c, "ember.eventLog.enabled", "true");
    em_conf_set(c, "ember.eventLog.dir", dir);
    em_context *sc = em_context_new(c, &err);
    em_conf_free(c);
    cr_assert_not_null(sc, "%s", err.msg);
    /* 4 partitions, one record each, all in one task set of the local backend. */
    em_rdd *r = em_rdd_map(em_range(sc, 0, 4, 1, 4), "tst_sleep_part3", em_slice_make(NULL, 0));
    uint64_t n;
    cr_assert_eq(em_rdd_count(r, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 4);
    em_context_free(sc);
    char exec[8][64] = {{0}};
    double dur[8] = {0};
    cr_assert_eq(read_task_ends(dir, exec, dur), 4);
    for (int p = 0; p < 4; p++)
        cr_assert_str_eq(exec[p], "driver", "partition %d", p);
    /* The sleeping task ran >= 300 ms; the set's span (the old duration of every task)
     * too, so a quick task reporting less than that one shows its own time. */
    cr_assert_geq(dur[3], 0.3);
    cr_assert_lt(dur[0], dur[3], "%f vs %f: the set's span, not the task's time", dur[0],
                 dur[3]);
}

/* The test functions, registered by name from a table before any test runs (the engine
 * does not search the program's own symbols). */
static const em_fn_entry test_fns[] = {
    {"tst_fail_first", EM_FN_MAP, EM_FN(tst_fail_first)},
    {"tst_always_fail", EM_FN_MAP, EM_FN(tst_always_fail)},
    {"tst_sleep_part3", EM_FN_MAP, EM_FN(tst_sleep_part3)},
};

__attribute__((constructor)) static void register_test_fns(void)
{
    if (em_fn_register_table(test_fns, sizeof test_fns / sizeof test_fns[0]) != 0)
        abort();
}
