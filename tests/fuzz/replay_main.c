/* tests/fuzz/replay_main.c - feeds every file of a corpus directory to a libFuzzer-style
 * harness, so `make check` replays the corpus under ASan/UBSan with gcc too (STYLE.md
 * section 9). Usage: fuzz_<decoder> CORPUS_DIR|FILE... ; exits non-zero if a file cannot be
 * read; crashes and sanitizer reports are the failures. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/base/base.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    em_err err = EM_ERR_INIT;

    if (em_read_file(path, &buf, &len, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    LLVMFuzzerTestOneInput(buf, len);
    em_free(buf);
    return 0;
}

static int run_path(const char *path, int *count)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "%s: cannot stat\n", path);
        return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
        (*count)++;
        return run_file(path);
    }
    DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "%s: cannot open directory\n", path);
        return 1;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *p = em_xasprintf("%s/%s", path, e->d_name);
        rc |= run_path(p, count);
        em_free(p);
    }
    closedir(d);
    return rc;
}

int main(int argc, char **argv)
{
    int rc = 0, count = 0;
    for (int i = 1; i < argc; i++)
        rc |= run_path(argv[i], &count);
    printf("replayed %d inputs\n", count);
    return rc;
}
