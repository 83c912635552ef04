/* mllib/als/cli.c - `ember als`: load ratings, train on the engine, evaluate, save and
 * recommend. The lead wires em_als_cli_main into the `ember` command. */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mllib/als/als_int.h"

#define ALS_MAX_CONF 64
#define ALS_MAX_TABLES 32

const em_als_sql_ops *em__als_sql_ops(void);   /* records.c */
#define HAS_TEST(o) ((o)->test || (o)->test_sql)

typedef struct als_opts {
    const char *train, *test, *master, *save, *recommend;
    const char *rec_all[2];                     /* --recommend-all, --recommend-all-items */
    const char *sql, *test_sql;                 /* --sql, --test-sql */
    const char *tables[ALS_MAX_TABLES];         /* --table NAME=PATH */
    uint32_t ntables;
    const char *init[ALS_MAX_TABLES];           /* --sql-init FILE */
    uint32_t ninit;
    em_ratings_read_opts ro;
    em_als_params p;
    int top;
    bool json;
    bool driver_read;
    em_cold_start cold;
    const char *confs[ALS_MAX_CONF];   /* --conf KEY=VALUE, borrowed from argv */
    uint32_t nconfs;
} als_opts;

void em_als_cli_help(FILE *f)
{
    fputs(
        "Usage: ember als --train PATH [--test PATH] [options]\n"
        "       ember als --sql QUERY [--table NAME=PATH]... [--test-sql QUERY|--test PATH]\n"
        "       ember als recommend --model DIR --user USER [--top N]\n"
        "\n"
        "Trains an alternating-least-squares matrix factorisation on the engine (users and\n"
        "items in blocks, factors shipped through the shuffle), then reports test RMSE.\n"
        "\n"
        "  --train PATH             training ratings (file, or directory of files)\n"
        "  --test PATH              test ratings; RMSE/MAE (explicit) or ranking metrics\n"
        "                           (implicit) are reported on them\n"
        "  --format F               tsv|csv|movielens|netflix|auto (default auto: by name and\n"
        "                           first line)\n"
        "  --skip-bad-lines         count and skip malformed lines instead of failing (with\n"
        "                           --sql: rows with a NULL id or rating)\n"
        "  --sql QUERY              train on a query's result instead of --train: its three\n"
        "                           columns are user, item (INTEGER or TEXT ids) and rating\n"
        "                           (numeric), e.g. \"SELECT u, m, stars FROM r\"\n"
        "  --test-sql QUERY         test ratings from a query (as --sql)\n"
        "  --table NAME=PATH        a table for --sql from a CSV file with a header line (a\n"
        "                           .tsv file: tab separated), types inferred (repeatable)\n"
        "  --sql-init FILE          SQL statements run before --sql (CREATE TABLE ... USING\n"
        "                           csv, ...; repeatable)\n"
        "  --map-ids                number every id by first appearance, even integer ids\n"
        "                           that are dense (0..n-1 or 1..n), which by default are\n"
        "                           numbered by value without an id-mapping job\n"
        "  --rank N                 factors per user and item (default 10)\n"
        "  --iterations N           full ALS iterations (default 10)\n"
        "  --lambda X               regularisation, weighted by rating counts (default 0.05)\n"
        "  --implicit               implicit-feedback ALS (confidence 1 + alpha*|r|)\n"
        "  --alpha X                implicit confidence scale (default 40)\n"
        "  --nonnegative            non-negative factors (NNLS solves)\n"
        "  --blocks N               user and item blocks (default: default parallelism)\n"
        "  --checkpoint-interval N  iterations between lineage cuts (default 5; 0 = never)\n"
        "  --seed N                 seed of the initial factors and block hashing (default 1)\n"
        "  --cold-start nan|drop    test pairs without factors: NaN RMSE or dropped (drop)\n"
        "  --master M               local[N] | local-cluster[E,C] (default: ember.master\n"
        "                           from $EMBER_CONF_FILE or EMBER_MASTER, else local[2]);\n"
        "                           standalone masters take jobs through 'ember submit'\n"
        "  --conf KEY=VALUE         an engine setting (repeatable): over $EMBER_CONF_FILE and\n"
        "                           EMBER_*, under the flags (--master); unless set there,\n"
        "                           ember.executor.memory=8g and\n"
        "                           ember.shuffle.compress.level=-3 (zstd's fast level)\n"
        "  --save DIR               save the model directory (must not exist; checked before\n"
        "                           training); 'ember als recommend' loads it\n"
        "  --recommend USER         print the top items for this user id\n"
        "  --top N                  how many to recommend (default 10); with --implicit and a\n"
        "                           test set, the k of precision@k and NDCG@k\n"
        "  --recommend-all DIR      the top N items of every user, computed on the executors\n"
        "                           (blocked SGEMM per range of users) and written there as\n"
        "                           DIR/part-NNNNN lines USER TAB ITEM TAB SCORE, best first\n"
        "                           (DIR must not exist; Spark's recommendForAllUsers)\n"
        "  --recommend-all-items DIR  the top N users of every item, the same way\n"
        "  --driver-read            parse the files and build the blocks on the driver (the\n"
        "                           path before issue 11); by default ALS reads on the\n"
        "                           executors and builds each block where it is cached, and\n"
        "                           computes test RMSE and the implicit ranking metrics there\n"
        "  --json                   last stdout line: one JSON object with test_rmse,\n"
        "                           train_rmse, load_s, setup_s (read to blocks ready),\n"
        "                           train_s, eval_s, total_s, peak_rss_mib (the largest sum\n"
        "                           over this process and its executors), driver_peak_rss_mib,\n"
        "                           read_on_executors, dense_user_ids, dense_item_ids and,\n"
        "                           implicit, precision_at_k, map, ndcg_at_k\n"
        "  --help                   this text\n",
        f);
}

