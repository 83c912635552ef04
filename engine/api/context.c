/* engine/api/context.c - contexts: configuration checks, the application directory, the
 * block store, the scheduler with its backend; broadcast variables, accumulators and
 * statistics. (Job groups are in job.c, persistence in persist.c, what a dataset tells
 * about itself in inspect.c.)
 *
 * APPLICATION DIRECTORY: <ember.local.dir | $TMPDIR | /tmp>/ember-app-XXXXXX with
 *   shuffle/  map outputs (shuffle_<sid>_<mid>.data/.index)
 *   spill/    reducer and writer spills
 *   blocks/   the block store's disk blocks
 * removed whole by em_context_free, so nothing is left behind.
 * THREADS: any thread for everything but em_context_new/free (api_int.h: sc->lock). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/api/api_int.h"
#include "engine/net/net.h"
#include "engine/ui/ui.h"

static int parse_u32(const char *key, const char *v, uint32_t lo, uint32_t hi, uint32_t *out,
                     em_err *err)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < (long long)lo || x > (long long)hi)
        return em_err_set(err, EM_EINVAL, "%s: bad value '%s' (an integer in %u..%u)", key, v,
                          lo, hi);
    *out = (uint32_t)x;
    return 0;
}

/* A zstd level: 1..22, or a fast level -1..-100 (`zstd --fast=N` is level -N: about 3x
 * the speed of level 1 at a lower ratio, the class of Spark's default codec, lz4). 0 is
 * refused: zstd reads it as its default (3), which would surprise. */
static int parse_level(const char *key, const char *v, int *out, em_err *err)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < EM_ZSTD_LEVEL_MIN || x > EM_ZSTD_LEVEL_MAX || x == 0)
        return em_err_set(err, EM_EINVAL, "%s: bad value '%s' (an integer in %d..-1 or 1..%d)",
                          key, v, EM_ZSTD_LEVEL_MIN, EM_ZSTD_LEVEL_MAX);
    *out = (int)x;
    return 0;
}

/* "true" or "false"; def when the key is unset. */
static int parse_bool(const em_conf *c, const char *key, bool def, bool *out, em_err *err)
{
    const char *v = em_conf_get(c, key);
    if (!v)
        *out = def;
    else if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0)
        *out = v[0] == 't';
    else
        return em_err_set(err, EM_EINVAL, "%s: expected true or false, got '%s'", key, v);
    return 0;
}

/* Parses the number inside "local[N]" etc.; '*' = online CPUs. local-cluster[E,C] sets
 * *nexec = E and *threads = E * C; ember://host:port sets *remote. */
static int parse_master(const char *m, uint32_t *threads, uint32_t *nexec, bool *remote,
                        em_err *err)
{
    size_t n = strlen(m);
    if (strcmp(m, "local") == 0) {
        *threads = 1;
        return 0;
    }
    if (strncmp(m, "local[", 6) == 0 && n > 7 && m[n - 1] == ']') {
        char num[32];
        if (n - 7 >= sizeof num)
            goto bad;
        memcpy(num, m + 6, n - 7);
        num[n - 7] = '\0';
        if (strcmp(num, "*") == 0) {
            long c = sysconf(_SC_NPROCESSORS_ONLN);
            *threads = c > 0 ? (uint32_t)c : 1;
            return 0;
        }
        char *end;
        long long x = strtoll(num, &end, 10);
        if (*end || end == num || x < 1 || x > 1024)
            goto bad;
        *threads = (uint32_t)x;
        return 0;
    }
    if (strncmp(m, "local-cluster[", 14) == 0 && m[n - 1] == ']') {
        unsigned e, c;
        char tail;
        if (sscanf(m + 14, "%u,%u%c", &e, &c, &tail) != 3 || tail != ']' || e < 1 || c < 1 ||
            e > 256 || c > 1024)
            goto bad;
        *nexec = e;
        *threads = e * c;
        return 0;
    }
    if (strncmp(m, "ember://", 8) == 0 && n > 8) {
        *remote = true;
        *threads = 2;
        return 0;
    }
bad:
    return em_err_set(err, EM_EINVAL,
                      "ember.master: bad value '%s' (local, local[N], local[*], "
                      "local-cluster[E,C] or ember://host:port)",
                      m);
}

static int parse_mem(const em_conf *c, const char *key, size_t def, size_t *out, em_err *err)
{
    const char *v = em_conf_get(c, key);
    if (!v) {
        *out = def;
        return 0;
    }
    int64_t x = em_parse_size(v);
    if (x <= 0)
        return em_err_set(err, EM_EINVAL, "%s: bad value '%s' (a size such as 512m or 2g)",
                          key, v);
    *out = (size_t)x;
    return 0;
}

