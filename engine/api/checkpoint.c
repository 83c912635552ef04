/* engine/api/checkpoint.c - checkpoint() and local_checkpoint() (em_rdd_lineage_depth,
 * which tells when to cut a lineage, is in inspect.c).
 *
 * EAGER, unlike Spark's (which marks the RDD and writes it during the next action, running
 * the lineage twice unless cached): em_rdd_checkpoint runs one job right away and returns a
 * NEW dataset whose lineage is a single CHECKPOINT_FILE source. The old handle keeps its
 * lineage; code that wants the short one uses the returned handle (ALS/PageRank: every N
 * iterations `ranks = em_rdd_checkpoint(ranks, &err)`).
 *
 * The job computes r through a CHECKPOINT_WRITE node (engine/exec/iter.c), which streams
 * each partition into
 *     <ember.checkpoint.dir>/<application>/rdd-<id>/part-NNNNN
 * (<application> = the basename of the context's application directory, unique per
 * context), each a block file (storage/blockfile.c: zstd blocks + checksummed trailer)
 * written under a temporary name, fsynced and renamed. The driver then lists the directory:
 * every part must be there with a valid trailer and the record count its task reported;
 * anything else is an error naming the file, and the directory is removed. Readers verify
 * every block again, so a part damaged later is an EM_ECORRUPT naming it.
 * The partitioner (part spec) is kept, so a pair op on the checkpoint still needs no
 * shuffle when the original did not.
 *
 * CLEANUP: as Spark (spark.cleaner.referenceTracking.cleanCheckpoints=false by default) the
 * files stay after the context ends, so a later application could read them; with
 * ember.checkpoint.cleanup=true the directory is removed when the context frees its plan
 * graph (em_context_free).
 *
 * LOCAL checkpoints write each partition into the block store of the executor that
 * computed it (MEMORY_AND_DISK, block rdd_<writer id>_<part>): fast, but lost with that
 * executor (reading a lost block is EM_ENOTFOUND saying so), as Spark's localCheckpoint.
 * THREADS: any thread (nodes and handles are made through the locked helpers of node.c). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/api/api_int.h"

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Checks the directory listing of a reliable checkpoint against what the tasks wrote:
 * exactly part-00000 .. part-<n-1>, each with a valid trailer and the expected records;
 * fills split sizes. */
static int verify_dir(const char *dir, em_split *splits, uint32_t n,
                      const em_task_result *res, em_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return em_err_set(err, EM_EIO, "checkpoint directory %s: %s", dir, strerror(errno));
    uint32_t nfiles = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, "part-", 5) == 0)
            nfiles++;
    closedir(d);
    for (uint32_t i = 0; i < n; i++) {
        struct stat st;
        em_block_file_reader *r = NULL;
        if (stat(splits[i].path, &st) != 0)
            return em_err_set(err, EM_ECORRUPT, "checkpoint file %s: missing after its task "
                              "succeeded (%s)", splits[i].path, strerror(errno));
        int rc = em_block_file_reader_open(splits[i].path, &r, err);
        if (rc < 0)
            return rc;
        uint64_t nrecs = em_block_file_reader_nrecs(r);
        em_block_file_reader_close(r);
        if (nrecs != res[i].count)
            return em_err_set(err, EM_ECORRUPT, "checkpoint file %s: %llu records, its task "
                              "wrote %llu", splits[i].path, (unsigned long long)nrecs,
                              (unsigned long long)res[i].count);
        splits[i].len = (uint64_t)st.st_size;
    }
    if (nfiles != n)
        return em_err_set(err, EM_ECORRUPT, "checkpoint directory %s: %u part files, expected "
                          "%u", dir, nfiles, n);
    return 0;
}

/* The reliable checkpoint's directory, created (empty). */
static char *make_dir(em_context *sc, const em_plan_node *n, em_err *err)
{
    const char *root = em_conf_get(sc->conf, "ember.checkpoint.dir");
    if (!root || !*root) {
        em_err_set(err, EM_EINVAL, "checkpoint of rdd %u: ember.checkpoint.dir is not set",
                   n->id);
        return NULL;
    }
    size_t len = strlen(root) + strlen(sc->app_dir) + 32;
    char *dir = em_xmalloc(len);
    snprintf(dir, len, "%s/%s/rdd-%u", root, base_name(sc->app_dir), n->id);
    em_err e2 = EM_ERR_INIT;
    if (em_rm_rf(dir, &e2) < 0 || em_mkdir_p(dir, &e2) < 0) {
        em_err_set(err, e2.code, "checkpoint of rdd %u: %s", n->id, e2.msg);
        em_free(dir);
        return NULL;
    }
    return dir;
}