static int usage(const char *fmt, const char *a)
{
    fprintf(stderr, "ember als: ");
    fprintf(stderr, fmt, a);
    fprintf(stderr, " (try 'ember als --help')\n");
    return 2;
}

bool em__als_parse_count(const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
    uint64_t x = 0;
    if (!v || !*v)
        return false;
    for (const char *p = v; *p; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (d > 9 || x > (UINT64_MAX - d) / 10)
            return false;
        x = x * 10 + d;
    }
    if (x < lo || x > hi)
        return false;
    *out = x;
    return true;
}

/* A real number: the whole string, finite, within lo..hi. */
static bool num(const char *v, double lo, double hi, double *out)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || !(d >= lo && d <= hi))
        return false;
    *out = d;
    return true;
}

/* The flags that take a value (an unknown flag is reported as such, not as "missing
 * value"). */
static const char *const value_flags[] = {
    "--train", "--test", "--master", "--save", "--recommend", "--format", "--cold-start",
    "--rank", "--iterations", "--lambda", "--alpha", "--blocks", "--checkpoint-interval",
    "--seed", "--top", "--conf", "--recommend-all", "--recommend-all-items", "--sql",
    "--test-sql", "--table", "--sql-init", NULL,
};

static bool is_value_flag(const char *a)
{
    for (int i = 0; value_flags[i]; i++)
        if (!strcmp(a, value_flags[i]))
            return true;
    return false;
}

/* Integer flag a = v within lo..hi into *out, or the usage error (2). */
static int count_flag(const char *a, const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (em__als_parse_count(v, lo, hi, out))
        return 0;
    fprintf(stderr, "ember als: %s: expected an integer in %llu..%llu, got '%s' (try 'ember "
            "als --help')\n", a, (unsigned long long)lo, (unsigned long long)hi, v);
    return 2;
}

/* Flags with a value; returns 0, or 2 for bad usage. */
static int take_value(als_opts *o, const char *a, const char *v)
{
    double d = 0;
    uint64_t n = 0;
    int rc = 0;
    if (!strcmp(a, "--train")) o->train = v;
    else if (!strcmp(a, "--test")) o->test = v;
    else if (!strcmp(a, "--master")) o->master = v;
    else if (!strcmp(a, "--save")) o->save = v;
    else if (!strcmp(a, "--recommend")) o->recommend = v;
    else if (!strcmp(a, "--recommend-all")) o->rec_all[0] = v;
    else if (!strcmp(a, "--recommend-all-items")) o->rec_all[1] = v;
    else if (!strcmp(a, "--sql")) o->sql = v;
    else if (!strcmp(a, "--test-sql")) o->test_sql = v;
    else if (!strcmp(a, "--table")) {
        const char *eq = strchr(v, '=');
        if (!eq || eq == v || !eq[1])
            return usage("--table wants NAME=PATH, not '%s'", v);
        if (o->ntables == ALS_MAX_TABLES)
            return usage("%s: too many tables", "--table");
        o->tables[o->ntables++] = v;
    } else if (!strcmp(a, "--sql-init")) {
        if (o->ninit == ALS_MAX_TABLES)
            return usage("%s: too many files", "--sql-init");
        o->init[o->ninit++] = v;
    }
    else if (!strcmp(a, "--conf")) {
        const char *eq = strchr(v, '=');
        if (!eq || eq == v)
            return usage("--conf wants KEY=VALUE, not '%s'", v);
        if (o->nconfs == ALS_MAX_CONF)
            return usage("%s: too many --conf options", "--conf");
        o->confs[o->nconfs++] = v;
    }
    else if (!strcmp(a, "--format")) {
        int f = em_ratings_format_parse(v);
        if (f < 0)
            return usage("--format: unknown format '%s'", v);
        o->ro.format = (em_ratings_format)f;
    } else if (!strcmp(a, "--cold-start")) {
        if (strcmp(v, "nan") && strcmp(v, "drop"))
            return usage("--cold-start: expected nan or drop, got '%s'", v);
        o->cold = strcmp(v, "nan") ? EM_COLD_DROP : EM_COLD_NAN;
    } else if (!strcmp(a, "--rank")) {
        if (!(rc = count_flag(a, v, 1, EM__ALS_MAX_RANK, &n))) o->p.rank = (int)n;
    } else if (!strcmp(a, "--iterations")) {
        if (!(rc = count_flag(a, v, 1, 1000000, &n))) o->p.iterations = (int)n;
    } else if (!strcmp(a, "--lambda")) {
        if (!num(v, 0, 1e12, &d)) return usage("--lambda: expected >= 0, got '%s'", v);
        o->p.lambda = d;
    } else if (!strcmp(a, "--alpha")) {
        if (!num(v, 0, 1e12, &d)) return usage("--alpha: expected >= 0, got '%s'", v);
        o->p.alpha = d;
    } else if (!strcmp(a, "--blocks")) {
        if (!(rc = count_flag(a, v, 1, EM__ALS_MAX_BLOCKS, &n)))
            o->p.user_blocks = o->p.item_blocks = (uint32_t)n;
    } else if (!strcmp(a, "--checkpoint-interval")) {
        if (!(rc = count_flag(a, v, 0, 1000000, &n)))
            o->p.checkpoint_interval = n == 0 ? -1 : (int)n;
    } else if (!strcmp(a, "--seed")) {
        if (!(rc = count_flag(a, v, 0, UINT64_MAX, &n))) o->p.seed = n;
    } else if (!strcmp(a, "--top")) {
        if (!(rc = count_flag(a, v, 1, 1000000, &n))) o->top = (int)n;
    } else
        return usage("unknown flag %s", a);
    return rc;
}

