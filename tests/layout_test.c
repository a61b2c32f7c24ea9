/* The shape of what is built, checked on the build itself: no two source
 * files depend on each other in a circle (scripts/check-deps.sh reads the
 * objects' symbols). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "testutil.h"

/* Run cmd with sh; its stdout and stderr, malloc'd; *status its exit code. */
static char *shell(const char *cmd, int *status)
{
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    ck_assert_ptr_nonnull(m);
    FILE *p = popen(tu_fmt("%s 2>&1", cmd), "r");
    ck_assert_msg(p != NULL, "cannot run %s", cmd);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        fwrite(buf, 1, n, m);
    int st = pclose(p);
    fclose(m);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    return out;
}

START_TEST(no_dependency_cycles)
{
    int st;
    char *out = shell(tu_fmt("sh '%s/../scripts/check-deps.sh' '%s'", tu_test_dir(),
                             tu_bin_dir()), &st);
    ck_assert_msg(st == 0, "source files depend on each other in a circle (exit %d):\n%s", st,
                  out);
    free(out);
}
END_TEST

Suite *layout_suite(void)
{
    Suite *s = suite_create("layout");
    TCase *tc = tcase_create("layout");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, no_dependency_cycles);
    suite_add_tcase(s, tc);
    return s;
}