static em_rdd *do_checkpoint(em_rdd *r, bool local, em_err *err)
{
    em_context *sc = r->sc;
    em_plan_node *src = r->node;
    uint32_t np = src->nparts;
    char *dir = NULL;
    em_task_result *res = NULL;
    int rc = 0;

    if (src->err.code != 0) {
        em_err_copy(err, &src->err);
        return NULL;
    }
    if (!local && !(dir = make_dir(sc, src, err)))
        return NULL;
    em_plan_node *w = em__node_new(sc, EM_OP_CHECKPOINT_WRITE, &src, 1,
                                   local ? "local_checkpoint_write" : "checkpoint_write");
    em_plan_node_set_part(w, &src->part);
    if (local) {
        w->flags |= EM_NODE_LOCAL_CKPT;
        w->ckpt_rdd = w->id;
    } else {
        w->splits = em_xcalloc(np ? np : 1, sizeof *w->splits);
        w->nsplits = np;
        for (uint32_t i = 0; i < np; i++) {
            size_t len = strlen(dir) + 24;
            w->splits[i].path = em_xmalloc(len);
            snprintf(w->splits[i].path, len, "%s/part-%05u", dir, i);
            w->splits[i].part = i;
        }
    }
    em_rdd *wr = em__rdd_wrap(sc, w);
    em_result_spec spec = {.op = EM_RESULT_COUNT};
    res = em__run_all(wr, &spec, &rc, err);
    if (rc == 0 && !local)
        rc = verify_dir(dir, w->splits, np, res, err);
    if (res)
        em__results_free(res, np);
    if (rc < 0) {
        em_err_prefix(err, "%scheckpoint of rdd %u", local ? "local " : "", src->id);
        em_err e2 = EM_ERR_INIT;
        if (local)
            em__drop_rdd_blocks(sc, w->id);   /* the partitions some tasks did write */
        else if (em_rm_rf(dir, &e2) < 0)
            em_log(EM_LOG_WARN, "%s", e2.msg);
        em_free(dir);
        em__rdd_drop(wr);
        return NULL;
    }

    em_plan_node *c = em__node_new(sc, EM_OP_CHECKPOINT_FILE, NULL, 0,
                                   local ? "local_checkpoint" : "checkpoint");
    c->nparts = np;
    c->is_kv = src->is_kv;
    c->width = src->width;
    em_plan_node_set_part(c, &src->part);
    c->flags = w->flags & EM_NODE_LOCAL_CKPT;
    c->ckpt_rdd = w->ckpt_rdd;
    if (!local) {
        c->splits = em_xcalloc(np ? np : 1, sizeof *c->splits);
        c->nsplits = np;
        for (uint32_t i = 0; i < np; i++) {
            c->splits[i] = w->splits[i];
            c->splits[i].path = em_xstrdup(w->splits[i].path);
        }
        const char *cl = em_conf_get(sc->conf, "ember.checkpoint.cleanup");
        if (cl && strcmp(cl, "true") == 0)
            c->ckpt_cleanup_dir = dir;
        else
            em_free(dir);
    }
    /* The write node dies here unless r's lineage is still held elsewhere; its local
     * checkpoint blocks (rdd_<w->id>_*) are c's now and go when c dies (release.c). */
    em__rdd_drop(wr);
    return em__rdd_wrap(sc, c);
}

em_rdd *em_rdd_checkpoint(em_rdd *r, em_err *err)
{
    return do_checkpoint(r, false, err);
}

em_rdd *em_rdd_local_checkpoint(em_rdd *r, em_err *err)
{
    return do_checkpoint(r, true, err);
}

const char *em_rdd_checkpoint_part(const em_rdd *r, uint32_t part)
{
    const em_plan_node *n = r->node;
    if (n->op != EM_OP_CHECKPOINT_FILE || (n->flags & EM_NODE_LOCAL_CKPT) || part >= n->nsplits)
        return NULL;
    return n->splits[part].path;
}