static int parse_args(als_opts *o, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            em_als_cli_help(stdout);
            return -1;
        }
        if (!strcmp(a, "--implicit")) o->p.implicit = true;
        else if (!strcmp(a, "--nonnegative")) o->p.nonnegative = true;
        else if (!strcmp(a, "--json")) o->json = true;
        else if (!strcmp(a, "--driver-read")) o->driver_read = true;
        else if (!strcmp(a, "--skip-bad-lines")) o->ro.skip_bad_lines = true;
        else if (!strcmp(a, "--map-ids")) o->ro.dense_ids = false;
        else if (strncmp(a, "--", 2) != 0)
            return usage("unexpected argument '%s'", a);
        else {
            const char *eq = strchr(a, '=');
            char flag[64];
            snprintf(flag, sizeof flag, "%.*s", eq ? (int)(eq - a) : (int)strlen(a), a);
            if (!is_value_flag(flag))
                return usage("unknown flag %s", flag);
            if (eq) {
                if (take_value(o, flag, eq + 1))
                    return 2;
            } else if (i + 1 >= argc) {
                return usage("%s: missing value", a);
            } else if (take_value(o, a, argv[++i])) {
                return 2;
            }
        }
    }
    if (o->sql && o->train)
        return usage("%s", "--sql and --train: give one of them");
    if (!o->train && !o->sql)
        return usage("%s", "--train PATH (or --sql QUERY) is required");
    if (!o->sql && (o->test_sql || o->ntables || o->ninit))
        return usage("%s", "--test-sql, --table and --sql-init go with --sql");
    if (o->test_sql && o->test)
        return usage("%s", "--test-sql and --test: give one of them");
    if (o->sql && o->driver_read)
        return usage("%s", "--sql reads on the executors: --driver-read does not apply");
    return 0;
}

/* Every output path is checked before any work (a full training run must not end in
 * "exists"): the model directory must not exist and its parent must be a writable
 * directory. em_als_model_save checks again (something may appear meanwhile). */
static int check_out_dir(const char *flag, const char *dir)
{
    struct stat st;
    if (!*dir)
        return usage("%s: empty path", flag);
    if (lstat(dir, &st) == 0) {
        fprintf(stderr, "ember als: %s %s: already exists (a model directory is never "
                "overwritten; remove it or choose another path)\n", flag, dir);
        return 2;
    }
    char *parent = em_xstrdup(dir);
    size_t n = strlen(parent);
    while (n > 1 && parent[n - 1] == '/')
        parent[--n] = '\0';
    char *slash = strrchr(parent, '/');
    const char *pd = !slash ? "." : slash == parent ? "/" : (*slash = '\0', parent);
    int rc = 0;
    if (stat(pd, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "ember als: %s %s: parent directory %s does not exist\n", flag, dir,
                pd);
        rc = 2;
    } else if (access(pd, W_OK | X_OK) != 0) {
        fprintf(stderr, "ember als: %s %s: cannot write in %s: %s\n", flag, dir, pd,
                strerror(errno));
        rc = 2;
    }
    em_free(parent);
    return rc;
}

/* The master: --master, else the conf file ($EMBER_CONF_FILE) and EMBER_MASTER, else
 * local[2]; standalone masters take jobs through `ember submit` only. *conf_out: the
 * context's configuration (defaults < conf file < environment < flags). */
static int make_conf(const als_opts *o, em_conf **conf_out, em_err *err)
{
    em_conf *conf = em_conf_new();
    const char *file = getenv("EMBER_CONF_FILE");
    if (file && *file && em_conf_load_file(conf, file, err) < 0) {
        em_conf_free(conf);
        return err->code;
    }
    em_conf_load_env(conf);
    for (uint32_t k = 0; k < o->nconfs; k++) {   /* over the file and EMBER_*, under flags */
        const char *eq = strchr(o->confs[k], '=');
        char *key = em_xasprintf("%.*s", (int)(eq - o->confs[k]), o->confs[k]);
        em_conf_set(conf, key, eq + 1);
        em_free(key);
    }
    if (o->master)
        em_conf_set(conf, "ember.master", o->master);
    else if (!em_conf_get(conf, "ember.master"))
        em_conf_set(conf, "ember.master", "local[2]");
    const char *m = em_conf_get(conf, "ember.master");
    if (!strncmp(m, "ember://", 8)) {
        em_err_set(err, EM_EINVAL, "master '%s': ember als runs in local[N] or "
                   "local-cluster[E,C]; jobs go to a standalone master with 'ember submit'", m);
        em_conf_free(conf);
        return EM_EINVAL;
    }
    em_conf_set(conf, "ember.app.name", "ember als");
    if (!em_conf_get(conf, "ember.executor.memory"))
        em_conf_set(conf, "ember.executor.memory", "8g");
    /* WHY a fast zstd level: the blocks' ratings cross the shuffle as byte planes
     * (route.c), which zstd's fast level -3 packs 2.3x at about 3x the speed of level 1
     * (2.9x): at scale 1 level 1 spent ~0.9 CPU s per executor and side, 20% of the block
     * building (docs/als.md, "Setup time") */
    if (!em_conf_get(conf, "ember.shuffle.compress.level"))
        em_conf_set(conf, "ember.shuffle.compress.level", "-3");
    *conf_out = conf;
    return 0;
}

