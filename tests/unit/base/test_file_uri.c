/* Input paths as file:// URIs (em_file_list_expand): file:///PATH and
 * file://localhost/PATH list the same files as PATH; another host or a relative path is
 * refused naming the URI. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/base/base.h"

Test(file_uri, file_uris_name_local_absolute_paths)
{
    char dir[] = "/tmp/ember-file-uri-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char *f = em_xasprintf("%s/in.txt", dir);
    FILE *fp = fopen(f, "w");
    cr_assert_not_null(fp);
    fputs("hello\n", fp);
    fclose(fp);
    const char *forms[] = {"file://%s", "file://localhost%s", "%s"};
    for (size_t i = 0; i < 3; i++) {
        char *p = em_xasprintf(forms[i], f);
        em_file_list fl;
        em_err err = EM_ERR_INIT;
        cr_assert_eq(em_file_list_expand(p, &fl, &err), 0, "%s: %s", p, err.msg);
        cr_assert_eq(fl.n, 1);
        cr_assert_str_eq(fl.paths[0], f);
        cr_assert_eq(fl.sizes[0], 6);
        em_file_list_destroy(&fl);
        em_free(p);
    }
    const char *bad[] = {"file://otherhost/tmp/x", "file://relative/x", "file://"};
    for (size_t i = 0; i < 3; i++) {
        em_file_list fl;
        em_err err = EM_ERR_INIT;
        cr_assert_lt(em_file_list_expand(bad[i], &fl, &err), 0, "%s", bad[i]);
        cr_assert_neq(strstr(err.msg, bad[i]), NULL, "%s", err.msg);
    }
    unlink(f);
    rmdir(dir);
    em_free(f);
}
