/* engine/api/conf.c - configuration: a string map with the priority of where each value
 * came from, a file loader and EMBER_* environment variables.
 *
 * DESIGN: each entry remembers its source (defaults < file < environment < em_conf_set), so
 * em_context_new can merge the user's conf with EMBER_CONF_FILE and the environment in any
 * order and still let the stronger source win. Few keys: a linear array.
 * THREADS: one thread per object. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/api/api_int.h"

enum { PRIO_DEFAULT = 0, PRIO_FILE = 1, PRIO_ENV = 2, PRIO_SET = 3 };

typedef struct conf_ent {
    char *key;
    char *value;
    int prio;
} conf_ent;

struct em_conf {
    conf_ent *ents;
    size_t n, cap;
};

extern char **environ;

/* Every key the engine reads. Two uses: the environment spelling of camelCase keys
 * (EMBER_TASK_MAXFAILURES -> ember.task.maxFailures), and em__conf_check_keys, which
 * rejects any other "ember." key set by a file or em_conf_set (a typo would otherwise be
 * ignored silently). A module reading a new key adds a row here. */
static const char *const known_keys[] = {
    "ember.master", "ember.app.name", "ember.default.parallelism", "ember.executor.memory",
    "ember.shuffle.memory", "ember.local.dir", "ember.task.maxFailures",
    "ember.shuffle.compress.level", "ember.ui.port", "ember.ui.host", "ember.eventLog.enabled",
    "ember.eventLog.dir", "ember.ui.showConsoleProgress", "ember.job.library",
    "ember.memory.storageFraction", "ember.checkpoint.dir", "ember.checkpoint.cleanup",
    "ember.locality.wait", "ember.net.compress", "ember.shuffle.sync",
    "ember.network.timeoutMs", "ember.cluster.registerTimeoutMs", "ember.driver.host",
    "ember.network.crypto", "ember.locality.prefetch",
    "ember.sql.autoBroadcastJoinThreshold", "ember.sql.localThreshold",
    "ember.sql.forceDistributed",
    "ember.driver.bindAddress", "ember.driver.port", "ember.blockManager.port",
    "ember.network.crypto.cipher",
};
#define NKNOWN (sizeof known_keys / sizeof *known_keys)

/* Namespaces of the layers above the engine (SQL, MLlib), which read and check their own
 * keys; em__conf_check_keys leaves them alone. */
static const char *const free_prefixes[] = {"ember.sql.", "ember.ml."};

em_conf *em_conf_new(void)
{
    return em_xcalloc(1, sizeof(em_conf));
}

void em_conf_free(em_conf *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        em_free(c->ents[i].key);
        em_free(c->ents[i].value);
    }
    em_free(c->ents);
    em_free(c);
}

static int set_prio(em_conf *c, const char *key, const char *value, int prio)
{
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->ents[i].key, key) != 0)
            continue;
        if (c->ents[i].prio > prio)
            return 0;
        char *v = em_strdup(value);
        if (!v)
            return EM_ENOMEM;
        em_free(c->ents[i].value);
        c->ents[i].value = v;
        c->ents[i].prio = prio;
        return 0;
    }
    conf_ent *e = em_arr_grow(c->ents, &c->cap, c->n + 1, sizeof *e);
    if (!e)
        return EM_ENOMEM;
    c->ents = e;
    char *k = em_strdup(key), *v = em_strdup(value);
    if (!k || !v) {
        em_free(k);
        em_free(v);
        return EM_ENOMEM;
    }
    c->ents[c->n++] = (conf_ent){k, v, prio};
    return 0;
}

int em_conf_set(em_conf *c, const char *key, const char *value)
{
    return set_prio(c, key, value, PRIO_SET);
}

int em_conf_set_default(em_conf *c, const char *key, const char *value)
{
    return set_prio(c, key, value, PRIO_DEFAULT);
}

/* Levenshtein distance of a and b, case-insensitive, capped at 9 (names are short). */
static unsigned edit_distance(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    unsigned row[64];
    if (na >= 64 || nb >= 64)
        return 9;
    for (size_t j = 0; j <= nb; j++)
        row[j] = (unsigned)j;
    for (size_t i = 1; i <= na; i++) {
        unsigned diag = row[0];
        row[0] = (unsigned)i;
        for (size_t j = 1; j <= nb; j++) {
            unsigned up = row[j];
            unsigned sub = diag + (tolower((unsigned char)a[i - 1]) !=
                                   tolower((unsigned char)b[j - 1]));
            unsigned best = up + 1 < row[j - 1] + 1 ? up + 1 : row[j - 1] + 1;
            row[j] = sub < best ? sub : best;
            diag = up;
        }
    }
    return row[nb] > 9 ? 9 : row[nb];
}