static void progress(void *ud, int it, double secs)
{
    (void)ud;
    fprintf(stderr, "ember als: iteration %d done, %.2f s\n", it, secs);
}



/* ---------------------------------------------------------------- peak memory of the job
 * The JSON's peak_rss_mib is the largest SUM of the resident sets of this process and its
 * descendants (the executors of local-cluster[E,C]) seen at once, sampled every 100 ms from
 * /proc: getrusage reports the largest single child, not the sum. Executors of a
 * standalone cluster are not descendants and are not counted. */
enum { RSS_MAXP = 4096 };   /* processes looked at per sample */

typedef struct rss_sampler {
    pthread_t th;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop, started;
    uint64_t peak_kb;
    long *pids, *ppids;        /* sampler thread's scratch: RSS_MAXP each */
    uint64_t *rss;
    bool *in;
} rss_sampler;

/* Resident KiB of pid (0 when gone) and its parent pid, from /proc/pid/stat{,m}. */
static uint64_t proc_rss_kb(long pid, long *ppid)
{
    char path[64], buf[512];
    unsigned long long size = 0, res = 0;
    *ppid = -1;
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');   /* the command name may hold spaces and ')' */
    if (!rp || sscanf(rp + 1, " %*c %ld", ppid) != 1)
        return 0;
    snprintf(path, sizeof path, "/proc/%ld/statm", pid);
    if (!(f = fopen(path, "r")))
        return 0;
    if (fscanf(f, "%llu %llu", &size, &res) != 2)
        res = 0;
    fclose(f);
    return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE) / 1024;
}

static uint64_t tree_rss_scan(rss_sampler *s);

/* Appends the children of every thread of pid (/proc/PID/task/TID/children) to pids[*np..].
 * false when the kernel has no such files (CONFIG_PROC_CHILDREN off). */
static bool add_children(long pid, long *pids, size_t *np)
{
    char path[96];
    snprintf(path, sizeof path, "/proc/%ld/task", pid);
    DIR *d = opendir(path);
    bool any = false;
    if (!d)
        return true;   /* gone since it was listed */
    for (struct dirent *e; (e = readdir(d));) {
        char *end;
        long tid = strtol(e->d_name, &end, 10);
        if (*end || tid <= 0)
            continue;
        snprintf(path, sizeof path, "/proc/%ld/task/%ld/children", pid, tid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        any = true;
        for (long c; *np < RSS_MAXP && fscanf(f, "%ld", &c) == 1;)
            pids[(*np)++] = c;
        fclose(f);
    }
    closedir(d);
    return any;
}

/* The summed RSS of getpid() and its descendants right now: the tree walked through the
 * children files (a few opens per process of the job), or, on kernels without them, every
 * process of /proc looked at (two opens each: with a few hundred processes on the machine
 * that cost the driver more CPU than the job's own work on it). */
static uint64_t tree_rss_kb(rss_sampler *s)
{
    size_t nt = 1;
    uint64_t tsum = 0;
    s->pids[0] = (long)getpid();
    for (size_t i = 0; i < nt; i++) {
        long pp;
        tsum += proc_rss_kb(s->pids[i], &pp);
        if (!add_children(s->pids[i], s->pids, &nt) && i == 0)
            return tree_rss_scan(s);
    }
    return tsum;
}

/* The summed RSS of getpid() and its descendants right now, every process of /proc
 * looked at. */
static uint64_t tree_rss_scan(rss_sampler *s)
{
    long *pids = s->pids, *ppids = s->ppids;
    uint64_t *rss = s->rss;
    bool *in = s->in;
    size_t np = 0;
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d)) && np < RSS_MAXP;) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        rss[np] = proc_rss_kb(pid, &ppids[np]);
        pids[np++] = pid;
    }
    closedir(d);
    long self = (long)getpid();
    uint64_t sum = 0;
    for (size_t i = 0; i < np; i++)
        in[i] = pids[i] == self;
    for (bool grew = true; grew;) {   /* descendants: parents first, whatever the order */
        grew = false;
        for (size_t i = 0; i < np; i++)
            for (size_t q = 0; !in[i] && q < np; q++)
                if (in[q] && ppids[i] == pids[q])
                    in[i] = grew = true;
    }
    for (size_t i = 0; i < np; i++)
        sum += in[i] ? rss[i] : 0;
    return sum;
}

