/* engine/base/file.c - whole-file reads, full reads/writes, directory helpers, atomic file
 * writes (write to "<path>.tmp.<pid>.<n>", fsync, rename) and size strings.
 * Atomic writes mean a reader sees either the old file or the complete new one, never a
 * prefix: the shuffle index, checkpoints and model files depend on this.
 * THREADS: any thread; one thread per em_file. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <glob.h>
#include <stdlib.h>
#include "engine/base/base.h"

struct em_file {
    int fd;
    uint64_t off;
    char *path; /* final name */
    char *tmp;  /* "<path>.tmp.<pid>.<n>" */
};

/* Distinguishes temporary names of concurrent writers in one process. */
static atomic_ulong g_tmp_counter;

static int errno_code(int e)
{
    if (e == ENOSPC || e == EDQUOT)
        return EM_ENOSPC;
    if (e == ENOMEM)
        return EM_ENOMEM;
    return EM_EIO;
}

int em_errno_code_open(int e)
{
    return e == EACCES || e == EPERM ? EM_EACCES : errno_code(e);
}

int em_write_full(int fd, const void *p, size_t n, const char *path, em_err *err)
{
    const uint8_t *s = p;
    while (n > 0) {
        ssize_t k = write(fd, s, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            return em_err_set(err, errno_code(e), "write %s: %s", path, strerror(e));
        }
        if (k == 0)
            return em_err_set(err, EM_EIO, "write %s: wrote nothing", path);
        s += k;
        n -= (size_t)k;
    }
    return 0;
}

int em_pread_full(int fd, void *p, size_t n, uint64_t off, const char *path, em_err *err)
{
    uint8_t *d = p;
    size_t done = 0;
    while (done < n) {
        ssize_t k = pread(fd, d + done, n - done, (off_t)(off + done));
        if (k < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            return em_err_set(err, EM_EIO, "read %s at offset %llu: %s", path,
                              (unsigned long long)(off + done), strerror(e));
        }
        if (k == 0)
            return em_err_set(err, EM_ECORRUPT,
                              "read %s: file ends at offset %llu, wanted %zu bytes at %llu",
                              path, (unsigned long long)(off + done), n,
                              (unsigned long long)off);
        done += (size_t)k;
    }
    return 0;
}

