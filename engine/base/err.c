/* engine/base/err.c - error reports (em_err), error names and the two ways to die
 * (assertions for bugs, em_panic for lost processes).
 * THREADS: any thread; nothing here touches global state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/base/base.h"

int em_err_set(em_err *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

int em_err_prefix(em_err *err, const char *fmt, ...)
{
    if (!err)
        return 0;
    char old[EM_ERR_MSG_MAX];
    memcpy(old, err->msg, sizeof old);
    old[sizeof old - 1] = '\0';

    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    if (k < 0)
        k = 0;
    size_t used = (size_t)k < sizeof err->msg ? (size_t)k : sizeof err->msg - 1;
    /* Append ": <old>", truncating at the end so the outermost context survives. */
    const char *parts[2] = {": ", old};
    for (int i = 0; i < 2; i++) {
        size_t room = sizeof err->msg - 1 - used;
        size_t len = strlen(parts[i]);
        if (len > room)
            len = room;
        memcpy(err->msg + used, parts[i], len);
        used += len;
    }
    err->msg[used] = '\0';
    return err->code;
}

int em_err_copy(em_err *dst, const em_err *src)
{
    if (dst && dst != src)
        *dst = *src;
    return src->code;
}

void em_err_clear(em_err *err)
{
    if (!err)
        return;
    err->code = 0;
    err->msg[0] = '\0';
}

const char *em_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
#define EM__ERR_STR(name, val, msg) \
    case val:                       \
        return msg;
        EM_ERROR_TABLE(EM__ERR_STR)
#undef EM__ERR_STR
    default:
        return "unknown error";
    }
}

const char *em_errname(int code)
{
    switch (code) {
    case 0:
        return "OK";
#define EM__ERR_NAME(name, val, msg) \
    case val:                        \
        return #name;
        EM_ERROR_TABLE(EM__ERR_NAME)
#undef EM__ERR_NAME
    default:
        return "unknown error";
    }
}

void em__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "ember: assertion failed: %s (%s:%d)\n", expr, file, line);
    fflush(stderr);
    abort();
}

void em_panic(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "ember: fatal: %s\n", msg);
    fflush(stderr);
    abort();
}