static void *rss_main(void *p)
{
    rss_sampler *s = p;
    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
        pthread_mutex_unlock(&s->lock);
        uint64_t kb = tree_rss_kb(s);
        pthread_mutex_lock(&s->lock);
        if (kb > s->peak_kb)
            s->peak_kb = kb;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100 * 1000 * 1000;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        if (!s->stop)
            pthread_cond_timedwait(&s->cond, &s->lock, &until);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static void rss_start(rss_sampler *s)
{
    s->pids = em_xcalloc(RSS_MAXP, sizeof *s->pids);
    s->ppids = em_xcalloc(RSS_MAXP, sizeof *s->ppids);
    s->rss = em_xcalloc(RSS_MAXP, sizeof *s->rss);
    s->in = em_xcalloc(RSS_MAXP, sizeof *s->in);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    s->started = pthread_create(&s->th, NULL, rss_main, s) == 0;
}

/* Stops the sampler; the peak in MiB (at least this process's own peak). */
static double rss_stop(rss_sampler *s)
{
    if (s->started) {
        pthread_mutex_lock(&s->lock);
        s->stop = true;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->th, NULL);
        s->started = false;
    }
    if (s->pids) {
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->cond);
    }
    em_free(s->pids);
    em_free(s->ppids);
    em_free(s->rss);
    em_free(s->in);
    s->pids = s->ppids = NULL;
    s->rss = NULL;
    s->in = NULL;
    struct rusage self;
    getrusage(RUSAGE_SELF, &self);
    uint64_t kb = s->peak_kb > (uint64_t)self.ru_maxrss ? s->peak_kb : (uint64_t)self.ru_maxrss;
    return (double)kb / 1024.0;
}

static void recommend(const als_opts *o, const em_als_model *m, em_idmap *users,
                      em_idmap *items)
{
    int32_t u = em_idmap_find(users, o->recommend, strlen(o->recommend));
    int32_t *ids = em_xmalloc((size_t)o->top * 4);
    float *sc = em_xmalloc((size_t)o->top * 4);
    int n = u < 0 ? 0 : em_als_recommend_items(m, u, o->top, NULL, 0, ids, sc);
    char buf[24];
    if (n == 0)
        fprintf(stderr, "ember als: no recommendations for user %s (unknown or cold)\n",
                o->recommend);
    for (int i = 0; i < n; i++)
        printf("recommend\t%s\t%s\t%.4f\n", o->recommend, em_idmap_name(items, ids[i], buf),
               sc[i]);
    em_free(ids);
    em_free(sc);
}

typedef struct run {
    em_idmap *users, *items;
    em_ratings train, test;        /* --driver-read path */
    em_als_ratings xtrain, xtest;  /* executor path (exec) */
    bool exec;
    em_context *sc;
    em_als_model *model;
    double t_start, t_load, t_train, t_eval, t_setup_end;
    em_als_metrics tr, te;
    em_rank_metrics rk;
    uint32_t dense;                /* sides numbered by value (dense integer ids) */
} run;

/* em_als_params.phase (ud: the run): prints the phase and notes the end of the setup (the
 * item blocks ready: setup_s in the JSON). */
static void phase(void *ud, const char *what, double secs)
{
    run *r = ud;
    fprintf(stderr, "ember als: %s in %.2f s\n", what, secs);
    if (strstr(what, "item blocks"))
        r->t_setup_end = em_now_s();
}

/* Makes the context (once). *ctx_failed: it could not start. */
static int context(const em_conf *conf, run *r, void (*on_context)(em_context *),
                   bool *ctx_failed, em_err *err)
{
    if (r->sc)
        return 0;
    if (!(r->sc = em_context_new(conf, err))) {
        *ctx_failed = true;
        return err->code;
    }
    if (on_context)
        on_context(r->sc);
    return 0;
}

/* A query's ratings (--sql, --test-sql) through the SQL hook, mapped on the executors. */
static int sql_read(const als_opts *o, run *r, const char *query, const char *what,
                    em_als_ratings *out, em_err *err)
{
    const em_als_sql_ops *ops = em__als_sql_ops();
    em_rdd *triples = NULL;
    uint64_t nulls = 0;
    if (!ops)
        return em_err_set(err, EM_EINVAL, "%s: this build has no SQL front end", what);
    em_als_sql_query q = {.query = query, .tables = o->tables, .ntables = o->ntables,
                          .init = o->init, .ninit = o->ninit,
                          .skip_bad = o->ro.skip_bad_lines};
    int rc = ops->query(r->sc, &q, &triples, &nulls, err);
    if (rc == 0) {
        rc = em_als_ratings_from_triples(r->sc, triples, &o->ro, r->users, r->items, out,
                                         err);
        if (rc < 0)
            em_err_prefix(err, "%s", what);
        out->skipped += nulls;
    }
    em_rdd_release(triples);   /* alive through out->ratings */
    return rc;
}

/* Reads train (and test) on the executors: 0 done (r->exec), 1 when a file needs the
 * driver's reader (nothing read), <0 an error. */
