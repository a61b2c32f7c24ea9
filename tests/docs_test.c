/* The README's pool.ini reference is generated from config/'s key table
 * (`pgq config-reference`); this keeps the two from drifting apart. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgq_config.h"
#include "testutil.h"

START_TEST(readme_config_reference_is_current)
{
    static const char begin[] = "<!-- config-reference:begin -->\n",
                      end[] = "<!-- config-reference:end -->";
    char path[4096], *want = NULL;
    size_t wantlen = 0;
    snprintf(path, sizeof path, "%s/../README.md", tu_test_dir());
    char *readme = tu_slurp(path);
    char *a = strstr(readme, begin), *b = a ? strstr(a, end) : NULL;
    ck_assert_msg(a && b, "README.md lacks the config-reference markers");
    a += strlen(begin);
    *b = '\0';
    FILE *m = open_memstream(&want, &wantlen);
    pgq_cfg_write_reference(m);
    fclose(m);
    ck_assert_msg(strcmp(a, want) == 0, "README.md's config reference is stale: regenerate it "
                  "with `build/pgq config-reference`");
    free(want);
    free(readme);
}
END_TEST

Suite *docs_suite(void)
{
    Suite *s = suite_create("docs");
    TCase *tc = tcase_create("docs");
    tcase_add_test(tc, readme_config_reference_is_current);
    suite_add_tcase(s, tc);
    return s;
}
