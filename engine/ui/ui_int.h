/* engine/ui/ui_int.h - internals of engine/ui: the HTTP request parser and response
 * formatter behind em_http_server (http.c), the event log (eventlog.c) and the console
 * progress bar (progress.c) that status.c subscribes to the scheduler. For engine/ui's own
 * files, its unit tests and the fuzz harness of the parser. */
#ifndef EMBER_UI_INT_H
#define EMBER_UI_INT_H

#include <stdio.h>

#include "engine/ui/ui.h"

/* ---------------------------------------------------------------- HTTP (http.c) */

#define EM__HTTP_MAX_REQUEST 8192u   /* request line + headers, bytes */
#define EM__HTTP_MAX_HEADERS 64u
#define EM__HTTP_MAX_CONNS 64u       /* connections at once; the oldest goes for a new one */
#define EM__HTTP_MAX_CONNS_PEER 16u  /* of those, from one address */
#define EM__HTTP_TIMEOUT_MS 5000u    /* a request must arrive whole within this */

/* Parses the bytes received so far on one connection (p[0..n)). Returns 0 when the request
 * is incomplete (read more), 1 when it is complete (*req filled), or an HTTP status >= 400
 * for a request to refuse: 400 malformed or too large (n > EM__HTTP_MAX_REQUEST without the
 * end of the headers, a target over EM_HTTP_MAX_TARGET, a request body), 405 a well-formed
 * method other than GET/HEAD, 505 an HTTP version other than 1.0/1.1. Never reads past n.
 * Pure: any thread. */
int em__http_parse(const uint8_t *p, size_t n, em_http_req *req);
/* Whether a request's Host (req->host) may be served by a server bound to bind_host: none
 * given, an IP literal, "localhost", bind_host or this machine's name. Anything else is a
 * name a stranger's DNS points here (DNS rebinding) and is answered 403. Pure. */
bool em__http_host_allowed(const char *host, const char *bind_host);

/* Formats the response head + body into out (headers Content-Type, Content-Length,
 * Connection: close, Cache-Control: no-store). */
int em__http_format(em_vbuf *out, const em_http_resp *r, bool head);
const char *em__http_reason(int status);

/* ---------------------------------------------------------------- event log (eventlog.c)
 * Lines go to <dir>/<app_id>.jsonl.inprogress, flushed after each line so a crashed driver
 * still leaves its history; em__eventlog_close renames it to <dir>/<app_id>.jsonl. */
typedef struct em__eventlog {
    FILE *f;
    char *tmp_path, *path;       /* owned */
    double start_s;              /* em_now_s() at app start: "time" is relative to it */
    bool failed;                 /* a write failed once: logged, then nothing more written */
} em__eventlog;

/* dir NULL: $TMPDIR/ember-events-<uid>, created 0700 and checked to be ours; files 0600. */
int em__eventlog_open(em__eventlog *l, const char *dir, const char *app_id,
                      const char *app_name, const char *master, double start_s, em_err *err);
void em__eventlog_write(em__eventlog *l, const em_sched_event *ev);
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
void em__progress_on_event(em__progress *p, const em_sched_event *ev);
void em__progress_clear(em__progress *p);
/* Redraws when a stage has run 500 ms and the last draw is 200 ms old. */
void em__progress_tick(em__progress *p, double now);

#endif /* EMBER_UI_INT_H */
