/* sql/bridge_export.c - `ember sql --export-libsvm DIR --label COL ...`: a query's rows
 * written as LIBSVM part files (em_sql_ml_export_libsvm), with the feature mapping beside
 * them. The `ember sql` command hands its whole argv here when --export-libsvm is among
 * its arguments. docs/sql-ml.md. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql/sql_ml.h"

#define PREFIX "ember sql"
#define MAXV 32

typedef struct export_opts {
    const char *dir, *label, *features, *exec, *file, *master, *mapping;
    const char *tables[MAXV], *init[MAXV], *confs[MAXV];
    uint32_t ntables, ninit, nconfs, nparts;
    int nulls;
    bool drop_last;
} export_opts;

static int usage(const char *fmt, ...) EM_PRINTF(1, 2);
static int usage(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", PREFIX);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (ember sql --help)\n");
    return 2;
}

/* "--flag V" or "--flag=V" at argv[*i]: the value (advancing *i), or NULL. */
static const char *value(const char *flag, int argc, char **argv, int *i, bool *missing)
{
    size_t n = strlen(flag);
    if (strncmp(argv[*i], flag, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] != 0)
        return NULL;
    if (*i + 1 >= argc) {
        *missing = true;
        return NULL;
    }
    return argv[++*i];
}

static int add(const char **list, uint32_t *n, const char *v, const char *flag)
{
    if (*n == MAXV)
        return usage("more than %d %s options", MAXV, flag);
    list[(*n)++] = v;
    return 0;
}

static int parse(export_opts *o, int argc, char **argv)
{
    static const char *const nulls[] = {"error", "skip", "nan"};
    for (int i = 1; i < argc; i++) {
        bool miss = false;
        const char *v, *a = argv[i];
        int rc = 0;
        if ((v = value("--export-libsvm", argc, argv, &i, &miss)))
            o->dir = v;
        else if ((v = value("--label", argc, argv, &i, &miss)))
            o->label = v;
        else if ((v = value("--features", argc, argv, &i, &miss)))
            o->features = v;
        else if ((v = value("--mapping", argc, argv, &i, &miss)))
            o->mapping = v;
        else if ((v = value("-e", argc, argv, &i, &miss)))
            o->exec = v;
        else if ((v = value("-f", argc, argv, &i, &miss)))
            o->file = v;
        else if ((v = value("--master", argc, argv, &i, &miss)))
            o->master = v;
        else if ((v = value("--table", argc, argv, &i, &miss))) {
            if (!strchr(v, '=') || *v == '=')
                return usage("--table wants NAME=PATH, not '%s'", v);
            rc = add(o->tables, &o->ntables, v, "--table");
        } else if ((v = value("--sql-init", argc, argv, &i, &miss)))
            rc = add(o->init, &o->ninit, v, "--sql-init");
        else if ((v = value("--conf", argc, argv, &i, &miss))) {
            if (!strchr(v, '=') || *v == '=')
                return usage("--conf wants KEY=VALUE, not '%s'", v);
            rc = add(o->confs, &o->nconfs, v, "--conf");
        } else if ((v = value("--nulls", argc, argv, &i, &miss))) {
            for (o->nulls = 0; o->nulls < 3 && strcmp(nulls[o->nulls], v); o->nulls++)
                ;
            if (o->nulls == 3)
                return usage("--nulls: unknown value '%s' (one of: error, skip, nan)", v);
        } else if (!strcmp(a, "--no-timer"))
            continue;
        else if (!strcmp(a, "--drop-last"))
            o->drop_last = true;
        else if (!miss)
            return usage("unknown option '%s' with --export-libsvm", a);
        if (miss)
            return usage("%s needs a value", a);
        if (rc)
            return rc;
    }
    if (!o->label)
        return usage("--export-libsvm needs --label COL (the label column)");
    if (!o->exec == !o->file)
        return usage("--export-libsvm needs the query: -e SQL or -f FILE");
    return 0;
}