/* Reads and checks every setting into sc. */
static int read_settings(em_context *sc, em_err *err)
{
    const em_conf *c = sc->conf;
    const char *v = em_conf_get(c, "ember.master");
    int rc;

    if ((rc = parse_master(v ? v : "local[*]", &sc->nthreads, &sc->nexec, &sc->remote, err)) < 0)
        return rc;
    sc->default_par = sc->nthreads < 2 ? 2 : sc->nthreads;
    if ((v = em_conf_get(c, "ember.default.parallelism")) &&
        (rc = parse_u32("ember.default.parallelism", v, 1, EM_SHUFFLE_MAX_PARTS,
                        &sc->default_par, err)) < 0)
        return rc;
    if ((rc = parse_mem(c, "ember.executor.memory", (size_t)1 << 30, &sc->executor_mem, err)))
        return rc;
    /* Below these budgets every few records make a spill run: a job then spends its time
     * merging thousands of runs (and open files), so refuse them up front. */
    if (sc->executor_mem < EM_MIN_EXECUTOR_MEMORY)
        return em_err_set(err, EM_EINVAL, "ember.executor.memory: %s is below the minimum 1m",
                          em_conf_get(c, "ember.executor.memory"));
    size_t shuffle_def = sc->executor_mem / 4 / sc->nthreads;
    if (shuffle_def < EM_MIN_SHUFFLE_MEMORY)
        shuffle_def = EM_MIN_SHUFFLE_MEMORY;
    if ((rc = parse_mem(c, "ember.shuffle.memory", shuffle_def, &sc->shuffle_mem, err)))
        return rc;
    if (sc->shuffle_mem < EM_MIN_SHUFFLE_MEMORY)
        return em_err_set(err, EM_EINVAL, "ember.shuffle.memory: %s is below the minimum 4k",
                          em_conf_get(c, "ember.shuffle.memory"));
    sc->storage_fraction = 0.5;
    if ((v = em_conf_get(c, "ember.memory.storageFraction"))) {
        char *end = NULL;
        double f = strtod(v, &end);
        if (end == v || *end != '\0' || !(f >= 0.0 && f <= 1.0))
            return em_err_set(err, EM_EINVAL, "ember.memory.storageFraction: expected a "
                              "number in 0..1, got '%s'", v);
        sc->storage_fraction = f;
    }
    sc->net_compress = 0;
    if ((v = em_conf_get(c, "ember.net.compress"))) {
        if (strcmp(v, "auto") == 0)
            sc->net_compress = 0;
        else if (strcmp(v, "true") == 0)
            sc->net_compress = 1;
        else if (strcmp(v, "false") == 0)
            sc->net_compress = 2;
        else
            return em_err_set(err, EM_EINVAL, "ember.net.compress: expected auto, true or "
                              "false, got '%s'", v);
    }
    sc->max_failures = 4;
    if ((v = em_conf_get(c, "ember.task.maxFailures")) &&
        (rc = parse_u32("ember.task.maxFailures", v, 1, 1000, &sc->max_failures, err)) < 0)
        return rc;
    sc->zstd_level = 1;
    if ((v = em_conf_get(c, "ember.shuffle.compress.level")) &&
        (rc = parse_level("ember.shuffle.compress.level", v, &sc->zstd_level, err)) < 0)
        return rc;
    return parse_bool(c, "ember.shuffle.sync", false, &sc->shuffle_sync, err);
}

/* The directory application directories go in: ember.local.dir, $TMPDIR or /tmp. */
static const char *local_dir(const em_conf *c)
{
    const char *base = em_conf_get(c, "ember.local.dir");
    if (!base)
        base = getenv("TMPDIR");
    return base && *base ? base : "/tmp";
}

/* The local dir must exist, or its parent must (then it is made, one level): a typo such
 * as /nonexistent/dir must not create a tree at the root. *make tells which case. */
