/* tests/unit/ui/test_listen.c - the status object as a listener on a real scheduler: a
 * context with the event log on runs one shuffle job, and the log holds every scheduler
 * event of it, in order, between app_start and app_end (em_status_listen subscribes the
 * model and the event log; nothing copies the events on the way). */
#include <dirent.h>
#include <jansson.h>
#include <unistd.h>

#include "../api/api_test_util.h"

#define MAX_LINES 256

/* The event names of the one *.jsonl file in dir, in order; returns how many. */
static int read_events(const char *dir, char names[][32], int cap, char *path, size_t pcap)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    path[0] = '\0';
    cr_assert_not_null(d, "%s", dir);
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".jsonl"))
            snprintf(path, pcap, "%s/%s", dir, e->d_name);
    closedir(d);
    cr_assert(path[0], "no event log in %s", dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    char line[4096];
    int n = 0;
    while (n < cap && fgets(line, sizeof line, f)) {
        json_t *o = json_loads(line, 0, NULL);
        cr_assert_not_null(o, "line %d: %s", n, line);
        snprintf(names[n++], 32, "%s", json_string_value(json_object_get(o, "event")));
        json_decref(o);
    }
    fclose(f);
    return n;
}

static int count(char names[][32], int n, const char *name)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += strcmp(names[i], name) == 0;
    return k;
}

Test(listen, a_context_job_reaches_the_event_log, .timeout = 60)
{
    char dir[] = "/tmp/ember-listen-test-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    em_conf *c = em_conf_new();
    em_err err = EM_ERR_INIT;
    em_conf_set(c, "ember.master", "local[2]");
    em_conf_set(c, "ember.executor.memory", "64m");
    em_conf_set(c, "ember.eventLog.enabled", "true");
    em_conf_set(c, "ember.eventLog.dir", dir);
    em_conf_set(c, "ember.ui.showConsoleProgress", "false");
    em_context *sc = em_context_new(c, &err);
    em_conf_free(c);
    cr_assert_not_null(sc, "context: %s", err.msg);

    tu_kv d = tu_random_kv(400, 50, 5);
    em_rdd *r = em_parallelize(sc, EM_REC_KV, 0, d.recs, d.n, 4);
    em_rdd *s = em_rdd_reduce_by_key(r, "em.sum_i64", em_slice_make(NULL, 0), 3);
    uint64_t n;
    cr_assert_eq(em_rdd_count(s, &n, &err), 0, "%s", err.msg);
    em_context_free(sc);
    tu_kv_free(&d);

    static char names[MAX_LINES][32];
    char path[512];
    int k = read_events(dir, names, MAX_LINES, path, sizeof path);
    /* One job: a map stage of 4 tasks and a result stage of 3. */
    cr_assert_str_eq(names[0], "app_start");
    cr_assert_str_eq(names[1], "job_start");
    cr_assert_str_eq(names[k - 2], "job_end");
    cr_assert_str_eq(names[k - 1], "app_end");
    cr_assert_eq(count(names, k, "stage_submitted"), 2);
    cr_assert_eq(count(names, k, "stage_completed"), 2);
    cr_assert_eq(count(names, k, "task_start"), 7);
    cr_assert_eq(count(names, k, "task_end"), 7);
    cr_assert_eq(k, 2 + 2 + 2 + 2 + 7 + 7);
    unlink(path);
    rmdir(dir);
}

/* Issue 16 item 15: task_start is emitted when a task really starts, naming where ("driver"
 * in local mode, never null), and task_end when it ends, so that replaying the log never
 * shows more tasks running than the context has task threads (8 tasks on local[2]). */
Test(listen, task_events_name_the_executor_and_respect_the_cores, .timeout = 60)
{
    char dir[] = "/tmp/ember-listen-test-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    em_conf *c = em_conf_new();
    em_err err = EM_ERR_INIT;
    em_conf_set(c, "ember.master", "local[2]");
    em_conf_set(c, "ember.executor.memory", "64m");
    em_conf_set(c, "ember.eventLog.enabled", "true");
    em_conf_set(c, "ember.eventLog.dir", dir);
    em_conf_set(c, "ember.ui.showConsoleProgress", "false");
    em_context *sc = em_context_new(c, &err);
    em_conf_free(c);
    cr_assert_not_null(sc, "context: %s", err.msg);
    tu_kv d = tu_random_kv(4000, 50, 5);
    em_rdd *r = em_parallelize(sc, EM_REC_KV, 0, d.recs, d.n, 8);
    uint64_t n;
    cr_assert_eq(em_rdd_count(r, &n, &err), 0, "%s", err.msg);
    em_context_free(sc);
    tu_kv_free(&d);

    static char names[MAX_LINES][32];
    char path[512], line[4096];
    (void)read_events(dir, names, MAX_LINES, path, sizeof path);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    int running = 0, most = 0, starts = 0;
    while (fgets(line, sizeof line, f)) {
        json_t *o = json_loads(line, 0, NULL);
        const char *ev = json_string_value(json_object_get(o, "event"));
        if (ev && !strcmp(ev, "task_start")) {
            starts++;
            cr_assert_str_eq(json_string_value(json_object_get(o, "executor")) ?: "(null)",
                             "driver", "task_start without its executor: %s", line);
            if (++running > most)
                most = running;
        } else if (ev && !strcmp(ev, "task_end")) {
            running--;
        }
        json_decref(o);
    }
    fclose(f);
    cr_assert_eq(starts, 8);
    cr_assert(most <= 2, "%d tasks running at once on local[2]", most);
    cr_assert_eq(running, 0);
    unlink(path);
    rmdir(dir);
}
