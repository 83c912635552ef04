/* tests/unit/storage/test_diskfull.c - disk full and unwritable directories: checkpoints and
 * the block store return clear errors (EM_ENOSPC naming the file; the path for a directory
 * that cannot be created) and leave no partial or temporary file behind. Disk full uses a
 * 1 MiB tmpfs (needs root; skipped otherwise). */
#include <dirent.h>
#include <errno.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../api/api_test_util.h"
#include "storage/storage.h"

static char g_dir[64];
static bool g_mounted;

static void setup(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/ember-full-XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
}

static void teardown(void)
{
    em_err err = EM_ERR_INIT;
    if (g_mounted)
        umount(g_dir);
    g_mounted = false;
    em_rm_rf(g_dir, &err);
}

static void mount_small(void)
{
    if (mount("tmpfs", g_dir, "tmpfs", 0, "size=1m") != 0)
        cr_skip_test("cannot mount a tmpfs (%s): disk-full paths not tested", strerror(errno));
    g_mounted = true;
}

/* Regular files under dir, recursively. */
static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char p[4096];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (lstat(p, &st) == 0)
            n += S_ISDIR(st.st_mode) ? count_files(p) : 1;
    }
    closedir(d);
    return n;
}

static em_context *ctx(const char *ckdir)
{
    em_conf *c = em_conf_new();
    em_err err = EM_ERR_INIT;
    em_conf_set(c, "ember.master", "local[2]");
    em_conf_set(c, "ember.executor.memory", "64m");
    em_conf_set(c, "ember.checkpoint.dir", ckdir);
    em_context *sc = em_context_new(c, &err);
    em_conf_free(c);
    cr_assert_not_null(sc, "context: %s", err.msg);
    return sc;
}

/* ~3 MiB of incompressible KV records in 4 partitions. */
static em_rdd *big(em_context *sc, uint8_t **store)
{
    enum { N = 3000, V = 1000 };
    em_rec *recs = calloc(N, sizeof *recs);
    uint8_t *b = malloc((size_t)N * (V + 8));
    em_rng rng;
    em_rng_seed(&rng, 5);
    for (size_t i = 0; i < (size_t)N * (V + 8); i++)
        b[i] = (uint8_t)em_rng_below(&rng, 256);
    for (size_t i = 0; i < N; i++) {
        recs[i].key = em_slice_make(b + i * (V + 8), 8);
        recs[i].val = em_slice_make(b + i * (V + 8) + 8, V);
    }
    em_rdd *r = em_parallelize(sc, EM_REC_KV, 0, recs, N, 4);
    free(recs);
    *store = b;
    return r;
}

TestSuite(diskfull, .init = setup, .fini = teardown, .timeout = 60);

Test(diskfull, checkpoint_into_full_disk)
{
    mount_small();
    em_context *sc = ctx(g_dir);
    uint8_t *mem;
    em_rdd *r = big(sc, &mem);
    em_err err = EM_ERR_INIT;
    cr_assert_null(em_rdd_checkpoint(r, &err), "3 MiB fit into a 1 MiB tmpfs?");
    cr_assert_eq(err.code, EM_ENOSPC, "code %d: %s", err.code, err.msg);
    cr_assert_not_null(strstr(err.msg, g_dir), "names the file: %s", err.msg);
    cr_assert_eq(count_files(g_dir), 0, "no partial or temporary files left");
    /* Still usable: a small checkpoint fits. */
    em_rdd *small = em_rdd_coalesce(em_range(sc, 0, 1000, 1, 2), 1, false);
    em_rdd *c = em_rdd_checkpoint(small, &err);
    cr_assert_not_null(c, "%s", err.msg);
    uint64_t n = 0;
    cr_assert_eq(em_rdd_count(c, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 1000);
    em_context_free(sc);
    free(mem);
}

Test(diskfull, checkpoint_dir_unusable)
{
    char file[128], under[160];
    snprintf(file, sizeof file, "%s/plain-file", g_dir);
    FILE *f = fopen(file, "w");
    cr_assert_not_null(f);
    fclose(f);
    snprintf(under, sizeof under, "%s/ckpt", file);
    em_context *sc = ctx(under);
    em_err err = EM_ERR_INIT;
    cr_assert_null(em_rdd_checkpoint(em_range(sc, 0, 10, 1, 2), &err));
    cr_assert_lt(err.code, 0);
    cr_assert_not_null(strstr(err.msg, file), "names the path: %s", err.msg);
    cr_assert_eq(count_files(g_dir), 1, "only the plain file");
    em_context_free(sc);
}

Test(diskfull, block_file_writer_full_disk)
{
    mount_small();
    char path[128];
    snprintf(path, sizeof path, "%s/part-00000", g_dir);
    em_block_file_writer *w = NULL;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_block_file_writer_open(path, 1, &w, &err), 0, "%s", err.msg);
    em_rng rng;
    em_rng_seed(&rng, 9);
    uint8_t *v = malloc(64 << 10);
    int rc = 0;
    for (int i = 0; i < 40 && rc == 0; i++) {   /* 2.5 MiB of random values */
        for (size_t j = 0; j < (64u << 10); j++)
            v[j] = (uint8_t)em_rng_below(&rng, 256);
        em_batch_builder bb;
        em_batch_builder_init(&bb, EM_REC_BYTES, 0);
        em_rec r = {.val = em_slice_make(v, 64 << 10)};
        cr_assert_eq(em_batch_builder_add(&bb, &r, &err), 0);
        em_batch *b = em_batch_builder_finish(&bb, &err);
        em_batch_builder_destroy(&bb);
        rc = em_block_file_writer_add(w, b, &err);
        em_batch_unref(b);
    }
    if (rc == 0)
        rc = em_block_file_writer_commit(w, NULL, &err);
    else
        em_block_file_writer_abort(w);
    cr_assert_eq(rc, EM_ENOSPC, "rc %d: %s", rc, err.msg);
    cr_assert_not_null(strstr(err.msg, path), "names the file: %s", err.msg);
    cr_assert_eq(count_files(g_dir), 0, "temporary file removed");
    free(v);
}

Test(diskfull, block_store_full_disk)
{
    mount_small();
    em_store_opts o = {.mem_budget = 1 << 20, .dir = g_dir};
    em_err err = EM_ERR_INIT;
    em_block_store *bs = em_block_store_new(&o, &err);
    cr_assert_not_null(bs, "%s", err.msg);
    uint8_t *v = malloc(2 << 20);
    em_rng rng;
    em_rng_seed(&rng, 3);
    for (size_t j = 0; j < (2u << 20); j++)
        v[j] = (uint8_t)em_rng_below(&rng, 256);
    em_batch_builder bb;
    em_batch_builder_init(&bb, EM_REC_BYTES, 0);
    em_rec r = {.val = em_slice_make(v, 2 << 20)};
    cr_assert_eq(em_batch_builder_add(&bb, &r, &err), 0);
    em_batch *b = em_batch_builder_finish(&bb, &err);
    em_batch_builder_destroy(&bb);
    em_block_id id = {EM_BLOCK_RDD, 1, 0, 0};
    int rc = em_block_store_put_take(bs, id, &b, 1, EM_STORAGE_DISK_ONLY, &err);
    cr_assert_eq(rc, EM_ENOSPC, "rc %d: %s", rc, err.msg);
    cr_assert_not_null(strstr(err.msg, "rdd_1_0"), "names the block file: %s", err.msg);
    cr_assert(!em_block_store_contains(bs, id));
    cr_assert_eq(count_files(g_dir), 0, "no partial file");
    em_block_store_free(bs);
    free(v);
}
