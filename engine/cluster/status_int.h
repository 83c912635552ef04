/* engine/cluster/status_int.h - internals shared by status.c, eventlog.c and progress.c
 * (the driver's status page, event log and console progress bar). */
#ifndef EMBER_CLUSTER_STATUS_INT_H
#define EMBER_CLUSTER_STATUS_INT_H

#include <stdio.h>

#include "engine/cluster/status.h"

/* ---------------------------------------------------------------- event log (eventlog.c)
 * Lines go to <dir>/<app_id>.jsonl.inprogress, flushed after each line so a crashed driver
 * still leaves its history; em__eventlog_close renames it to <dir>/<app_id>.jsonl. */
typedef struct em__eventlog {
    FILE *f;
    char *tmp_path, *path;       /* owned */
    double start_s;              /* em_now_s() at app start: "time" is relative to it */
    bool failed;                 /* a write failed once: logged, then nothing more written */
} em__eventlog;

int em__eventlog_open(em__eventlog *l, const char *dir, const char *app_id,
                      const char *app_name, const char *master, double start_s, em_err *err);
void em__eventlog_write(em__eventlog *l, const em_status_event *ev);
/* Writes app_end, closes and renames. Zeroed struct ok. */
void em__eventlog_close(em__eventlog *l);

/* ---------------------------------------------------------------- progress bar (progress.c) */
typedef struct em__progress {
    bool on;                     /* stderr is a tty and the bar is wanted */
    double last_draw_s, stage_start_s;
    bool drawn;                  /* a bar is on the screen now */
    uint32_t stage_id, done, running, total;
    bool active;
} em__progress;

void em__progress_init(em__progress *p, bool wanted);
void em__progress_on_event(em__progress *p, const em_status_event *ev);
void em__progress_clear(em__progress *p);
/* Redraws when a stage has run 500 ms and the last draw is 200 ms old. */
void em__progress_tick(em__progress *p, double now);

#endif /* EMBER_CLUSTER_STATUS_INT_H */