static int load_exec(const als_opts *o, run *r, em_err *err)
{
    double t0 = em_now_s();
    if (!(r->users = em_idmap_new()) || !(r->items = em_idmap_new()))
        return em_err_set(err, EM_ENOMEM, "id maps");
    int rc = o->sql ? sql_read(o, r, o->sql, "--sql", &r->xtrain, err)
                    : em_als_read_ratings(r->sc, o->train, &o->ro, r->users, r->items,
                                          &r->xtrain, err);
    int32_t nu = em_idmap_size(r->users), ni = em_idmap_size(r->items);
    r->dense = r->xtrain.dense;
    if (rc == 0 && o->test_sql)
        rc = sql_read(o, r, o->test_sql, "--test-sql", &r->xtest, err);
    else if (rc == 0 && o->test) {
        rc = em_als_read_ratings(r->sc, o->test, &o->ro, r->users, r->items, &r->xtest, err);
        if (rc == 1)
            em_als_ratings_release(r->sc, &r->xtrain);
    }
    if (rc == 1) {   /* the driver's reader starts again from empty maps */
        em_idmap_free(r->users);
        em_idmap_free(r->items);
        r->users = r->items = NULL;
        return 1;
    }
    r->t_load = em_now_s() - t0;
    if (rc == 0) {
        char tests[48] = "";
        r->exec = true;
        r->train.n = (size_t)r->xtrain.n;   /* reported */
        r->test.n = (size_t)r->xtest.n;
        if (o->test || o->test_sql)
            snprintf(tests, sizeof tests, ", %zu test ratings", r->test.n);
        fprintf(stderr, "ember als: read on the executors%s: %zu training ratings (%d users, %d "
                "items)%s in %.2f s; %llu bad lines skipped\n", o->sql ? " from --sql" : "",
                r->train.n, nu, ni, tests,
                r->t_load, (unsigned long long)(r->xtrain.skipped + r->xtest.skipped));
    }
    return rc;
}

/* em_als_params.ratings_done on the executor path: the cached ratings are dropped (the
 * handle stays: a lost block is rebuilt through its lineage). */
static void unpersist_train(void *ud)
{
    run *r = ud;
    em_als_ratings_unpersist(&r->xtrain);
}

/* --recommend-all, --recommend-all-items: written by the executors. */
static int recommend_all(const als_opts *o, run *r, em_err *err)
{
    for (int side = 0; side < 2; side++) {
        if (!o->rec_all[side])
            continue;
        double t0 = em_now_s();
        int rc = em_als_recommend_all_save(r->sc, r->model, side, o->top, r->users, r->items,
                                           o->rec_all[side], err);
        if (rc < 0)
            return rc;
        fprintf(stderr, "ember als: top %d %s for every %s written to %s in %.2f s\n", o->top,
                side ? "users" : "items", side ? "item" : "user", o->rec_all[side],
                em_now_s() - t0);
    }
    return 0;
}

/* Training and test metrics on the executor path. */
static int train_exec(const als_opts *o, run *r, em_als_params *p, em_err *err)
{
    double t0 = em_now_s();
    if (!p->implicit)   /* implicit: the training ratings are the ranking's exclusions */
        p->ratings_done = unpersist_train;
    int rc = em_als_train_rdd(r->sc, r->xtrain.ratings, em_idmap_size(r->users),
                              em_idmap_size(r->items), p, &r->model, err);
    r->t_train = em_now_s() - t0;
    if (rc < 0)
        return rc;
    t0 = em_now_s();
    if (p->implicit)
        rc = em_als_evaluate_rdd(r->sc, r->model, r->xtrain.ratings, EM_COLD_DROP, &r->tr, err);
    if (rc == 0 && HAS_TEST(o))
        rc = em_als_evaluate_rdd(r->sc, r->model, r->xtest.ratings, o->cold, &r->te, err);
    if (rc == 0 && HAS_TEST(o) && p->implicit)
        rc = em_als_ranking_metrics_rdd(r->sc, r->model, r->xtrain.ratings, r->xtest.ratings,
                                        o->top, &r->rk, err);
    r->t_eval = em_now_s() - t0;
    return rc;
}

static int load(const als_opts *o, run *r, em_err *err)
{
    double t0 = em_now_s();
    if (!(r->users = em_idmap_new()) || !(r->items = em_idmap_new()))
        return em_err_set(err, EM_ENOMEM, "id maps");
    int rc = em_ratings_read(o->train, &o->ro, r->users, r->items, &r->train, err);
    if (rc == 0 && o->ro.dense_ids)   /* the numbering of the executors' reader */
        rc = em_ratings_dense_renumber(&r->train, r->users, r->items, &r->dense, err);
    int32_t nu = em_idmap_size(r->users), ni = em_idmap_size(r->items);
    if (rc == 0 && o->test)
        rc = em_ratings_read(o->test, &o->ro, r->users, r->items, &r->test, err);
    r->t_load = em_now_s() - t0;
    if (rc == 0) {
        char tests[48] = "";
        if (o->test)
            snprintf(tests, sizeof tests, ", %zu test ratings", r->test.n);
        fprintf(stderr, "ember als: loaded %zu training ratings (%d users, %d items)%s in "
                "%.2f s; %llu bad lines skipped\n", r->train.n, nu, ni, tests, r->t_load,
                (unsigned long long)(r->train.skipped + r->test.skipped));
    }
    return rc;
}

/* em_als_params.ratings_done: the training ratings are no longer needed. */
static void free_train(void *ud)
{
    run *r = ud;
    em_ratings_destroy(&r->train);
}

/* conf: borrowed; *ctx_failed tells a context that could not start (a bad master or
 * setting is a usage error) from a failed training. */