int em_file_create_tmp(const char *path, em_file **out, em_err *err)
{
    unsigned long n = atomic_fetch_add(&g_tmp_counter, 1);
    em_file *f = em_calloc(1, sizeof *f);
    if (!f)
        return em_err_set(err, EM_ENOMEM, "create %s: out of memory", path);
    f->fd = -1;
    f->path = em_strdup(path);
    int len = snprintf(NULL, 0, "%s.tmp.%ld.%lu", path, (long)getpid(), n);
    f->tmp = len > 0 ? em_malloc((size_t)len + 1) : NULL;
    if (!f->path || !f->tmp) {
        em_free(f->path);
        em_free(f->tmp);
        em_free(f);
        return em_err_set(err, EM_ENOMEM, "create %s: out of memory", path);
    }
    snprintf(f->tmp, (size_t)len + 1, "%s.tmp.%ld.%lu", path, (long)getpid(), n);
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC, 0644);
    if (f->fd < 0) {
        int e = errno;
        int rc = em_err_set(err, e == ENOENT ? EM_ENOTFOUND : em_errno_code_open(e), "create %s: %s",
                            f->tmp, strerror(e));
        em_free(f->path);
        em_free(f->tmp);
        em_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

int em_file_write(em_file *f, const void *p, size_t n, em_err *err)
{
    int rc = em_write_full(f->fd, p, n, f->tmp, err);
    if (rc == 0)
        f->off += n;
    return rc;
}

uint64_t em_file_offset(const em_file *f)
{
    return f->off;
}

static void file_free(em_file *f)
{
    em_free(f->path);
    em_free(f->tmp);
    em_free(f);
}

int em_file_commit(em_file *f, em_err *err)
{
    return em_file_commit_sync(f, true, err);
}

int em_file_commit_sync(em_file *f, bool sync, em_err *err)
{
    int rc = 0;
    if (sync && fsync(f->fd) != 0) {
        int e = errno;
        rc = em_err_set(err, errno_code(e), "fsync %s: %s", f->tmp, strerror(e));
    }
    if (close(f->fd) != 0 && rc == 0) {
        int e = errno;
        rc = em_err_set(err, errno_code(e), "close %s: %s", f->tmp, strerror(e));
    }
    f->fd = -1;
    if (rc == 0 && rename(f->tmp, f->path) != 0) {
        int e = errno;
        rc = em_err_set(err, EM_EIO, "rename %s to %s: %s", f->tmp, f->path, strerror(e));
    }
    if (rc != 0)
        unlink(f->tmp);
    file_free(f);
    return rc;
}

void em_file_abort(em_file *f)
{
    if (!f)
        return;
    if (f->fd >= 0)
        close(f->fd);
    unlink(f->tmp);
    file_free(f);
}

int em_write_file_atomic(const char *path, const void *p, size_t n, em_err *err)
{
    em_file *f;
    int rc = em_file_create_tmp(path, &f, err);
    if (rc < 0)
        return rc;
    rc = em_file_write(f, p, n, err);
    if (rc < 0) {
        em_file_abort(f);
        return rc;
    }
    return em_file_commit(f, err);
}

int em_read_file(const char *path, uint8_t **out, size_t *len, em_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return em_err_set(err, e == ENOENT ? EM_ENOTFOUND : em_errno_code_open(e), "open %s: %s",
                          path, strerror(e));
    }
    em_vbuf b;
    em_vbuf_init(&b);
    struct stat st;
    int rc = 0;
    /* Size hint only: the file may change under us (or be a pipe), so read to EOF. */
    size_t hint = (fstat(fd, &st) == 0 && st.st_size > 0) ? (size_t)st.st_size + 1 : 4096;
    for (;;) {
        if (b.cap - b.len == 0 || !b.data) {
            if (em_vbuf_reserve(&b, b.data ? b.cap : hint) < 0) {
                rc = em_err_set(err, EM_ENOMEM, "read %s: out of memory", path);
                goto out;
            }
        }
        ssize_t k = read(fd, b.data + b.len, b.cap - b.len);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            rc = em_err_set(err, EM_EIO, "read %s: %s", path, strerror(e));
            goto out;
        }
        if (k == 0)
            break;
        b.len += (size_t)k;
    }
    *len = b.len;
    *out = em_vbuf_steal(&b, NULL);
out:
    close(fd);
    em_vbuf_destroy(&b);
    return rc;
}

int em_mkdir_p(const char *path, em_err *err)
{
    char *p = em_strdup(path);
    if (!p)
        return em_err_set(err, EM_ENOMEM, "mkdir %s: out of memory", path);
    int rc = 0;
    size_t n = strlen(p);
    /* Create each prefix ending before a '/', then the whole path. */
    for (size_t i = 1; i <= n; i++) {
        if (i < n && p[i] != '/')
            continue;
        char saved = p[i];
        p[i] = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            rc = em_err_set(err, e == ENOSPC ? EM_ENOSPC : EM_EIO, "mkdir %s: %s", p,
                            strerror(e));
            goto out;
        }
        p[i] = saved;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        rc = em_err_set(err, EM_EIO, "mkdir %s: exists and is not a directory", path);
out:
    em_free(p);
    return rc;
}

