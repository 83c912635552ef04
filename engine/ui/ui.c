/* engine/ui/ui.c - HTML helpers shared by the driver's and the master's status pages.
 * The pages are plain server-rendered tables that refresh themselves every 2 seconds: no
 * script, nothing fetched from elsewhere. Every string that came from a user (job names,
 * paths, host names, error messages) goes through em_html_escape. */
#include <stdio.h>
#include <string.h>

#include "engine/ui/ui.h"

int em_html_escape(em_vbuf *b, const char *s)
{
    int rc = 0;
    for (const char *p = s ? s : ""; *p && rc == 0; p++) {
        switch (*p) {
        case '&': rc = em_vbuf_append(b, "&amp;", 5); break;
        case '<': rc = em_vbuf_append(b, "&lt;", 4); break;
        case '>': rc = em_vbuf_append(b, "&gt;", 4); break;
        case '"': rc = em_vbuf_append(b, "&quot;", 6); break;
        case '\'': rc = em_vbuf_append(b, "&#39;", 5); break;
        default: rc = em_vbuf_append(b, p, 1); break;
        }
    }
    return rc;
}

int em_html_begin(em_vbuf *b, const char *title)
{
    int rc = em_vbuf_printf(b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                               "<meta http-equiv=\"refresh\" content=\"2\"><title>");
    rc = rc ? rc : em_html_escape(b, title);
    rc = rc ? rc
            : em_vbuf_printf(b, "</title><style>body{font-family:sans-serif;margin:1em 2em}"
                                "table{border-collapse:collapse;margin-bottom:1.5em}"
                                "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
                                "th{background:#eee}.fail{color:#b00}</style></head><body>"
                                "<h1>");
    rc = rc ? rc : em_html_escape(b, title);
    return rc ? rc : em_vbuf_printf(b, "</h1>\n");
}

int em_html_end(em_vbuf *b)
{
    return em_vbuf_printf(b, "</body></html>\n");
}

void em_html_duration(char *out, size_t cap, double s)
{
    if (s < 0)
        s = 0;
    if (s < 1)
        snprintf(out, cap, "%.0f ms", s * 1000);
    else if (s < 120)
        snprintf(out, cap, "%.1f s", s);
    else
        snprintf(out, cap, "%.1f min", s / 60);
}
