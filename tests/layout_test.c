/* The shape of what is built, checked on the build itself: no two source
 * files depend on each other in a circle (scripts/check-deps.sh reads the
 * objects' symbols), and libpgq.so exports the public API, all of it and
 * nothing else — every name it exports starts with pgq_, so an internal
 * helper (seterr, db_query, worker_main) can neither clash with a
 * program's own symbols nor become an API by accident. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "testutil.h"

START_TEST(no_dependency_cycles)
{
    int st;
    char *out = tu_sh(tu_fmt("sh '%s/../scripts/check-deps.sh' '%s'", tu_test_dir(),
                             tu_bin_dir()), &st);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "source files depend on each other in a circle (status %d):\n%s", st,
                  out);
    free(out);
}
END_TEST

START_TEST(libpgq_exports_only_pgq_names)
{
    int st;
    const char *so = tu_fmt("%s/libpgq.so", tu_bin_dir());
    char *out = tu_sh(tu_fmt("nm -D --defined-only '%s'", so), &st);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "nm -D %s failed:\n%s", so, out);

    /* Lines are "ADDRESS TYPE NAME"; every defined dynamic symbol is
     * exported, whatever its type (text, data, weak). */
    char *bad = NULL;
    size_t badlen = 0;
    int nbad = 0, npgq = 0;
    FILE *b = open_memstream(&bad, &badlen);
    ck_assert_ptr_nonnull(b);
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        char addr[64], type[8], name[512];
        if (sscanf(line, "%63s %7s %511s", addr, type, name) != 3)
            continue;
        if (strncmp(name, "pgq_", 4) == 0) {
            npgq++;
        } else {
            fprintf(b, " %s", name);
            nbad++;
        }
    }
    fclose(b);
    ck_assert_msg(nbad == 0, "%s exports %d name%s without the pgq_ prefix:%s", so, nbad,
                  nbad == 1 ? "" : "s", bad);
    ck_assert_msg(npgq > 0, "%s exports nothing at all", so);
    free(bad);
    free(out);
}
END_TEST

/* The other way round: every function the installed headers declare is
 * exported, so a new API function that lacks PGQ_API (and would link from
 * libpgq.a but not from libpgq.so) fails here. A declaration is a line at
 * the left margin, not a comment, macro or typedef, naming pgq_NAME( . */
START_TEST(public_headers_are_exported)
{
    static const char *const headers[] = { "core/pgq.h", "pool/pgq_pool.h",
                                           "config/pgq_config.h" };
    int st;
    const char *so = tu_fmt("%s/libpgq.so", tu_bin_dir());
    char *syms = tu_sh(tu_fmt("nm -D --defined-only '%s'", so), &st);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "nm -D %s failed:\n%s", so, syms);
    int ndecl = 0;
    for (size_t h = 0; h < sizeof headers / sizeof headers[0]; h++) {
        char *text = tu_slurp(tu_fmt("%s/../%s", tu_test_dir(), headers[h]));
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
            if (!isalpha((unsigned char)*line) || strncmp(line, "typedef", 7) == 0)
                continue;
            /* The first pgq_ identifier followed by '(' (a return type such
             * as pgq_once_result may come first). */
            char *p = NULL;
            size_t n = 0;
            for (char *q = strstr(line, "pgq_"); q; q = strstr(q + 4, "pgq_")) {
                if (q > line && (isalnum((unsigned char)q[-1]) || q[-1] == '_'))
                    continue;
                size_t k = 4;
                while (isalnum((unsigned char)q[k]) || q[k] == '_')
                    k++;
                if (q[k] == '(') {
                    p = q;
                    n = k;
                    break;
                }
            }
            if (!p)
                continue;
            ndecl++;
            /* nm's lines end in " NAME"; look for the whole name. */
            const char *want = tu_fmt(" %.*s\n", (int)n, p);
            ck_assert_msg(strstr(syms, want) != NULL,
                          "%s declares %.*s but %s does not export it (PGQ_API missing?)",
                          headers[h], (int)n, p, so);
        }
        free(text);
    }
    ck_assert_msg(ndecl > 50, "found only %d declarations in the public headers", ndecl);
    free(syms);
}
END_TEST

Suite *layout_suite(void)
{
    Suite *s = suite_create("layout");
    TCase *tc = tcase_create("layout");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, no_dependency_cycles);
    tcase_add_test(tc, libpgq_exports_only_pgq_names);
    tcase_add_test(tc, public_headers_are_exported);
    suite_add_tcase(s, tc);
    return s;
}
