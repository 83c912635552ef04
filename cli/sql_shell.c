/* cli/sql_shell.c - `ember sql`: the SQL shell, script runner and sqllogictest runner over
 * an em_sql_session (sql/sql.h).
 *
 * Statements come from -e, -f, or stdin: with libedit line editing and history when stdin is
 * a terminal, read plainly when it is piped. Dot commands (.tables, .schema, .mode, .timer,
 * .read, .help, .quit) are whole lines. Results go to stdout in the chosen format; timing
 * ("Time taken: X s, Fetched N row(s)") and errors go to stderr.
 * Output formats: table (aligned, for people), csv (RFC 4180: header line, CRLF, quotes
 * doubled, NULL an empty field, doubles in the shortest form that reads back exactly), tsv
 * (header, NULL empty, tab/newline/backslash escaped as \t \n \\), json (an array of
 * objects, NULL as null). */
#ifdef EMBER_HAVE_SQL
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <editline/readline.h>

#include "cli/cli.h"
#include "engine/ember.h"
#include "sql/sql.h"
#include "sql/sql_ml.h"

#define PREFIX "ember sql"

typedef enum out_format { FMT_TABLE, FMT_CSV, FMT_TSV, FMT_JSON } out_format;

typedef struct shell {
    em_sql_session *s;
    out_format fmt;
    bool timer;
    bool interactive;
    int depth;            /* .read nesting */
} shell;

static bool parse_format(const char *name, out_format *f)
{
    static const char *const names[] = {"table", "csv", "tsv", "json"};
    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, names[i]) == 0) {
            *f = (out_format)i;
            return true;
        }
    return false;
}

/* ---------------------------------------------------------------- value output */
/* A value's text for csv/tsv/json: integers as integers, doubles shortest round-trip. */
static void value_text(const em_sql_value *v, em_vbuf *b)
{
    em_vbuf_clear(b);
    if (v->type == EM_SQL_DOUBLE) {
        char buf[32];
        em_sql_double_shortest(buf, v->u.d);
        em_vbuf_printf(b, "%s", buf);
    } else if (v->type != EM_SQL_NULL)
        em_sql_value_format(b, v);
    em_vbuf_append(b, "", 1);
    b->len--;
}

static void csv_field(FILE *f, const char *s, size_t n)
{
    if (strcspn(s, ",\"\r\n") >= n) {
        fwrite(s, 1, n, f);
        return;
    }
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            fputc('"', f);
        fputc(s[i], f);
    }
    fputc('"', f);
}