static int rm_rf_at(const char *path, em_err *err)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return 0;
        int e = errno;
        return em_err_set(err, EM_EIO, "remove %s: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) {
            int e = errno;
            return em_err_set(err, EM_EIO, "remove %s: %s", path, strerror(e));
        }
        int rc = 0;
        struct dirent *de;
        while (rc == 0 && (de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            size_t len = strlen(path) + strlen(de->d_name) + 2;
            char *child = em_malloc(len);
            if (!child) {
                rc = em_err_set(err, EM_ENOMEM, "remove %s: out of memory", path);
                break;
            }
            snprintf(child, len, "%s/%s", path, de->d_name);
            rc = rm_rf_at(child, err);
            em_free(child);
        }
        closedir(d);
        if (rc != 0)
            return rc;
        if (rmdir(path) != 0 && errno != ENOENT) {
            int e = errno;
            return em_err_set(err, EM_EIO, "remove %s: %s", path, strerror(e));
        }
        return 0;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        int e = errno;
        return em_err_set(err, EM_EIO, "remove %s: %s", path, strerror(e));
    }
    return 0;
}

int em_rm_rf(const char *path, em_err *err)
{
    return rm_rf_at(path, err);
}

/* Unit multiplier for a suffix such as "k", "KiB", "mb", "g"; 0 if unknown. */
static uint64_t size_unit(const char *s)
{
    uint64_t mult;
    switch (tolower((unsigned char)*s)) {
    case '\0':
        return 1;
    case 'b':
        return s[1] == '\0' ? 1 : 0;
    case 'k':
        mult = (uint64_t)1 << 10;
        break;
    case 'm':
        mult = (uint64_t)1 << 20;
        break;
    case 'g':
        mult = (uint64_t)1 << 30;
        break;
    case 't':
        mult = (uint64_t)1 << 40;
        break;
    default:
        return 0;
    }
    s++;
    if (tolower((unsigned char)*s) == 'i' && tolower((unsigned char)s[1]) == 'b')
        s += 2;
    else if (tolower((unsigned char)*s) == 'b')
        s++;
    return *s == '\0' ? mult : 0;
}

int64_t em_parse_size(const char *s)
{
    if (!s)
        return -1;
    const char *q = s;
    if (!isdigit((unsigned char)*q))
        return -1; /* rejects "", "-1", " 1", ".5" */
    uint64_t whole = 0;
    for (; isdigit((unsigned char)*q); q++) {
        if (__builtin_mul_overflow(whole, 10, &whole) ||
            __builtin_add_overflow(whole, (uint64_t)(*q - '0'), &whole))
            return -1;
    }
    /* Fraction: up to 9 digits kept exactly as frac / 10^fdigits. */
    uint64_t frac = 0, fscale = 1;
    bool has_frac = false;
    if (*q == '.') {
        q++;
        if (!isdigit((unsigned char)*q))
            return -1;
        has_frac = true;
        for (; isdigit((unsigned char)*q); q++) {
            if (fscale < 1000000000ULL) {
                frac = frac * 10 + (uint64_t)(*q - '0');
                fscale *= 10;
            }
        }
    }
    uint64_t mult = size_unit(q);
    if (mult == 0 || (has_frac && mult == 1))
        return -1;
    uint64_t v;
    if (__builtin_mul_overflow(whole, mult, &v))
        return -1;
    /* frac/fscale * mult, rounded down; 128-bit so the product is exact. */
    unsigned __int128 fp = (unsigned __int128)frac * mult / fscale;
    if (__builtin_add_overflow(v, (uint64_t)fp, &v) || v > (uint64_t)INT64_MAX)
        return -1;
    return (int64_t)v;
}

/* ---------------------------------------------------------------- input file lists */

void em_file_list_destroy(em_file_list *fl)
{
    for (size_t i = 0; i < fl->n; i++)
        em_free(fl->paths[i]);
    em_free(fl->paths);
    em_free(fl->sizes);
}

static bool list_hidden(const char *path)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    return b[0] == '_' || b[0] == '.';
}

static void list_add(em_file_list *fl, const char *path, uint64_t size)
{
    fl->paths = em_arr_xgrow(fl->paths, &fl->cap, fl->n + 1, sizeof *fl->paths);
    fl->sizes = em_arr_xgrow(fl->sizes, &fl->scap, fl->n + 1, sizeof *fl->sizes);
    fl->paths[fl->n] = em_xstrdup(path);
    fl->sizes[fl->n++] = size;
}