static int check_local_dir(const char *base, bool *make, em_err *err)
{
    struct stat st;
    *make = false;
    if (stat(base, &st) == 0)
        return S_ISDIR(st.st_mode) ? 0 : em_err_set(err, EM_EINVAL, "ember.local.dir: '%s' is "
                                                    "not a directory", base);
    if (errno != ENOENT)
        return em_err_set(err, EM_EIO, "ember.local.dir: '%s': %s", base, strerror(errno));
    char *parent = em_xstrdup(base);
    size_t n = strlen(parent);
    while (n > 1 && parent[n - 1] == '/')
        parent[--n] = '\0';
    char *slash = strrchr(parent, '/');
    if (!slash)
        strcpy(parent, ".");
    else
        slash[slash == parent ? 1 : 0] = '\0';
    int rc = 0;
    if (stat(parent, &st) != 0 || !S_ISDIR(st.st_mode))
        rc = em_err_set(err, EM_EINVAL, "ember.local.dir: '%s' does not exist, nor does its "
                        "parent '%s'", base, parent);
    else
        *make = true;
    em_free(parent);
    return rc;
}

int em_conf_check(const em_conf *conf, em_err *err)
{
    em_context *tmp = em_xcalloc(1, sizeof *tmp);
    const char *file = getenv("EMBER_CONF_FILE");
    bool make;
    int rc = 0;

    tmp->conf = em_conf_new();
    if (file && *file)
        rc = em_conf_load_file(tmp->conf, file, err);
    if (rc == 0) {
        em_conf_load_env(tmp->conf);
        if (em__conf_merge(tmp->conf, conf) < 0)
            rc = em_err_set(err, EM_ENOMEM, "context: copying the configuration");
    }
    if (rc == 0 && (rc = em__conf_check_keys(tmp->conf, err)) == 0 &&
        (rc = read_settings(tmp, err)) == 0)
        rc = check_local_dir(local_dir(tmp->conf), &make, err);
    em_conf_free(tmp->conf);
    em_free(tmp);
    return rc;
}

static int make_app_dir(em_context *sc, em_err *err)
{
    const char *base = local_dir(sc->conf);
    bool make;
    int rc = check_local_dir(base, &make, err);
    if (rc < 0)
        return rc;
    if (make && mkdir(base, 0700) != 0 && errno != EEXIST)
        return em_err_set(err, EM_EIO, "ember.local.dir: cannot create '%s': %s", base,
                          strerror(errno));
    em__app_dirs_sweep(base);
    char *tmpl = em_xasprintf("%s/ember-app-XXXXXX", base);
    if (!mkdtemp(tmpl)) {
        rc = em_err_set(err, EM_EIO, "%s: cannot create the application directory: %s", tmpl,
                        strerror(errno));
        em_free(tmpl);
        return rc;
    }
    sc->app_dir = tmpl;
    if ((rc = em__app_dir_claim(tmpl, err)) < 0)
        return rc;
    sc->shuffle_dir = em_xasprintf("%s/shuffle", tmpl);
    sc->spill_dir = em_xasprintf("%s/spill", tmpl);
    /* The shuffle dir is the map outputs' location string (em_map_status.loc). */
    if (strlen(sc->shuffle_dir) >= sizeof(((em_map_status *)0)->loc))
        return em_err_set(err, EM_EINVAL, "ember.local.dir: '%s' is too long", base);
    char *blocks = em_xasprintf("%s/blocks", tmpl);
    if ((rc = em_mkdir_p(sc->shuffle_dir, err)) == 0 && (rc = em_mkdir_p(sc->spill_dir, err)) == 0)
        rc = em_mkdir_p(blocks, err);
    em_free(blocks);
    return rc;
}

static void apply_acc(void *ud, const em_acc_update *u, uint32_t n)
{
    em_context *sc = ud;
    pthread_mutex_lock(&sc->lock);
    for (uint32_t i = 0; i < n; i++) {
        if (u[i].id == 0 || u[i].id > sc->naccs)
            continue;
        em__acc *a = &sc->accs[u[i].id - 1];
        if (u[i].is_f64)
            a->f64 += u[i].f64;
        else
            a->i64 += u[i].i64;
    }
    pthread_mutex_unlock(&sc->lock);
}

/* Cluster masters: executors in processes (local-cluster spawns them under the app dir,
 * ember:// has a standalone master start them). */