static em_context *context(const export_opts *o, em_err *err)
{
    em_conf *conf = em_conf_new();
    for (uint32_t k = 0; k < o->nconfs; k++) {   /* --conf < --master */
        const char *eq = strchr(o->confs[k], '=');
        char *key = em_xasprintf("%.*s", (int)(eq - o->confs[k]), o->confs[k]);
        em_conf_set(conf, key, eq + 1);
        em_free(key);
    }
    if (o->master)
        em_conf_set(conf, "ember.master", o->master);
    em_conf_set(conf, "ember.app.name", "ember sql --export-libsvm");
    em_context *sc = em_conf_check(conf, err) < 0 ? NULL : em_context_new(conf, err);
    em_conf_free(conf);
    return sc;
}

static int run(const export_opts *o, em_context *sc, em_sql_session *s, em_err *err)
{
    char *text = NULL;
    em_sql_dataset d = {0};
    em_sql_diag diag;
    uint32_t nf = 0;
    const char *fs[256];
    char *fcopy = o->features ? em_xstrdup(o->features) : NULL;
    char *save = NULL;
    for (char *tok = fcopy ? strtok_r(fcopy, ", ", &save) : NULL; tok && nf < 256;
         tok = strtok_r(NULL, ", ", &save))
        fs[nf++] = tok;
    int rc = 0;
    for (uint32_t i = 0; rc == 0 && i < o->ntables; i++) {
        const char *eq = strchr(o->tables[i], '=');
        char *name = em_xasprintf("%.*s", (int)(eq - o->tables[i]), o->tables[i]);
        rc = em_sql_attach_csv(s, name, eq + 1, err);
        em_free(name);
    }
    for (uint32_t i = 0; rc == 0 && i < o->ninit; i++)
        rc = em_sql_run_file(s, o->init[i], err);
    size_t len = 0;
    if (rc == 0 && o->file)
        rc = em_read_file(o->file, (uint8_t **)&text, &len, err);
    if (rc == 0 && o->file) {   /* NUL-terminate the file's statements */
        char *t = em_xmalloc(len + 1);
        memcpy(t, text, len);
        t[len] = 0;
        em_free(text);
        text = t;
    }
    const char *sql = o->file ? text : o->exec;
    if (rc == 0 && (rc = em_sql_query_dataset(sc, s, sql, o->nparts, &d, &diag)) < 0) {
        em_vbuf b;
        em_vbuf_init(&b);
        em_sql_diag_format(&b, sql, strlen(sql), &diag);
        fprintf(stderr, "%s: %.*s", PREFIX, (int)b.len, b.data ? (const char *)b.data : "");
        em_vbuf_destroy(&b);
        err->code = 0;   /* printed */
    }
    em_sql_ml_opts mo = {.label = o->label, .features = o->features ? fs : NULL,
                         .nfeatures = nf, .nulls = (em_sql_ml_nulls)o->nulls,
                         .drop_last = o->drop_last};
    char *mapping = o->mapping ? NULL : em_xasprintf("%s/_features.json", o->dir);
    if (rc == 0)
        rc = em_sql_ml_export_libsvm(&d, &mo, o->dir, o->mapping ? o->mapping : mapping, err);
    em_free(mapping);
    em_sql_dataset_release(&d);
    em_free(fcopy);
    em_free(text);
    return rc;
}

int em_sql_ml_export_main(int argc, char **argv)
{
    export_opts o = {0};
    int rc = parse(&o, argc, argv);
    if (rc)
        return rc;
    em_err err = EM_ERR_INIT;
    if (em_sql_ml_register() < 0) {
        fprintf(stderr, "%s: sql.ml: a task function name is taken\n", PREFIX);
        return 1;
    }
    em_context *sc = context(&o, &err);
    if (!sc) {
        fprintf(stderr, "%s: %s\n", PREFIX, err.msg);
        return err.code == EM_EINVAL ? 2 : 1;
    }
    em_sql_session *s = em_sql_session_new(&err);
    rc = s ? run(&o, sc, s, &err) : err.code;
    em_sql_session_free(s);
    em_context_free(sc);
    if (rc < 0 && err.code)
        fprintf(stderr, "%s: %s\n", PREFIX, err.msg);
    return rc < 0 ? 1 : 0;
}