static int train_eval(const als_opts *o, const em_conf *conf, run *r,
                      void (*on_context)(em_context *), bool *ctx_failed, em_err *err)
{
    int rc = context(conf, r, on_context, ctx_failed, err);
    if (rc < 0)
        return rc;
    double t0 = em_now_s();
    /* Explicit feedback: the training RMSE is computed on the executors and the parsed
     * training ratings (12 bytes each: 1.2 GB at 100M) are freed as soon as the blocks are
     * built. Implicit feedback keeps them for the ranking metrics (seen items). */
    em_als_params p = o->p;
    size_t n_train = r->train.n;
    r->tr = (em_als_metrics){.rmse = NAN, .mae = NAN};
    p.progress_ud = r;
    if (!p.implicit) {
        p.train_metrics = &r->tr;
        p.ratings_done = free_train;
    }
    if (r->exec)
        return train_exec(o, r, &p, err);
    /* Test-only ids got indices after the training ones: the model has rows for them
     * (cold, NaN) so that test pairs look up safely. */
    rc = em_als_train(r->sc, r->train.recs, r->train.n, em_idmap_size(r->users),
                          em_idmap_size(r->items), &p, &r->model, err);
    r->t_train = em_now_s() - t0;
    r->train.n = n_train;   /* still reported */
    if (rc < 0)
        return rc;
    t0 = em_now_s();
    if (p.implicit)
        em_als_evaluate(r->model, r->train.recs, r->train.n, EM_COLD_DROP, &r->tr);
    if (o->test)
        em_als_evaluate(r->model, r->test.recs, r->test.n, o->cold, &r->te);
    if (o->test && o->p.implicit)
        rc = em_als_ranking_metrics(r->model, r->train.recs, r->train.n, r->test.recs,
                                    r->test.n, o->top, &r->rk, err);
    r->t_eval = em_now_s() - t0;
    return rc;
}

static void report(const als_opts *o, const run *r, double total, double peak_mib)
{
    fprintf(stderr, "ember als: train RMSE %.4f", r->tr.rmse);
    if (HAS_TEST(o))
        fprintf(stderr, ", test RMSE %.4f MAE %.4f (%llu scored, %llu cold)", r->te.rmse,
                r->te.mae, (unsigned long long)r->te.n, (unsigned long long)r->te.cold);
    if (HAS_TEST(o) && o->p.implicit)
        fprintf(stderr, ", precision@%d %.4f MAP %.4f NDCG@%d %.4f", o->top,
                r->rk.precision_at_k, r->rk.map, o->top, r->rk.ndcg_at_k);
    fprintf(stderr, "; train %.2f s, total %.2f s\n", r->t_train, total);
    if (!o->json)
        return;
    json_t *j = json_object();
    json_object_set_new(j, "test_rmse", HAS_TEST(o) && !isnan(r->te.rmse) ? json_real(r->te.rmse)
                                                                      : json_null());
    json_object_set_new(j, "test_mae", HAS_TEST(o) && !isnan(r->te.mae) ? json_real(r->te.mae)
                                                                    : json_null());
    json_object_set_new(j, "train_rmse", isnan(r->tr.rmse) ? json_null() : json_real(r->tr.rmse));
    json_object_set_new(j, "load_s", json_real(r->t_load));
    json_object_set_new(j, "setup_s", json_real(r->t_setup_end > 0 ? r->t_setup_end - r->t_start
                                                                   : NAN));
    json_object_set_new(j, "read_on_executors", json_boolean(r->exec));
    json_object_set_new(j, "dense_user_ids", json_boolean(r->dense & 1));
    json_object_set_new(j, "dense_item_ids", json_boolean(r->dense >> 1 & 1));
    json_object_set_new(j, "train_s", json_real(r->t_train));
    json_object_set_new(j, "eval_s", json_real(r->t_eval));
    json_object_set_new(j, "total_s", json_real(total));
    json_object_set_new(j, "peak_rss_mib", json_real(peak_mib));
    struct rusage self;
    getrusage(RUSAGE_SELF, &self);
    json_object_set_new(j, "driver_peak_rss_mib", json_real((double)self.ru_maxrss / 1024.0));
    json_object_set_new(j, "rank", json_integer(o->p.rank ? o->p.rank : 10));
    json_object_set_new(j, "iterations", json_integer(o->p.iterations ? o->p.iterations : 10));
    json_object_set_new(j, "n_train", json_integer((json_int_t)r->train.n));
    json_object_set_new(j, "n_test", json_integer((json_int_t)r->test.n));
    if (o->p.implicit && HAS_TEST(o)) {
        json_object_set_new(j, "precision_at_k", json_real(r->rk.precision_at_k));
        json_object_set_new(j, "map", json_real(r->rk.map));
        json_object_set_new(j, "ndcg_at_k", json_real(r->rk.ndcg_at_k));
    }
    char *s = json_dumps(j, JSON_COMPACT);
    if (s)
        printf("%s\n", s);
    free(s);
    json_decref(j);
}

/* ---------------------------------------------------------------- ember als recommend
 * Loads a saved model (checksums verified) and prints the top items of one user, in the
 * format of --recommend: "recommend TAB user TAB item TAB score". */
static void recommend_help(FILE *f)
{
    fputs("Usage: ember als recommend --model DIR --user USER [--top N]\n"
          "\n"
          "Loads a model saved by 'ember als --save DIR' (its checksums are verified) and\n"
          "prints the top N items for USER (an external user id as in the training file),\n"
          "one line each: recommend TAB USER TAB ITEM TAB SCORE. Exit status 1 when the\n"
          "model does not load or the user is unknown or cold.\n"
          "\n"
          "  --model DIR   the saved model directory\n"
          "  --user USER   the user to recommend for\n"
          "  --top N       how many items (default 10)\n"
          "  --help        this text\n",
          f);
}