static int start_cluster(em_context *sc, em_task_backend *out, em_err *err)
{
    const em_conf *c = sc->conf;
    em_cluster_backend_cfg cfg = {
        .opts = {
            .mode = sc->remote ? EM_CLUSTER_ACCEPT : EM_CLUSTER_SPAWN,
            .nexec = sc->remote ? 1 : sc->nexec,
            .cores = sc->remote ? 1 : sc->nthreads / sc->nexec,
            .memory = em_conf_get(c, "ember.executor.memory"),
            /* Spark's pair: spark.driver.bindAddress (where to listen, default the
             * advertised host) and spark.driver.host (what executors are told). */
            .listen_host = em_conf_get(c, "ember.driver.bindAddress")
                               ? em_conf_get(c, "ember.driver.bindAddress")
                               : em_conf_get(c, "ember.driver.host"),
            .advertise_host = em_conf_get(c, "ember.driver.host"),
            .exec_port = em_conf_get(c, "ember.blockManager.port"),
            .work_dir = sc->app_dir,
            .job_library = em_conf_get(c, "ember.job.library"),
            .storage_fraction = sc->storage_fraction,
            .shuffle_memory = em_conf_get(c, "ember.shuffle.memory") ? sc->shuffle_mem : 0,
            .net_compress = sc->net_compress,
            .shuffle_sync = sc->shuffle_sync,
            .zstd_level = sc->zstd_level,
            .store = sc->store,
        },
        .master_url = em_conf_get(c, "ember.master"),
        .tracker = sc->tracker,
        .apply_acc = apply_acc,
        .acc_ud = sc,
        .cluster_out = &sc->cluster,
    };
    const char *v = em_conf_get(c, "ember.job.library");
    if (v && !*v)
        cfg.opts.job_library = NULL;
    uint32_t ms;
    int rc;
    if ((v = em_conf_get(c, "ember.cluster.registerTimeoutMs")) &&
        (rc = parse_u32("ember.cluster.registerTimeoutMs", v, 100, 3600000, &ms, err)) < 0)
        return rc;
    else if (v)
        cfg.opts.register_timeout_ms = ms;
    if ((v = em_conf_get(c, "ember.network.timeoutMs")) &&
        (rc = parse_u32("ember.network.timeoutMs", v, 100, 3600000, &ms, err)) < 0)
        return rc;
    else if (v)
        cfg.opts.peer_timeout_ms = ms;
    if ((v = em_conf_get(c, "ember.network.crypto")) &&
        (rc = em_net_crypto_parse(v, "ember.network.crypto", &cfg.opts.crypto, err)) < 0)
        return rc;
    em_cipher cipher;
    if ((v = em_conf_get(c, "ember.network.crypto.cipher")) &&
        (rc = em_cipher_parse(v, "ember.network.crypto.cipher", &cipher, err)) < 0)
        return rc;
    else if (v)
        cfg.opts.bcast_cipher = (int)cipher;
    uint16_t plo, phi;
    if ((v = em_conf_get(c, "ember.driver.port")) &&
        (rc = em_net_port_range_parse(v, "ember.driver.port", &cfg.opts.listen_port,
                                      &cfg.opts.listen_port_hi, err)) < 0)
        return rc;
    if ((v = em_conf_get(c, "ember.blockManager.port")) &&
        (rc = em_net_port_range_parse(v, "ember.blockManager.port", &plo, &phi, err)) < 0)
        return rc;
    if ((v = em_conf_get(c, "ember.locality.wait")) &&
        (rc = em_cluster_parse_locality_wait(v, &ms, err)) < 0)
        return rc;
    else if (v)
        cfg.opts.locality_wait_ms = ms;
    bool prefetch;
    if ((rc = parse_bool(c, "ember.locality.prefetch", true, &prefetch, err)) < 0)
        return rc;
    cfg.opts.no_prefetch = !prefetch;
    return em_cluster_backend_new(&cfg, out, err);
}

/* Library contexts serve no status page unless ember.ui.port is set (a test suite creates
 * hundreds of contexts); the `ember` command sets it to 4040, Spark's default. */
static int start_status(em_context *sc, em_err *err)
{
    const char *port = em_conf_get(sc->conf, "ember.ui.port");
    em_status_opts so = {
        .app_name = em_conf_get(sc->conf, "ember.app.name"),
        .master = em_conf_get(sc->conf, "ember.master"),
        .ui_port = port ? port : "0",
        .ui_host = em_conf_get(sc->conf, "ember.ui.host"),
        .event_log_enabled = em_conf_get(sc->conf, "ember.eventLog.enabled"),
        .event_log_dir = em_conf_get(sc->conf, "ember.eventLog.dir"),
        .show_progress = em_conf_get(sc->conf, "ember.ui.showConsoleProgress"),
    };
    if (!(sc->status = em_status_new(&so, err)))
        return err->code;
    /* The status page, the event log and the progress bar listen to the scheduler. */
    return em_status_listen(sc->status, sc->sched, err);
}

