/* engine/ui/progress.c - the console progress bar on stderr:
 *     [Stage 3:=====>          (12 + 2) / 40]
 * (finished + running) / tasks of the stage round running now. Events only update the
 * counts; a ticker (status.c's thread, every 200 ms) redraws, so the bar moves while a
 * task set runs and a terminal redraw never costs a task anything. It is erased when the
 * stage ends and drawn only when stderr is a terminal and the user did not ask for quiet.
 * Like Spark's ConsoleProgressBar, a stage must run 500 ms before its bar appears, so quick
 * jobs print nothing. The caller serialises every call (status mutex). */
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "engine/ui/ui_int.h"

#define REDRAW_S 0.2
#define FIRST_DRAW_S 0.5

void em_status_progress_render(char *out, size_t cap, uint32_t stage_id, uint32_t done,
                               uint32_t running, uint32_t total, uint32_t width)
{
    char head[32], tail[64];
    int hn = snprintf(head, sizeof head, "[Stage %u:", stage_id);
    int tn = snprintf(tail, sizeof tail, "(%u + %u) / %u]", done, running, total);
    size_t w = width > (uint32_t)(hn + tn) ? width - (uint32_t)(hn + tn) : 0;
    size_t fill = total ? (size_t)((uint64_t)w * (done > total ? total : done) / total) : w;
    size_t k = 0;

    if (cap == 0)
        return;
    for (int i = 0; i < hn && k + 1 < cap; i++)
        out[k++] = head[i];
    for (size_t i = 0; i < w && k + 1 < cap; i++)
        out[k++] = i < fill ? '=' : i == fill ? '>' : ' ';
    for (int i = 0; i < tn && k + 1 < cap; i++)
        out[k++] = tail[i];
    out[k] = '\0';
}

static uint32_t term_width(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col > 240 ? 240 : ws.ws_col;
    return 80;
}

void em__progress_init(em__progress *p, bool wanted)
{
    memset(p, 0, sizeof *p);
    p->on = wanted && isatty(STDERR_FILENO);
}

void em__progress_clear(em__progress *p)
{
    if (!p->drawn)
        return;
    char blank[256];
    uint32_t w = term_width();
    memset(blank, ' ', w);
    blank[w] = '\0';
    fprintf(stderr, "\r%s\r", blank);
    fflush(stderr);
    p->drawn = false;
}

static void draw(em__progress *p, double now)
{
    char line[256];
    uint32_t w = term_width();
    em_status_progress_render(line, sizeof line, p->stage_id, p->done, p->running, p->total,
                              w - 1);
    fprintf(stderr, "\r%s", line);
    fflush(stderr);
    p->drawn = true;
    p->last_draw_s = now;
}

void em__progress_on_event(em__progress *p, const em_sched_event *ev)
{
    if (!p->on)
        return;
    switch (ev->kind) {
    case EM_SCHED_STAGE_SUBMITTED:
        p->active = true;
        p->stage_id = ev->stage_id;
        p->total = ev->ntasks;
        p->done = p->running = 0;
        p->stage_start_s = ev->time_s;
        break;
    case EM_SCHED_STAGE_COMPLETED:
        p->active = false;
        em__progress_clear(p);
        break;
    case EM_SCHED_TASK_START:
        if (p->active && ev->stage_id == p->stage_id)
            p->running++;
        break;
    case EM_SCHED_TASK_END:
        if (p->active && ev->stage_id == p->stage_id) {
            p->running -= p->running > 0;
            p->done += ev->code == 0;
        }
        break;
    default:
        break;
    }
}

void em__progress_tick(em__progress *p, double now)
{
    if (p->on && p->active && now - p->stage_start_s >= FIRST_DRAW_S &&
        now - p->last_draw_s >= REDRAW_S)
        draw(p, now);
}