static int recommend_main(int argc, char **argv)
{
    const char *model = NULL, *user = NULL;
    uint64_t top = 10;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            recommend_help(stdout);
            return 0;
        }
        if (strcmp(a, "--model") && strcmp(a, "--user") && strcmp(a, "--top")) {
            fprintf(stderr, "ember als recommend: unknown %s '%s' (try 'ember als recommend "
                    "--help')\n", strncmp(a, "--", 2) ? "argument" : "flag", a);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "ember als recommend: %s: missing value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--model"))
            model = v;
        else if (!strcmp(a, "--user"))
            user = v;
        else if (count_flag(a, v, 1, 1000000, &top))
            return 2;
    }
    if (!model || !user) {
        fprintf(stderr, "ember als recommend: --model DIR and --user USER are required (try "
                "'ember als recommend --help')\n");
        return 2;
    }
    em_err err = EM_ERR_INIT;
    em_als_model *m = NULL;
    em_idmap *users = NULL, *items = NULL;
    int rc = em_als_model_load(model, &m, &users, &items, &err);
    if (rc == 0 && !users)
        rc = em_err_set(&err, EM_EINVAL, "%s: the model has no user_ids.txt (saved "
                        "without id maps)", model);
    int32_t u = rc == 0 ? em_idmap_find(users, user, strlen(user)) : -1;
    if (rc == 0 && u < 0)
        rc = em_err_set(&err, EM_EINVAL, "user '%s' is not in the model %s", user, model);
    if (rc == 0 && !em_als_model_has_user(m, u))
        rc = em_err_set(&err, EM_EINVAL, "user '%s' has no factors in %s (cold: no training "
                        "ratings)", user, model);
    if (rc == 0) {
        int32_t *ids = em_xmalloc((size_t)top * 4);
        float *sc = em_xmalloc((size_t)top * 4);
        int n = em_als_recommend_items(m, u, (int)top, NULL, 0, ids, sc);
        char buf[24];
        for (int i = 0; i < n; i++) {
            const char *name = items ? em_idmap_name(items, ids[i], buf) : NULL;
            if (!name)
                snprintf(buf, sizeof buf, "%d", ids[i]), name = buf;
            printf("recommend\t%s\t%s\t%.4f\n", user, name, sc[i]);
        }
        em_free(ids);
        em_free(sc);
    } else {
        fprintf(stderr, "ember als recommend: %s\n", err.msg);
    }
    em_als_model_free(m);
    em_idmap_free(users);
    em_idmap_free(items);
    fflush(stdout);
    return rc < 0 ? 1 : 0;
}

int em_als_cli_main(int argc, char **argv)
{
    return em_als_cli_run(argc, argv, NULL);
}

int em_als_cli_run(int argc, char **argv, void (*on_context)(em_context *sc))
{
    if (argc >= 2 && !strcmp(argv[1], "recommend"))
        return recommend_main(argc - 1, argv + 1);
    als_opts o = {.top = 10, .cold = EM_COLD_DROP, .ro = {.dense_ids = true},
                  .p = {.rank = 10, .iterations = 10, .lambda = 0.05, .alpha = 40, .seed = 1}};
    run r = {0};
    em_err err = EM_ERR_INIT;
    em_conf *conf = NULL;
    bool ctx_failed = false;
    double t0 = em_now_s();
    int rc = parse_args(&o, argc, argv);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (o.save && (rc = check_out_dir("--save", o.save)) != 0)
        return rc;
    for (int side = 0; side < 2; side++)
        if (o.rec_all[side] &&
            (rc = check_out_dir(side ? "--recommend-all-items" : "--recommend-all",
                                o.rec_all[side])) != 0)
            return rc;
    if (make_conf(&o, &conf, &err) < 0) {
        fprintf(stderr, "ember als: %s\n", err.msg);
        return 2;
    }
    o.p.progress = progress;
    o.p.phase = phase;
    rss_sampler rs = {0};
    if (o.json)
        rss_start(&rs);
    r.t_start = em_now_s();
    rc = 1;
    if ((o.sql || !o.driver_read) &&
        (rc = context(conf, &r, on_context, &ctx_failed, &err)) == 0)
        rc = load_exec(&o, &r, &err);
    if (rc == 1)
        rc = load(&o, &r, &err);
    if (rc == 0 && (rc = train_eval(&o, conf, &r, on_context, &ctx_failed, &err)) == 0 &&
        o.save)
        rc = em_als_model_save(r.model, o.save, r.users, r.items, &err);
    if (rc == 0)
        rc = recommend_all(&o, &r, &err);
    if (rc == 0) {
        if (o.recommend)
            recommend(&o, r.model, r.users, r.items);
        double total = em_now_s() - t0;
        report(&o, &r, total, rss_stop(&rs));
    } else {
        fprintf(stderr, "ember als: %s\n", err.msg);
    }
    rss_stop(&rs);
    em_conf_free(conf);
    em_als_model_free(r.model);
    em_als_ratings_release(r.sc, &r.xtrain);
    em_als_ratings_release(r.sc, &r.xtest);
    if (on_context && r.sc)
        on_context(NULL);
    em_context_free(r.sc);
    em_ratings_destroy(&r.train);
    em_ratings_destroy(&r.test);
    em_idmap_free(r.users);
    em_idmap_free(r.items);
    fflush(stdout);
    return rc == 0 ? 0 : ctx_failed && rc == EM_EINVAL ? 2 : 1;
}