static int list_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A file or directory the listing cannot use: permission denied is EM_EACCES (tasks do
 * not retry it), anything else EM_EIO, both naming the path the user gave and the one
 * that failed. */
static int list_fail(const char *arg, const char *path, int e, em_err *err)
{
    int code = e == EACCES || e == EPERM ? EM_EACCES : EM_EIO;
    if (strcmp(arg, path) == 0)
        return em_err_set(err, code, "input path '%s': %s", arg, strerror(e));
    return em_err_set(err, code, "input path '%s': %s: %s", arg, path, strerror(e));
}

/* A regular file, checked readable here so that an unreadable input fails at once on the
 * driver, not in every attempt of a task. */
static int list_file(em_file_list *fl, const char *arg, const char *path, uint64_t size,
                     em_err *err)
{
    if (access(path, R_OK) != 0)
        return list_fail(arg, path, errno, err);
    list_add(fl, path, size);
    return 0;
}

/* A directory's regular files not starting with '_' or '.', sorted by name. */
static int list_dir(em_file_list *fl, const char *arg, const char *dir, em_err *err)
{
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t n = 0, ncap = 0;
    struct dirent *e;
    int rc = 0;
    if (!d)
        return list_fail(arg, dir, errno, err);
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '_' || e->d_name[0] == '.')
            continue;
        names = em_arr_xgrow(names, &ncap, n + 1, sizeof *names);
        names[n++] = em_xasprintf("%s/%s", dir, e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, list_cmp);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (rc == 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode))
            rc = list_file(fl, arg, names[i], (uint64_t)st.st_size, err);
        em_free(names[i]);
    }
    em_free(names);
    return rc;
}

/* Expands a file, a directory or a glob; EM_ENOTFOUND naming the path when empty,
 * EM_EACCES when a directory or file of it cannot be read. */
int em_file_list_expand(const char *path, em_file_list *fl, em_err *err)
{
    struct stat st;
    int rc = 0;
    memset(fl, 0, sizeof *fl);
    /* file:///PATH (and file://localhost/PATH), as Spark and Hadoop write local paths: the
     * path itself, every host reading it in its own file system. No percent-decoding. */
    if (strncmp(path, "file://", 7) == 0) {
        const char *p = path + 7;
        if (strncmp(p, "localhost/", 10) == 0)
            p += 9;
        if (*p != '/')
            return em_err_set(err, EM_EINVAL, "input path '%s': a file:// URI names an "
                              "absolute local path: file:///PATH", path);
        path = p;
    }
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            rc = list_dir(fl, path, path, err);
        else if (S_ISREG(st.st_mode))
            rc = list_file(fl, path, path, (uint64_t)st.st_size, err);
    } else if (errno != ENOENT && errno != ENOTDIR) {
        rc = list_fail(path, path, errno, err);   /* e.g. a parent without search right */
    } else if (strpbrk(path, "*?[")) {
        glob_t g;
        /* GLOB_ERR: a directory glob cannot read is an error, not a silent non-match. */
        int grc = glob(path, GLOB_ERR, NULL, &g);
        if (grc == GLOB_ABORTED)
            rc = em_err_set(err, EM_EACCES, "input path '%s': a directory on the way cannot "
                            "be read (permission denied)", path);
        for (size_t i = 0; grc == 0 && rc == 0 && i < g.gl_pathc; i++) {
            const char *p = g.gl_pathv[i];
            if (stat(p, &st) != 0 || list_hidden(p))
                continue;
            if (S_ISDIR(st.st_mode))
                rc = list_dir(fl, path, p, err);
            else if (S_ISREG(st.st_mode))
                rc = list_file(fl, path, p, (uint64_t)st.st_size, err);
        }
        globfree(&g);   /* safe after any return of glob */
    }
    if (rc < 0) {
        em_file_list_destroy(fl);
        memset(fl, 0, sizeof *fl);
        return rc;
    }
    if (fl->n == 0)
        return em_err_set(err, EM_ENOTFOUND, "input path '%s' matches no file", path);
    return 0;
}