static int start_runtime(em_context *sc, em_err *err)
{
    /* One memory manager shares ember.executor.memory between the tasks' shuffle buffers
     * and the cached blocks (docs/out-of-core.md). */
    sc->mm = em_memory_manager_new(sc->executor_mem, sc->storage_fraction);
    em_store_opts so = {.mem_budget = sc->executor_mem, .dir = sc->app_dir,
                        .zstd_level = sc->zstd_level, .mm = sc->mm};
    if (!(sc->store = em_block_store_new(&so, err)))
        return err->code ? err->code : EM_EIO;
    sc->tracker = em_map_tracker_new();
    em_exec_env env = {
        .store = sc->store,
        .shuffle_dir = sc->shuffle_dir,
        .spill_dir = sc->spill_dir,
        .exec_id = "driver",
        .fetcher = em_fetcher_local(),
        .map_outputs = em_map_tracker_outputs,
        .ud = sc->tracker,
        .task_mem_budget = sc->shuffle_mem,
        .zstd_level = sc->zstd_level,
        .shuffle_sync = sc->shuffle_sync,
        .mem = sc->mm,
    };
    em_sched_opts opts = {.tracker = sc->tracker, .max_failures = sc->max_failures};
    int rc;
    if (sc->nexec || sc->remote) {
        rc = start_cluster(sc, &opts.backend, err);
    } else {
        sc->cleaner = em_shuffle_cleaner_new(sc->shuffle_dir);
        rc = em_exec_local_backend_new(&env, sc->nthreads, apply_acc, sc, &opts.backend, err);
    }
    if (rc < 0)
        return rc;
    if (!(sc->sched = em_sched_new(&opts, err)))
        return err->code;
    return start_status(sc, err);
}

em_context *em_context_new(const em_conf *conf, em_err *err)
{
    em_context *sc = em_xcalloc(1, sizeof *sc);
    const char *file = getenv("EMBER_CONF_FILE");
    int rc = 0;

    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&sc->lock, &ma);
    pthread_mutexattr_destroy(&ma);
    sc->conf = em_conf_new();
    sc->next_shuffle_id = 1;
    sc->next_broadcast_id = 1;
    sc->seed_counter = 0x5eed;
    if (file && *file && (rc = em_conf_load_file(sc->conf, file, err)) < 0)
        goto fail;
    em_conf_load_env(sc->conf);
    if (em__conf_merge(sc->conf, conf) < 0) {
        rc = em_err_set(err, EM_ENOMEM, "context: copying the configuration");
        goto fail;
    }
    if ((rc = em__conf_check_keys(sc->conf, err)) < 0 || (rc = read_settings(sc, err)) < 0 ||
        (rc = make_app_dir(sc, err)) < 0)
        goto fail;
    em_registry_init_builtins();
    em__api_register_fns();
    sc->graph = em_plan_graph_new();
    if ((rc = start_runtime(sc, err)) < 0)
        goto fail;
    em_log(EM_LOG_INFO, "context: %u task threads, app dir %s", sc->nthreads, sc->app_dir);
    return sc;
fail:
    em_context_free(sc);
    return NULL;
}

void em_context_free(em_context *sc)
{
    if (!sc)
        return;
    em_sched_free(sc->sched);
    sc->cluster = NULL;          /* freed with the scheduler's backend */
    em_shuffle_cleaner_free(sc->cleaner);   /* before the app dir goes: no deletes race it */
    em_status_free(sc->status);
    em_map_tracker_free(sc->tracker);
    em_block_store_free(sc->store);
    em_memory_manager_free(sc->mm);
    em_plan_graph_free(sc->graph);
    for (size_t i = 0; i < sc->nrdds; i++)
        em_free(sc->rdds[i]);
    em_free(sc->rdds);
    for (uint32_t i = 0; i < sc->naccs; i++)
        em_free(sc->accs[i].name);
    em_free(sc->accs);
    for (size_t i = 0; i < sc->ngroups; i++)
        em_free(sc->groups[i].name);
    em_free(sc->groups);
    pthread_mutex_destroy(&sc->lock);
    if (sc->app_dir) {
        em_err err = EM_ERR_INIT;
        if (em_rm_rf(sc->app_dir, &err) < 0)
            em_log(EM_LOG_WARN, "context: removing %s: %s", sc->app_dir, err.msg);
    }
    em_free(sc->app_dir);
    em_free(sc->shuffle_dir);
    em_free(sc->spill_dir);
    em_conf_free(sc->conf);
    em_free(sc);
}

uint32_t em_context_default_parallelism(const em_context *sc)
{
    return sc->default_par;
}

