/* cli/opts.c - the table-driven option parser of the `ember` commands (cli/cli.h): one
 * table per command says, for each option, its spelling, its value and where the value
 * goes; the same table parses argv and prints the help's option list.
 *
 * SPELLINGS. "--name VALUE" and "--name=VALUE" for options with a value, "--name" (or its
 * alias, "-q") for flags; "--help" and "-h" anywhere among the options print the command's
 * help. Values are checked here (ranges, sizes, KEY=VALUE), so a command sees only valid
 * ones; each error names the option and the value, as "PREFIX: --opt: ...". */
#include <stddef.h>
#include <string.h>

#include "cli/cli.h"
#include "engine/ember.h"

/* The option argv[*i] spells, or NULL. Sets *value to what follows '=' (or NULL). */
static const em__cli_opt *find_opt(const em__cli_opts *s, const char *a, const char **value)
{
    *value = NULL;
    for (size_t k = 0; k < s->n; k++) {
        const em__cli_opt *o = &s->opt[k];
        if (o->alias && strcmp(a, o->alias) == 0)
            return o;
        size_t n = strlen(o->name);
        if (strncmp(a, o->name, n) != 0)
            continue;
        if (a[n] == '\0')
            return o;
        if (a[n] == '=' && o->kind != EM_CLI_OPT_FLAG) {
            *value = a + n + 1;
            return o;
        }
    }
    return NULL;
}

static int store_uint(const em__cli_opts *s, const em__cli_opt *o, const char *v, void *field)
{
    uint64_t n;
    if (!em__cli_parse_u64(s->prefix, o->name, v, o->min, o->max, &n))
        return EM_CLI_USAGE;
    switch (o->width) {
    case 2: *(uint16_t *)field = (uint16_t)n; break;
    case 4: *(uint32_t *)field = (uint32_t)n; break;
    default: *(uint64_t *)field = n; break;
    }
    return -1;
}

/* Checks value v of option o and stores it in its field. -1 or a usage status. */
static int store(const em__cli_opts *s, const em__cli_opt *o, const char *v, void *args)
{
    void *field = (char *)args + o->off;
    const char *p = s->prefix;
    switch (o->kind) {
    case EM_CLI_OPT_FLAG:
        *(bool *)field = true;
        return -1;
    case EM_CLI_OPT_NONEMPTY:
        if (!*v)
            return em__cli_usage_error(p, p, "%s: empty value", o->name);
        break;
    case EM_CLI_OPT_SIZE:
        if (em_parse_size(v) <= 0)
            return em__cli_usage_error(p, p, "%s: expected a size such as 512m or 2g, got '%s'",
                                       o->name, v);
        break;
    case EM_CLI_OPT_UINT:
        return store_uint(s, o, v, field);
    case EM_CLI_OPT_CONF: {
        em__cli_confs *c = field;
        if (!strchr(v, '=') || v[0] == '=')
            return em__cli_usage_error(p, p, "%s: expected KEY=VALUE, got '%s'", o->name, v);
        em_err err = EM_ERR_INIT;
        char *key = em_xasprintf("%.*s", (int)(strchr(v, '=') - v), v);
        int krc = em_conf_check_key(key, &err);
        em_free(key);
        if (krc < 0)
            return em__cli_usage_error(p, p, "%s: %s", o->name, err.msg);
        if (c->n == EM_CLI_MAX_CONFS)
            return em__cli_usage_error(p, p, "%s: too many (max %d)", o->name,
                                       EM_CLI_MAX_CONFS);
        c->kv[c->n++] = v;
        return -1;
    }
    case EM_CLI_OPT_STR:
        break;
    }
    *(const char **)field = v;
    return -1;
}

int em__cli_parse_opts(const em__cli_opts *s, em__cli_rest rest, void *args, int argc,
                       char **argv, int *i)
{
    while (*i < argc) {
        const char *a = argv[*i], *v;
        if (em__cli_is_help(a)) {
            s->help(stdout);
            return EM_CLI_OK;
        }
        const em__cli_opt *o = find_opt(s, a, &v);
        if (!o) {
            if (rest == EM_CLI_REST_NONE)
                return em__cli_usage_error(s->prefix, s->prefix, "unknown %s '%s'",
                                           a[0] == '-' ? "option" : "argument", a);
            if (strcmp(a, "--") == 0 || rest == EM_CLI_REST_ANY || a[0] != '-')
                return -1;   /* the caller's arguments start here */
            return em__cli_usage_error(s->prefix, s->prefix, "unknown option '%s'", a);
        }
        (*i)++;
        if (o->kind != EM_CLI_OPT_FLAG && !v) {
            if (*i >= argc) {
                fprintf(stderr, "%s: %s: missing value\n", s->prefix, o->name);
                return EM_CLI_USAGE;
            }
            v = argv[(*i)++];
        }
        int rc = store(s, o, v, args);
        if (rc >= 0)
            return rc;
    }
    return -1;
}

/* "--name ARG, -a" into buf (of n bytes); returns its length. */
static int spec(const em__cli_opt *o, char *buf, size_t n)
{
    return snprintf(buf, n, "%s%s%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "",
                    o->alias ? ", " : "", o->alias ? o->alias : "");
}

void em__cli_print_opts(FILE *f, const em__cli_opts *s)
{
    static const em__cli_opt help = {.name = "--help", .alias = "-h",
                                      .help = "show this help and exit"};
    char buf[96];
    int width = spec(&help, buf, sizeof buf);
    for (size_t k = 0; k < s->n; k++) {
        int w = spec(&s->opt[k], buf, sizeof buf);
        width = w > width ? w : width;
    }
    width += 3;
    for (size_t k = 0; k <= s->n; k++) {
        const em__cli_opt *o = k < s->n ? &s->opt[k] : &help;
        spec(o, buf, sizeof buf);
        const char *line = o->help;
        fprintf(f, "  %-*s", width, buf);
        for (;;) {
            const char *nl = strchr(line, '\n');
            int len = nl ? (int)(nl - line) : (int)strlen(line);
            fprintf(f, "%.*s\n", len, line);
            if (!nl)
                break;
            line = nl + 1;
            fprintf(f, "  %-*s", width, "");
        }
    }
}