static void tsv_field(FILE *f, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        switch (s[i]) {
        case '\t': fputs("\\t", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\\': fputs("\\\\", f); break;
        default: fputc(s[i], f);
        }
}

static void json_string(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void print_delimited(const em_sql_result *r, out_format fmt, FILE *f)
{
    uint32_t nc = em_sql_result_ncols(r);
    const char *sep = fmt == FMT_CSV ? "," : "\t", *eol = fmt == FMT_CSV ? "\r\n" : "\n";
    em_vbuf b;
    em_vbuf_init(&b);
    for (uint32_t c = 0; c < nc; c++) {
        const char *name = em_sql_result_col_name(r, c);
        fputs(c ? sep : "", f);
        (fmt == FMT_CSV ? csv_field : tsv_field)(f, name, strlen(name));
    }
    fputs(eol, f);
    for (size_t i = 0; i < em_sql_result_nrows(r); i++) {
        const em_sql_value *row = em_sql_result_row(r, i);
        for (uint32_t c = 0; c < nc; c++) {
            fputs(c ? sep : "", f);
            value_text(&row[c], &b);
            (fmt == FMT_CSV ? csv_field : tsv_field)(f, (const char *)b.data, b.len);
        }
        fputs(eol, f);
    }
    em_vbuf_destroy(&b);
}

static void print_json(const em_sql_result *r, FILE *f)
{
    uint32_t nc = em_sql_result_ncols(r);
    em_vbuf b;
    em_vbuf_init(&b);
    fputs("[", f);
    for (size_t i = 0; i < em_sql_result_nrows(r); i++) {
        const em_sql_value *row = em_sql_result_row(r, i);
        fputs(i ? ",\n {" : "{", f);
        for (uint32_t c = 0; c < nc; c++) {
            const char *name = em_sql_result_col_name(r, c);
            const em_sql_value *v = &row[c];
            fputs(c ? ", " : "", f);
            json_string(f, name, strlen(name));
            fputs(": ", f);
            value_text(v, &b);
            if (v->type == EM_SQL_NULL ||
                (v->type == EM_SQL_DOUBLE && strspn((const char *)b.data, "-0123456789.e+") != b.len))
                fputs("null", f); /* NULL, and doubles JSON cannot hold (inf, nan) */
            else if (v->type == EM_SQL_TEXT || v->type == EM_SQL_DATE)
                json_string(f, (const char *)b.data, b.len);
            else if (v->type == EM_SQL_BOOL)
                fputs(v->u.i ? "true" : "false", f);
            else
                fputs((const char *)b.data, f);
        }
        fputs("}", f);
    }
    fputs("]\n", f);
    em_vbuf_destroy(&b);
}

static void print_table(const em_sql_result *r, FILE *f)
{
    uint32_t nc = em_sql_result_ncols(r);
    size_t nr = em_sql_result_nrows(r);
    size_t *w = calloc(nc + 1, sizeof *w);
    em_vbuf b;
    if (w == NULL)
        return;
    em_vbuf_init(&b);
    for (uint32_t c = 0; c < nc; c++)
        w[c] = strlen(em_sql_result_col_name(r, c));
    for (size_t i = 0; i < nr; i++)
        for (uint32_t c = 0; c < nc; c++) {
            em_vbuf_clear(&b);
            em_sql_value_format(&b, &em_sql_result_row(r, i)[c]);
            if (b.len > w[c])
                w[c] = b.len;
        }
    for (uint32_t c = 0; c < nc; c++)
        fprintf(f, "%s%-*s", c ? " | " : "", (int)w[c], em_sql_result_col_name(r, c));
    fputc('\n', f);
    for (uint32_t c = 0; c < nc; c++) {
        fputs(c ? "-+-" : "", f);
        for (size_t k = 0; k < w[c]; k++)
            fputc('-', f);
    }
    fputc('\n', f);
    for (size_t i = 0; i < nr; i++) {
        for (uint32_t c = 0; c < nc; c++) {
            const em_sql_value *v = &em_sql_result_row(r, i)[c];
            em_vbuf_clear(&b);
            em_sql_value_format(&b, v);
            bool right = v->type == EM_SQL_INT || v->type == EM_SQL_DOUBLE;
            fprintf(f, "%s%*s%.*s%*s", c ? " | " : "", right ? (int)(w[c] - b.len) : 0, "",
                    (int)b.len, (const char *)b.data, right ? 0 : (int)(w[c] - b.len), "");
        }
        fputc('\n', f);
    }
    em_vbuf_destroy(&b);
    free(w);
}

/* ---------------------------------------------------------------- statements */
/* Runs every statement of text; false after the first error (printed). */
static bool run_text(shell *sh, const char *text, size_t len)
{
    size_t off = 0;
    while (off < len) {
        em_sql_result *r = NULL;
        em_sql_diag d;
        size_t used = 0;
        double t0 = em_now_s();
        int rc = em_sql_exec(sh->s, text + off, len - off, &used, &r, &d);
        double dt = em_now_s() - t0;
        if (rc < 0) {
            em_vbuf b;
            em_vbuf_init(&b);
            em_sql_diag_format(&b, text + off, len - off, &d);
            fprintf(stderr, "%s: %.*s", PREFIX, (int)b.len, (const char *)b.data);
            em_vbuf_destroy(&b);
            return false;
        }
        off += used ? used : len - off;
        if (r == NULL)
            continue;
        if (em_sql_result_ncols(r) > 0) {
            switch (sh->fmt) {
            case FMT_TABLE: print_table(r, stdout); break;
            case FMT_JSON: print_json(r, stdout); break;
            default: print_delimited(r, sh->fmt, stdout); break;
            }
            fflush(stdout);
            if (sh->timer)
                fprintf(stderr, "Time taken: %.3f s, Fetched %zu row(s)\n", dt,
                        em_sql_result_nrows(r));
        } else if (sh->timer)
            fprintf(stderr, "Time taken: %.3f s%s\n", dt, "");
        em_sql_result_free(r);
    }
    return true;
}

static bool run_file(shell *sh, const char *path);

/* A dot command line; false when it failed (or .quit: *quit set). */
static bool dot_command(shell *sh, char *line, bool *quit)
{
    char *cmd = strtok(line, " \t"), *arg = strtok(NULL, " \t");
    if (strcmp(cmd, ".quit") == 0 || strcmp(cmd, ".exit") == 0) {
        *quit = true;
        return true;
    }
    if (strcmp(cmd, ".tables") == 0) {
        size_t n;
        const char *const *t = em_sql_session_tables(sh->s, &n);
        for (size_t i = 0; i < n; i++)
            printf("%s\n", t[i]);
        return true;
    }
    if (strcmp(cmd, ".schema") == 0) {
        size_t n;
        const char *const *t = em_sql_session_tables(sh->s, &n);
        em_vbuf b;
        em_err err = EM_ERR_INIT;
        bool ok = true;
        em_vbuf_init(&b);
        for (size_t i = 0; i < n && ok; i++)
            if (arg == NULL || strcasecmp(arg, t[i]) == 0)
                ok = em_sql_session_schema(sh->s, t[i], &b, &err) == 0;
        if (arg != NULL && b.len == 0)
            fprintf(stderr, "%s: .schema: unknown table '%s'\n", PREFIX, arg);
        fwrite(b.data, 1, b.len, stdout);
        em_vbuf_destroy(&b);
        return ok && (arg == NULL || b.len > 0);
    }
    if (strcmp(cmd, ".mode") == 0) {
        if (arg == NULL || !parse_format(arg, &sh->fmt)) {
            fprintf(stderr, "%s: .mode: expected table, csv, tsv or json\n", PREFIX);
            return false;
        }
        return true;
    }
    if (strcmp(cmd, ".timer") == 0) {
        if (arg == NULL || (strcmp(arg, "on") != 0 && strcmp(arg, "off") != 0)) {
            fprintf(stderr, "%s: .timer: expected on or off\n", PREFIX);
            return false;
        }
        sh->timer = strcmp(arg, "on") == 0;
        return true;
    }
    if (strcmp(cmd, ".read") == 0) {
        if (arg == NULL) {
            fprintf(stderr, "%s: .read: expected a file name\n", PREFIX);
            return false;
        }
        return run_file(sh, arg);
    }
    if (strcmp(cmd, ".help") == 0) {
        printf(".tables          list tables\n.schema [TABLE]  show CREATE TABLE statements\n"
               ".mode FORMAT     table, csv, tsv or json\n.timer on|off    print timings\n"
               ".read FILE       run the statements of FILE\n.quit            leave\n");
        return true;
    }
    fprintf(stderr, "%s: unknown command '%s' (.help lists them)\n", PREFIX, cmd);
    return false;
}

/* True when buf holds a complete statement: ends with ';' outside quotes and comments. */
static bool complete(const char *buf, size_t n)
{
    char q = 0;
    bool semi = false;
    for (size_t i = 0; i < n; i++) {
        char c = buf[i];
        if (q) {
            q = c == q ? 0 : q;
            continue;
        }
        if (c == '-' && i + 1 < n && buf[i + 1] == '-') {
            while (i < n && buf[i] != '\n')
                i++;
            continue;
        }
        if (c == '\'' || c == '"')
            q = c;
        if (c == ';')
            semi = true;
        else if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            semi = false;
    }
    return semi && q == 0;
}

/* Reads statements line by line from f (or libedit when sh->interactive and f == stdin). */
static bool run_stream(shell *sh, FILE *f, bool edit)
{
    em_vbuf buf;
    char *line = NULL;
    size_t cap = 0;
    bool ok = true, quit = false;
    em_vbuf_init(&buf);
    while (!quit) {
        char *l;
        if (edit) {
            free(line);
            line = readline(buf.len ? "   ...> " : "ember> ");
            if (line == NULL)
                break;
            if (line[0] != '\0')
                add_history(line);
            l = line;
        } else {
            ssize_t n = getline(&line, &cap, f);
            if (n < 0)
                break;
            if (n > 0 && line[n - 1] == '\n')
                line[n - 1] = '\0';
            l = line;
        }
        if (buf.len == 0 && l[strspn(l, " \t")] == '.') {
            bool r = dot_command(sh, l + strspn(l, " \t"), &quit);
            ok &= r;
            if (!r && !edit)
                break;
            continue;
        }
        em_vbuf_printf(&buf, "%s\n", l);
        if (complete((const char *)buf.data, buf.len)) {
            bool r = run_text(sh, (const char *)buf.data, buf.len);
            ok &= r;
            em_vbuf_clear(&buf);
            if (!r && !edit)
                break;
        }
    }
    if (ok && buf.len > 0 && ((const char *)buf.data)[strspn((const char *)buf.data, " \t\r\n")])
        ok = run_text(sh, (const char *)buf.data, buf.len); /* last statement without ';' */
    free(line);
    em_vbuf_destroy(&buf);
    return ok;
}

static bool run_file(shell *sh, const char *path)
{
    FILE *f;
    bool ok;
    if (sh->depth >= 16) {
        fprintf(stderr, "%s: %s: .read nested too deeply\n", PREFIX, path);
        return false;
    }
    if ((f = fopen(path, "r")) == NULL) {
        fprintf(stderr, "%s: %s: cannot open: %s\n", PREFIX, path, strerror(errno));
        return false;
    }
    sh->depth++;
    ok = run_stream(sh, f, false);
    sh->depth--;
    fclose(f);
    return ok;
}

/* ---------------------------------------------------------------- sqllogictest */
typedef struct slt_report {
    unsigned shown, max;
} slt_report;

static void slt_print(void *ud, const char *path, uint64_t line, const char *msg)
{
    slt_report *r = ud;
    if (r->shown++ < r->max)
        fprintf(stderr, "%s:%llu: %s\n", path, (unsigned long long)line, msg);
}

static int run_slt(int argc, char **argv, int first, const char *engine, unsigned show,
                   em_context *sc)
{
    em_sql_slt_stats total = {0};
    int status = EM_CLI_OK;
    double t0 = em_now_s();
    for (int i = first; i < argc; i++) {
        em_sql_slt_stats st = {0};
        slt_report rep = {.max = show};
        em_sql_slt_opts o = {.engine = engine, .report = slt_print, .ud = &rep, .sc = sc};
        em_err err = EM_ERR_INIT;
        double t1 = em_now_s();
        if (em_sql_slt_run(argv[i], &o, &st, &err) < 0) {
            fprintf(stderr, "%s: %s\n", PREFIX, err.msg);
            status = EM_CLI_FAIL;
            continue;
        }
        printf("%s: %llu passed, %llu failed, %llu skipped (%.2f%%, %.2f s)\n", argv[i],
               (unsigned long long)st.passed, (unsigned long long)st.failed,
               (unsigned long long)st.skipped,
               st.passed + st.failed ? 100.0 * (double)st.passed / (double)(st.passed + st.failed)
                                     : 100.0, em_now_s() - t1);
        fflush(stdout);
        total.passed += st.passed;
        total.failed += st.failed;
        total.skipped += st.skipped;
    }
    printf("total: %llu passed, %llu failed, %llu skipped (%.2f%%, %.2f s)\n",
           (unsigned long long)total.passed, (unsigned long long)total.failed,
           (unsigned long long)total.skipped,
           total.passed + total.failed
               ? 100.0 * (double)total.passed / (double)(total.passed + total.failed) : 100.0,
           em_now_s() - t0);
    return status;
}

/* ---------------------------------------------------------------- the command */
void em__cli_sql_help(FILE *f)
{
    fprintf(f,
            "Usage: ember sql [OPTIONS]\n"
            "       ember sql --slt FILE... [--slt-engine NAME] [--slt-show N]\n"
            "\n"
            "The SQL shell: runs statements from -e, -f, or stdin (line editing and history\n"
            "when stdin is a terminal; piped input is read plainly). Statements run on the\n"
            "driver's local path unless --master or --conf give the shell an engine context\n"
            "(docs/sql.md). Dot commands: .tables .schema .mode .timer .read .help .quit.\n"
            "\n"
            "Options:\n"
            "  --master M         run on an engine context with this master (local[N],\n"
            "                     local-cluster[N,C], ember://HOST:PORT): queries whose input\n"
            "                     is larger than ember.sql.localThreshold run as stages\n"
            "  --conf KEY=VALUE   a configuration setting (repeatable), e.g.\n"
            "                     ember.sql.forceDistributed=true; implies --master local[2]\n"
            "                     when --master is not given\n"
            "  -e SQL             run SQL and exit\n"
            "  -f FILE            run the statements of FILE and exit\n"
            "  --format F         table (default), csv, tsv or json\n"
            "  --no-timer         do not print 'Time taken' lines on stderr\n"
            "  --slt FILE...      run sqllogictest scripts; print 'N passed, N failed' each\n"
            "  --slt-engine NAME  engine name for skipif/onlyif (default: ember)\n"
            "  --slt-show N       print the first N failures of each file (default 10)\n"
            "  --export-libsvm DIR --label COL [--features A,B] [--nulls error|skip|nan]\n"
            "                     [--drop-last] [--table NAME=PATH] [--sql-init FILE]\n"
            "                     [--mapping FILE] [--conf K=V]: write the rows of -e/-f's\n"
            "                     last query as LIBSVM part files (docs/sql-ml.md)\n"
            "  --help, -h         show this help and exit\n");
}

/* em__cli_opt_value, leaving *i on the option's last word (the loop steps past it). */
static const char *take(const char *flag, int argc, char **argv, int *i, bool *m)
{
    const char *v = em__cli_opt_value(PREFIX, flag, argc, argv, i, m);
    if (*m)
        (*i)--;
    return v;
}

/* An engine context for the distributed path when --master or --conf is given (*sc NULL
 * otherwise); EM_CLI_OK or the exit status. */
static int make_context(const char *master, const char *const *confs, int nconfs,
                        em_context **sc)
{
    em_err err = EM_ERR_INIT;
    *sc = NULL;
    if (master == NULL && nconfs == 0)
        return EM_CLI_OK;
    const char *const defaults[] = {"ember.master", "local[2]",
                                    "ember.ui.showConsoleProgress", "false", NULL};
    const char *const overrides[] = {"ember.master", master, NULL};
    int status;
    em_conf *conf = em__cli_job_conf(PREFIX, defaults, confs, nconfs, overrides, &status);
    if (conf == NULL)
        return status;
    *sc = em_context_new(conf, &err);
    em_conf_free(conf);
    if (*sc == NULL)
        return em__cli_fail(PREFIX, "%s", err.msg);
    return EM_CLI_OK;
}

int em__cli_sql(int argc, char **argv)
{
    shell sh = {.fmt = FMT_TABLE, .timer = true};
    const char *exec = NULL, *file = NULL, *engine = NULL, *master = NULL, *v;
    const char *confs[64];
    int nconfs = 0;
    uint64_t show = 10;
    int slt_first = -1;
    bool m;
    for (int i = 1; i < argc; i++)   /* a query exported for MLlib (docs/sql-ml.md) */
        if (!strncmp(argv[i], "--export-libsvm", 15))
            return em_sql_ml_export_main(argc, argv);
    for (int i = 1; i < argc; i++) {
        if (em__cli_is_help(argv[i])) {
            em__cli_sql_help(stdout);
            return EM_CLI_OK;
        }
        if (strcmp(argv[i], "--slt") == 0) {
            slt_first = i + 1;
            break;
        }
        if (strcmp(argv[i], "--no-timer") == 0) {
            sh.timer = false;
            continue;
        }
        if ((v = take("-e", argc, argv, &i, &m)) != NULL || m) {
            if (v == NULL)
                return EM_CLI_USAGE;
            exec = v;
        } else if ((v = take("-f", argc, argv, &i, &m)) != NULL || m) {
            if (v == NULL)
                return EM_CLI_USAGE;
            file = v;
        } else if ((v = take("--master", argc, argv, &i, &m)) != NULL || m) {
            if (v == NULL)
                return EM_CLI_USAGE;
            master = v;
        } else if ((v = take("--conf", argc, argv, &i, &m)) != NULL || m) {
            if (v == NULL)
                return EM_CLI_USAGE;
            if (strchr(v, '=') == NULL || v[0] == '=' || nconfs == 64)
                return em__cli_usage_error(PREFIX, "ember sql",
                                           "--conf: expected KEY=VALUE (at most 64), got '%s'", v);
            confs[nconfs++] = v;
        } else if ((v = take("--format", argc, argv, &i, &m)) != NULL || m) {
            if (v == NULL)
                return EM_CLI_USAGE;
            if (!parse_format(v, &sh.fmt))
                return em__cli_usage_error(PREFIX, "ember sql",
                                           "--format: expected table, csv, tsv or json, got '%s'", v);
        } else if ((v = take("--slt-engine", argc, argv, &i, &m)) != NULL ||
                   m) {
            if (v == NULL)
                return EM_CLI_USAGE;
            engine = v;
        } else if ((v = take("--slt-show", argc, argv, &i, &m)) != NULL ||
                   m) {
            if (v == NULL || !em__cli_parse_u64(PREFIX, "--slt-show", v, 0, 1000000, &show))
                return EM_CLI_USAGE;
        } else
            return em__cli_usage_error(PREFIX, "ember sql", "unknown option '%s'", argv[i]);
    }
    if (slt_first >= 0) {
        /* options may also follow the files */
        int n = argc;
        for (int i = slt_first; i < argc; i++)
            if (argv[i][0] == '-') {
                n = i;
                break;
            }
        for (int i = n; i < argc; i++) {
            if ((v = take("--slt-engine", argc, argv, &i, &m)) != NULL)
                engine = v;
            else if ((v = take("--slt-show", argc, argv, &i, &m)) != NULL) {
                if (!em__cli_parse_u64(PREFIX, "--slt-show", v, 0, 1000000, &show))
                    return EM_CLI_USAGE;
            } else
                return em__cli_usage_error(PREFIX, "ember sql", "unknown option '%s'", argv[i]);
        }
        if (n == slt_first)
            return em__cli_usage_error(PREFIX, "ember sql", "--slt: expected one or more files");
        em_context *sc;
        int st = make_context(master, confs, nconfs, &sc);
        if (st != EM_CLI_OK)
            return st;
        st = run_slt(n, argv, slt_first, engine, (unsigned)show, sc);
        em_context_free(sc);
        return st;
    }
    em_err err = EM_ERR_INIT;
    em_context *sc;
    int st = make_context(master, confs, nconfs, &sc);
    if (st != EM_CLI_OK)
        return st;
    if ((sh.s = em_sql_session_new(&err)) == NULL) {
        em_context_free(sc);
        return em__cli_fail(PREFIX, "%s", err.msg);
    }
    em_sql_session_set_context(sh.s, sc);
    bool ok;
    if (exec != NULL)
        ok = run_text(&sh, exec, strlen(exec));
    else if (file != NULL)
        ok = run_file(&sh, file);
    else {
        sh.interactive = isatty(STDIN_FILENO) != 0;
        ok = run_stream(&sh, stdin, sh.interactive);
        if (sh.interactive)
            ok = true; /* errors were shown; the session ended normally */
    }
    em_sql_session_free(sh.s);
    em_context_free(sc);
    return ok ? EM_CLI_OK : EM_CLI_FAIL;
}
#endif