const em_conf *em_context_conf(const em_context *sc)
{
    return sc->conf;
}

const char *em_context_app_dir(const em_context *sc)
{
    return sc->app_dir;
}

void em_context_stats_get(const em_context *sc, em_context_stats *out)
{
    em_sched_stats st;
    em_sched_stats_get(sc->sched, &st);
    *out = (em_context_stats){
        .jobs = st.jobs,
        .stages_run = st.stages_run,
        .stages_skipped = st.stages_skipped,
        .tasks_run = st.tasks_run,
        .map_tasks_run = st.map_tasks_run,
        .task_failures = st.task_failures,
        .fetch_failures = st.fetch_failures,
        .spill_bytes = st.spill_bytes,
    };
    if (sc->cluster) {
        out->executors = em_cluster_num_executors(sc->cluster);
        em_cluster_bcast_stats(sc->cluster, &out->broadcast_fetches, &out->executor_store_bytes);
    }
}

/* ---------------------------------------------------------------- broadcast, accumulators */

uint32_t em_broadcast(em_context *sc, em_slice value, em_err *err)
{
    /* One BYTES record (u32 length, bytes), built with one copy of the value. Executors
     * fetch it in pieces (engine/cluster: EM__DATA_PIECE) and keep one copy each; a small
     * one is pushed to them at once (em_cluster_push_broadcast). */
    if (value.n >= EM_BATCH_MAX_REC_LEN) {
        em_err_set(err, EM_EINVAL, "broadcast of %zu bytes: the limit is %u", value.n,
                   EM_BATCH_MAX_REC_LEN - 1);
        return 0;
    }
    uint8_t *p = em_malloc_big(value.n + 4);   /* huge pages for a big value */
    if (!p) {
        em_err_set(err, EM_ENOMEM, "broadcast of %zu bytes: out of memory", value.n);
        return 0;
    }
    em_store_le32(p, (uint32_t)value.n);
    if (value.n)
        memcpy(p + 4, value.p, value.n);
    em_batch *b = em_batch_new_take_big(EM_REC_BYTES, 0, 1, p, value.n + 4);
    if (!b) {
        em_err_set(err, EM_ENOMEM, "broadcast of %zu bytes: out of memory", value.n);
        return 0;
    }
    uint32_t id = sc->next_broadcast_id++;
    em_block_id bid = {EM_BLOCK_BROADCAST, id, 0, 0};
    if (em_block_store_put_take(sc->store, bid, &b, 1, EM_STORAGE_MEMORY_AND_DISK, err) < 0)
        return 0;
    /* A small value goes to the executors now, ahead of the tasks that read it. */
    if (sc->cluster)   /* only a small one: em_cluster_push_broadcast decides */
        em_cluster_push_broadcast(sc->cluster, id, value);
    return id;
}

void em_broadcast_destroy(em_context *sc, uint32_t id)
{
    em_block_id bid = {EM_BLOCK_BROADCAST, id, 0, 0};
    em_block_store_remove(sc->store, bid);
    /* Executors cache the broadcast they fetched (docs/cluster.md, `drop`). */
    if (sc->cluster)
        em_cluster_drop_blocks(sc->cluster, EM_BLOCK_BROADCAST, id);
}

void em_broadcast_unpersist(em_context *sc, uint32_t id)
{
    if (sc->cluster)
        em_cluster_drop_blocks(sc->cluster, EM_BLOCK_BROADCAST, id);
}

uint32_t em_accumulator_new(em_context *sc, const char *name)
{
    pthread_mutex_lock(&sc->lock);
    sc->accs = em_xrealloc(sc->accs, (sc->naccs + 1) * sizeof *sc->accs);
    sc->accs[sc->naccs] = (em__acc){em_xstrdup(name ? name : ""), 0, 0.0};
    uint32_t id = ++sc->naccs;
    pthread_mutex_unlock(&sc->lock);
    return id;
}

int64_t em_accumulator_i64(em_context *sc, uint32_t id)
{
    pthread_mutex_lock(&sc->lock);
    int64_t v = id >= 1 && id <= sc->naccs ? sc->accs[id - 1].i64 : 0;
    pthread_mutex_unlock(&sc->lock);
    return v;
}

double em_accumulator_f64(em_context *sc, uint32_t id)
{
    pthread_mutex_lock(&sc->lock);
    double v = id >= 1 && id <= sc->naccs ? sc->accs[id - 1].f64 : 0.0;
    pthread_mutex_unlock(&sc->lock);
    return v;
}
