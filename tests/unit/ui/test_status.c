/* tests/unit/ui/test_status.c - event log lines, the progress bar's text and the
 * driver's status model (JSON API) fed with a scripted job. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/ui/ui.h"

Test(status, event_json_lines)
{
    em_sched_event ev = {.kind = EM_SCHED_TASK_END, .time_s = 12.3456, .job_id = 2,
                          .stage_id = 5, .stage_attempt = 1, .is_map = true, .partition = 7,
                          .attempt = 2, .duration_s = 0.25, .code = EM_EIO,
                          .error = "disk \"full\"", .executor = "e-1"};
    char *s = em_status_event_json(&ev, 10.0);
    cr_assert_str_eq(s, "{\"event\":\"task_end\",\"time\":2.346,\"job\":2,\"stage\":5,"
                        "\"stage_attempt\":1,\"kind\":\"map\",\"partition\":7,\"attempt\":2,"
                        "\"executor\":\"e-1\",\"duration\":0.25,\"result\":\"failed\","
                        "\"code\":\"EIO\",\"error\":\"disk \\\"full\\\"\"}");
    em_free(s);
    em_sched_event js = {.kind = EM_SCHED_JOB_START, .time_s = 1, .job_id = 0, .nstages = 2,
                          .ntasks = 4};
    s = em_status_event_json(&js, 1);
    cr_assert_str_eq(s, "{\"event\":\"job_start\",\"time\":0.0,\"job\":0,\"stages\":2,"
                        "\"tasks\":4}");
    em_free(s);
    em_sched_event sc = {.kind = EM_SCHED_STAGE_COMPLETED, .time_s = 2, .stage_id = 1,
                          .is_map = false, .ntasks = 4, .duration_s = 1, .code = EM_EFETCH,
                          .error = "lost"};
    s = em_status_event_json(&sc, 1);
    cr_assert(strstr(s, "\"result\":\"fetch_failed\""), "%s", s);
    cr_assert(strstr(s, "\"kind\":\"result\""), "%s", s);
    cr_assert(!strstr(s, "shuffle"), "%s", s);
    em_free(s);
    em_sched_event bogus = {.kind = 99};
    cr_assert_null(em_status_event_json(&bogus, 0));
}

Test(status, progress_bar_text)
{
    char out[128];
    em_status_progress_render(out, sizeof out, 3, 12, 2, 40, 46);
    /* 46 - len("[Stage 3:") - len("(12 + 2) / 40]") = 46 - 9 - 14 = 23 columns of bar;
     * 23 * 12 / 40 = 6 filled, then the arrow head. */
    cr_assert_str_eq(out, "[Stage 3:======>                (12 + 2) / 40]");
    em_status_progress_render(out, sizeof out, 0, 4, 0, 4, 24);
    cr_assert_str_eq(out, "[Stage 0:===(4 + 0) / 4]");   /* 24 - 9 - 12 = 3 */
    em_status_progress_render(out, sizeof out, 1, 0, 1, 2, 5);   /* too narrow: no bar */
    cr_assert_str_eq(out, "[Stage 1:(0 + 1) / 2]");
    em_status_progress_render(out, 8, 1, 0, 1, 2, 80);            /* truncated, terminated */
    cr_assert_eq(strlen(out), 7);
}

static em_sched_event ev(int kind, uint32_t stage, bool map, uint32_t part, int code)
{
    return (em_sched_event){.kind = kind, .time_s = 0, .stage_id = stage, .is_map = map,
                             .partition = part, .ntasks = 2, .nstages = 2, .code = code,
                             .duration_s = 0.5, .error = code ? "boom" : NULL};
}

