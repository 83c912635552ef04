/* engine/api/save.c - save_as_text_file.
 *
 * SAVE LAYOUT (Hadoop's output committer): tasks write dir/_temporary/0/part-NNNNN (each
 * through a temporary name); when the job succeeds the parts move into dir, _temporary is
 * removed and an empty dir/_SUCCESS is written last, atomically. On failure dir is removed
 * whole, so a reader never sees a half-written output.
 * THREADS: any thread; concurrent actions on one context run as concurrent jobs. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/api/api_int.h"

static bool is_part_name(const char *name)
{
    if (strncmp(name, "part-", 5) != 0 || name[5] == '\0')
        return false;
    return strspn(name + 5, "0123456789") == strlen(name + 5);
}

char *em__api_abs_path(const char *path)
{
    char cwd[4096];
    if (strncmp(path, "file:///", 8) == 0)   /* a file:// URI: its absolute path */
        path += 7;
    if (path[0] == '/' || !getcwd(cwd, sizeof cwd))
        return em_xstrdup(path);
    while (path[0] == '.' && path[1] == '/')
        path += 2;
    return em_xasprintf("%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, path);
}

/* Moves tmp/part-* into dir. */
static int commit_parts(const char *tmp, const char *dir, em_err *err)
{
    DIR *d = opendir(tmp);
    struct dirent *e;
    int rc = 0;
    if (!d)
        return em_err_set(err, EM_EIO, "%s: %s", tmp, strerror(errno));
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (!is_part_name(e->d_name))
            continue;
        char *from = em_xasprintf("%s/%s", tmp, e->d_name);
        char *to = em_xasprintf("%s/%s", dir, e->d_name);
        if (rename(from, to) != 0)
            rc = em_err_set(err, EM_EIO, "rename %s -> %s: %s", from, to, strerror(errno));
        em_free(from);
        em_free(to);
    }
    closedir(d);
    return rc;
}

int em_rdd_save_as_text_file(em_rdd *r, const char *dir, em_err *err)
{
    struct stat st;
    int rc;

    if (r->node->err.code != 0)
        return em_err_copy(err, &r->node->err);
    if (stat(dir, &st) == 0)
        return em_err_set(err, EM_EINVAL, "save_as_text_file: output directory '%s' exists",
                          dir);
    /* Tasks may run in executors with another working directory (ember submit): they get
     * the driver's absolute path. */
    char *abs = em__api_abs_path(dir);
    char *tmp = em_xasprintf("%s/_temporary/0", abs);
    em_free(abs);
    char *success = em_xasprintf("%s/_SUCCESS", dir);
    char *temporary = em_xasprintf("%s/_temporary", dir);
    if ((rc = em_mkdir_p(tmp, err)) < 0)
        goto out;
    em_result_spec spec = {.op = EM_RESULT_SAVE_TEXT, .path = tmp};
    em_task_result *res = em__run_all(r, &spec, &rc, err);
    em__results_free(res, r->node->nparts);
    if (rc == 0)
        rc = commit_parts(tmp, dir, err);
    if (rc == 0)
        rc = em_rm_rf(temporary, err);
    if (rc == 0)
        rc = em_write_file_atomic(success, "", 0, err);
out:
    if (rc < 0) {
        em_err e2 = EM_ERR_INIT;
        (void)em_rm_rf(dir, &e2);
        em_err_prefix(err, "save_as_text_file %s", dir);
    }
    em_free(tmp);
    em_free(success);
    em_free(temporary);
    return rc;
}