int em_conf_check_key(const char *key, em_err *err)
{
    if (strncmp(key, "ember.", 6) != 0)
        return 0;   /* a user's own key: the job reads it */
    for (size_t i = 0; i < sizeof free_prefixes / sizeof *free_prefixes; i++)
        if (strncmp(key, free_prefixes[i], strlen(free_prefixes[i])) == 0)
            return 0;
    const char *best = NULL;
    unsigned best_d = 4;   /* suggest only names at most 3 edits away */
    for (size_t i = 0; i < NKNOWN; i++) {
        if (strcmp(key, known_keys[i]) == 0)
            return 0;
        unsigned d = edit_distance(key, known_keys[i]);
        if (d < best_d) {
            best_d = d;
            best = known_keys[i];
        }
    }
    if (best)
        return em_err_set(err, EM_EINVAL, "unknown configuration key '%s' (did you mean '%s'?)",
                          key, best);
    return em_err_set(err, EM_EINVAL, "unknown configuration key '%s' (keys under 'ember.' "
                      "are the engine's; see docs/cli.md)", key);
}

int em__conf_check_keys(const em_conf *c, em_err *err)
{
    /* Environment entries are not checked: EMBER_* also names variables that are no keys
     * (EMBER_SECRET, EMBER_EXAMPLES_DIR, ...), and the environment is shared by tools. */
    for (size_t i = 0; c && i < c->n; i++) {
        if (c->ents[i].prio == PRIO_ENV)
            continue;
        int rc = em_conf_check_key(c->ents[i].key, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

const char *em_conf_get(const em_conf *c, const char *key)
{
    for (size_t i = 0; c && i < c->n; i++)
        if (strcmp(c->ents[i].key, key) == 0)
            return c->ents[i].value;
    return NULL;
}

int em__conf_merge(em_conf *dst, const em_conf *src)
{
    for (size_t i = 0; src && i < src->n; i++)
        if (set_prio(dst, src->ents[i].key, src->ents[i].value, src->ents[i].prio) < 0)
            return EM_ENOMEM;
    return 0;
}

static char *trim(char *s)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* One line "key = value" or "key value" (comment and blanks already handled). */
static int parse_line(em_conf *c, char *line, const char *path, unsigned lineno, em_err *err)
{
    char *key = line, *val;
    size_t klen = strcspn(line, " \t=");
    if (klen == 0)
        return em_err_set(err, EM_ECORRUPT, "%s:%u: missing key", path, lineno);
    val = line + klen;
    if (*val) {
        *val++ = '\0';
        val = trim(val);
        if (*val == '=')
            val = trim(val + 1);
    }
    if (*val == '\0')
        return em_err_set(err, EM_ECORRUPT, "%s:%u: key '%s' has no value", path, lineno, key);
    if (set_prio(c, key, val, PRIO_FILE) < 0)
        return em_err_set(err, EM_ENOMEM, "%s:%u: out of memory", path, lineno);
    return 0;
}

int em_conf_load_file(em_conf *c, const char *path, em_err *err)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    unsigned lineno = 0;
    int rc = 0;

    if (!f)
        return em_err_set(err, EM_EIO, "%s: %s", path, strerror(errno));
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *s = trim(line);
        if (*s == '\0')
            continue;
        if ((rc = parse_line(c, s, path, lineno, err)) < 0)
            break;
    }
    if (rc == 0 && ferror(f))
        rc = em_err_set(err, EM_EIO, "%s:%u: read error", path, lineno + 1);
    free(line);   /* getline allocates with malloc */
    fclose(f);
    return rc;
}

/* "EMBER_TASK_MAXFAILURES" -> "ember.task.maxFailures" (known key) or "ember.x.y". */
static void env_to_key(const char *name, size_t n, char *out, size_t cap)
{
    char low[256];
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < sizeof low; i++)
        low[k++] = name[i] == '_' ? '.' : (char)tolower((unsigned char)name[i]);
    low[k] = '\0';
    for (size_t i = 0; i < NKNOWN; i++)
        if (strcasecmp(known_keys[i], low) == 0) {
            snprintf(out, cap, "%s", known_keys[i]);
            return;
        }
    snprintf(out, cap, "%s", low);
}

void em_conf_load_env(em_conf *c)
{
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (strncmp(*e, "EMBER_", 6) != 0 || !eq)
            continue;
        /* Not configuration keys: the conf file path, logging and test plumbing. */
        if (strncmp(*e, "EMBER_CONF_FILE=", 16) == 0 || strncmp(*e, "EMBER_LOG=", 10) == 0 ||
            strncmp(*e, "EMBER_TEST_", 11) == 0)
            continue;
        char key[256];
        env_to_key(*e, (size_t)(eq - *e), key, sizeof key);
        (void)set_prio(c, key, eq + 1, PRIO_ENV);
    }
}