/* A job of a map stage (2 tasks, one failing once) and a result stage (2 tasks). */
static void feed(em_status *st)
{
    em_sched_event e[] = {
        ev(EM_SCHED_JOB_START, 0, false, 0, 0),     ev(EM_SCHED_STAGE_SUBMITTED, 0, true, 0, 0),
        ev(EM_SCHED_TASK_START, 0, true, 0, 0),     ev(EM_SCHED_TASK_START, 0, true, 1, 0),
        ev(EM_SCHED_TASK_END, 0, true, 0, 0),       ev(EM_SCHED_TASK_END, 0, true, 1, EM_EIO),
        ev(EM_SCHED_TASK_START, 0, true, 1, 0),     ev(EM_SCHED_TASK_END, 0, true, 1, 0),
        ev(EM_SCHED_STAGE_COMPLETED, 0, true, 0, 0), ev(EM_SCHED_STAGE_SUBMITTED, 1, false, 0, 0),
        ev(EM_SCHED_TASK_START, 1, false, 0, 0),    ev(EM_SCHED_TASK_END, 1, false, 0, 0),
        ev(EM_SCHED_TASK_START, 1, false, 1, 0),    ev(EM_SCHED_TASK_END, 1, false, 1, 0),
        ev(EM_SCHED_STAGE_COMPLETED, 1, false, 0, 0), ev(EM_SCHED_JOB_END, 0, false, 0, 0),
    };
    for (size_t i = 0; i < sizeof e / sizeof e[0]; i++) {
        e[i].time_s = em_now_s();
        em_status_on_event(st, &e[i]);
    }
}

Test(status, model_and_event_log, .timeout = 20)
{
    char dir[] = "/tmp/ember-status-test-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    em_err err = EM_ERR_INIT;
    em_status_opts o = {.app_name = "t", .app_id = "app-test", .ui_port = "0",
                        .event_log_enabled = "true", .event_log_dir = dir,
                        .show_progress = "false"};
    em_status *st = em_status_new(&o, &err);
    cr_assert_not_null(st, "%s", err.msg);
    cr_assert_eq(em_status_ui_port(st), 0);
    em_status_executor_add(st, "driver", "local", 2);
    em_status_storage_update(st, 4, "lines", 2, 3, 1000, 0);
    feed(st);

    char *txt = em_status_json(st, "stages");
    json_t *j = json_loads(txt, 0, NULL);
    em_free(txt);
    cr_assert_eq(json_array_size(j), 2);
    json_t *s0 = json_array_get(j, 0);
    cr_assert_str_eq(json_string_value(json_object_get(s0, "status")), "succeeded");
    cr_assert_eq(json_integer_value(json_object_get(s0, "succeeded")), 2);
    cr_assert_eq(json_integer_value(json_object_get(s0, "failed")), 1);
    cr_assert_eq(json_integer_value(json_object_get(s0, "running")), 0);
    json_decref(j);
    txt = em_status_json(st, "executors");
    j = json_loads(txt, 0, NULL);
    em_free(txt);
    cr_assert_eq(json_array_size(j), 1);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(j, 0), "succeeded")), 4);
    json_decref(j);
    txt = em_status_json(st, "storage");
    cr_assert(strstr(txt, "\"lines\""), "%s", txt);
    em_free(txt);
    cr_assert_null(em_status_json(st, "nope"));

    char *path = em_xasprintf("%s/app-test.jsonl", dir);
    cr_assert_str_eq(em_status_event_log_path(st), path);
    em_status_free(st);
    /* app_start + 16 events + app_end, each a JSON object with an "event". */
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    char line[4096];
    int n = 0;
    char first[32] = "";
    while (fgets(line, sizeof line, f)) {
        json_t *o2 = json_loads(line, 0, NULL);
        cr_assert_not_null(o2, "line %d: %s", n, line);
        const char *name = json_string_value(json_object_get(o2, "event"));
        cr_assert_not_null(name);
        if (n == 0)
            snprintf(first, sizeof first, "%s", name);
        if (n == 17)
            cr_assert_str_eq(name, "app_end");
        json_decref(o2);
        n++;
    }
    fclose(f);
    cr_assert_eq(n, 18);
    cr_assert_str_eq(first, "app_start");
    unlink(path);
    em_free(path);
    rmdir(dir);
}

Test(status, bad_options_are_rejected)
{
    em_err err = EM_ERR_INIT;
    em_status_opts o = {.ui_port = "99999"};
    cr_assert_null(em_status_new(&o, &err));
    cr_assert(strstr(err.msg, "ember.ui.port"), "%s", err.msg);
    em_status_opts o2 = {.ui_port = "0", .event_log_enabled = "maybe"};
    cr_assert_null(em_status_new(&o2, &err));
    cr_assert(strstr(err.msg, "ember.eventLog.enabled"), "%s", err.msg);
    em_status_opts o3 = {.ui_port = "0", .event_log_enabled = "true",
                         .event_log_dir = "/proc/no/such/dir"};
    cr_assert_null(em_status_new(&o3, &err));
}
