/* engine/plan/registry.c - named functions: the registry of em_fn_register'ed functions
 * (built-ins, MLlib's and SQL's tables, a job library's em_job_register) and dlsym lookup
 * in job libraries.
 *
 * LOOKUP ORDER. A name resolves to its registered function; failing that, to an exported
 * symbol of a loaded job library (dlsym in each, in load order: how job libraries that
 * register nothing keep working). Nothing else: the program's own symbols are not
 * searched, so a function runs only if the driver and every executor registered it or
 * loaded the library that exports it.
 *
 * DESIGN: the code base's open-addressing table (em_hmap) of (name, kind, fn), guarded by
 * one mutex. The registry is written before contexts start and read while plans are built
 * or decoded (once per node per stage), so the lock is never contended in practice; taking
 * it keeps a late registration from racing a lookup in tests. */
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include "engine/base/hmap.h"
#include "engine/plan/plan_int.h"

/* A slot of the registry's em_hmap (engine/base/hmap.h). */
typedef struct reg_entry {
    uint32_t h32;        /* em_hmap_h32 of the name's em_hash64 */
    uint32_t used;       /* 0 = empty slot */
    char *name;          /* owned */
    em_fn_kind kind;
    em_any_fn fn;
} reg_entry;

/* Written by em_fn_register(_table) / em_registry_add_library (before contexts start,
 * under g_lock); read by em_registry_resolve under g_lock. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static em_hmap g_tab;   /* of reg_entry; slot_size 0 until the first registration */
static void **g_libs;
static size_t g_nlibs, g_libcap;

static const char *kind_name(em_fn_kind k)
{
    switch (k) {
    case EM_FN_MAP: return "map";
    case EM_FN_FILTER: return "filter";
    case EM_FN_PARTITION: return "partition";
    case EM_FN_REDUCE: return "reduce";
    case EM_FN_CREATE: return "create";
    case EM_FN_FOREACH: return "foreach";
    case EM_FN_ACC_INIT: return "accumulator init";
    case EM_FN_ACC_SEQ: return "accumulator seq";
    case EM_FN_ACC_ADD: return "accumulator add";
    case EM_FN_ACC_MERGE: return "accumulator merge";
    }
    return "unknown";
}

static bool name_eq(const void *slot, const void *name)
{
    return strcmp(((const reg_entry *)slot)->name, name) == 0;
}

static uint32_t name_hash(const char *name)
{
    return em_hmap_h32(em_hash64(name, strlen(name), 0));
}

static reg_entry *lookup(const char *name)
{
    if (!g_tab.cap)
        return NULL;
    return em_hmap_find(&g_tab, name_hash(name), name_eq, name, NULL);
}

/* Adds a name known to be absent (under g_lock). */
static void insert(const char *name, em_fn_kind kind, em_any_fn fn)
{
    if (!g_tab.slot_size)
        em_hmap_init(&g_tab, sizeof(reg_entry), offsetof(reg_entry, used), 64);
    if (em_hmap_needs_grow(&g_tab) && em_hmap_grow(&g_tab) < 0)
        em_panic("out of memory growing the function registry");
    void *hole = NULL;
    uint32_t h = name_hash(name);
    em_hmap_find(&g_tab, h, name_eq, name, &hole);
    *(reg_entry *)hole = (reg_entry){h, 1, em_xstrdup(name), kind, fn};
    g_tab.n++;
}

int em_fn_register(const char *name, em_fn_kind kind, void (*fn)(void))
{
    if (!name || !*name || !fn || kind < EM_FN_MAP || kind > EM_FN_ACC_MERGE)
        return EM_EINVAL;
    pthread_mutex_lock(&g_lock);
    int rc = 0;
    if (lookup(name)) {
        rc = EM_EINVAL;
    } else {
        insert(name, kind, fn);
    }
    pthread_mutex_unlock(&g_lock);
    return rc;
}

int em_fn_register_table(const em_fn_entry *tab, size_t n)
{
    /* Built-ins first, so a table naming one of theirs fails here, the same way on the
     * driver and on executors, rather than in their registration later. */
    em_registry_init_builtins();
    for (size_t i = 0; i < n; i++) {
        const em_fn_entry *e = &tab[i];
        if (!e->name || !*e->name || !e->fn || e->kind < EM_FN_MAP || e->kind > EM_FN_ACC_MERGE)
            return EM_EINVAL;
        pthread_mutex_lock(&g_lock);
        reg_entry *r = lookup(e->name);
        int rc = 0;
        if (r) {
            if (r->kind != e->kind || r->fn != e->fn)
                rc = EM_EINVAL;
        } else {
            insert(e->name, e->kind, e->fn);
        }
        pthread_mutex_unlock(&g_lock);
        if (rc)
            return rc;
    }
    return 0;
}

/* dlsym returns a data pointer; converting it to a function pointer is what POSIX requires
 * to work, done through memcpy to stay clean under -Wpedantic. */
static em_any_fn sym_to_fn(void *sym)
{
    em_any_fn f;
    memcpy(&f, &sym, sizeof f);
    return f;
}

int em_registry_add_library(void *dl_handle, em_err *err)
{
    if (!dl_handle)
        return em_err_set(err, EM_EINVAL, "no library handle");
    em_registry_init_builtins();
    em_job_register_fn reg = (em_job_register_fn)sym_to_fn(dlsym(dl_handle, "em_job_register"));
    int rc = reg ? reg() : 0;
    if (rc < 0)
        return em_err_set(err, rc, "em_job_register failed (%s)%s", em_strerror(rc),
                          rc == EM_EINVAL ? ": a name is already registered with another "
                                            "function or kind" : "");
    pthread_mutex_lock(&g_lock);
    bool known = false;
    for (size_t i = 0; i < g_nlibs && !known; i++)
        known = g_libs[i] == dl_handle;
    if (!known) {
        g_libs = em_arr_xgrow(g_libs, &g_libcap, g_nlibs + 1, sizeof *g_libs);
        g_libs[g_nlibs++] = dl_handle;
    }
    pthread_mutex_unlock(&g_lock);
    return 0;
}

int em_registry_resolve(const char *name, em_fn_kind kind, em_any_fn *out, em_err *err)
{
    if (!name || !*name)
        return em_err_set(err, EM_EPLAN, "empty function name");
    pthread_mutex_lock(&g_lock);
    reg_entry *e = lookup(name);
    em_fn_kind found = e ? e->kind : (em_fn_kind)0;
    em_any_fn fn = e ? e->fn : NULL;
    void *sym = NULL;
    for (size_t i = 0; !e && !sym && i < g_nlibs; i++)
        sym = dlsym(g_libs[i], name);
    pthread_mutex_unlock(&g_lock);
    if (e) {
        if (found != kind)
            return em_err_set(err, EM_EPLAN, "function '%s' is a %s function, not a %s function",
                              name, kind_name(found), kind_name(kind));
        *out = fn;
        return 0;
    }
    if (!sym)
        return em_err_set(err, EM_EPLAN,
                          "function '%s' is not registered and no loaded job library exports "
                          "it", name);
    *out = sym_to_fn(sym);
    return 0;
}

static pthread_once_t g_builtins_once = PTHREAD_ONCE_INIT;

void em_registry_init_builtins(void)
{
    pthread_once(&g_builtins_once, em__plan_register_builtins);
}
