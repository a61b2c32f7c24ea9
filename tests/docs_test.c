/* The README's pool.ini reference is generated from config/'s key table
 * (`pgq config-reference`); this keeps the two from drifting apart. The man
 * pages (man/, built by `make man`) render without warnings and name every
 * command and option the programs' --help lists. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

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

/* The warnings of rendering a page, "" when none: man -l with its
 * warnings on, then groff with all of them (man's own set is small). */
static char *man_warnings(const char *page)
{
    int st;
    char *w = tu_sh(tu_fmt("MANWIDTH=80 man --warnings -l '%s' 2>&1 >/dev/null && "
                            "groff -man -Tutf8 -wall '%s' 2>&1 >/dev/null", page, page), &st);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "rendering %s: %s", page, w);
    return w;
}

START_TEST(man_pages_render_without_warnings)
{
    int st;
    free(tu_sh("command -v man && command -v scdoc", &st));
    if (st != 0) {
        fprintf(stderr, "docs_test: man or scdoc missing: man pages not checked "
                        "(scripts/deps.sh installs them)\n");
        return;
    }
    static const char *const pages[] = { "pgq.1", "pgq-pool.8", "pool.ini.5", "libpgq.3" };
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
        const char *page = tu_fmt("%s/man/%s", tu_bin_dir(), pages[i]);
        char *w = man_warnings(page);
        ck_assert_msg(!*w, "%s: %s", page, w);
        free(w);
    }
    /* the check can fail: a page with an unknown request */
    const char *bad = tu_fmt("%s/man/bad.7", tu_bin_dir());
    FILE *f = fopen(bad, "w");
    fputs(".TH BAD 7\n.SH NAME\nbad\n.XYZZY\n", f);
    fclose(f);
    char *w = man_warnings(bad);
    remove(bad);
    ck_assert_msg(*w, "a broken page rendered without a warning");
    free(w);
    /* every key of the key table is in pool.ini(5) */
    char *ini = tu_sh(tu_fmt("MANWIDTH=200 man -l '%s/man/pool.ini.5'", tu_bin_dir()), &st);
    char *ref = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&ref, &len);
    pgq_cfg_write_reference(m);
    fclose(m);
    for (char *l = ref; (l = strstr(l, "\n| `")); l++) {
        char key[64];
        if (sscanf(l, "\n| `%*[^`]` | `%63[^`]`", key) == 1)
            ck_assert_msg(strstr(ini, tu_fmt("%s = ", key)), "pool.ini(5) lacks key %s", key);
    }
    free(ref);
    free(ini);
}
END_TEST

/* Every command of `pgq --help` and every option of `pgq-pool --help` is
 * in its man page's source. */
START_TEST(man_pages_cover_the_help)
{
    int st;
    char path[4096];
    snprintf(path, sizeof path, "%s/../man/pgq.1.scd", tu_test_dir());
    char *page = tu_slurp(path);
    char *help = tu_sh(tu_fmt("'%s/pgq' --help", tu_bin_dir()), &st);
    char *cmds = strstr(help, "commands:\n");
    ck_assert_ptr_nonnull(cmds);
    for (char *l = strchr(cmds, '\n') + 1; l && strncmp(l, "  ", 2) == 0; l = strchr(l, '\n')) {
        char name[64];
        ck_assert_int_eq(sscanf(l, " %63s", name), 1);
        ck_assert_msg(strstr(page, tu_fmt("\n*%s*", name)), "pgq(1) lacks command %s", name);
        l++;
    }
    free(help);
    free(page);
    snprintf(path, sizeof path, "%s/../man/pgq-pool.8.scd", tu_test_dir());
    page = tu_slurp(path);
    help = tu_sh(tu_fmt("'%s/pgq-pool' --help", tu_bin_dir()), &st);
    for (char *p = help; (p = strstr(p, " --")); p += 3) {
        char opt[64];
        if (sscanf(p + 1, "%63[-a-z]", opt) == 1 && strlen(opt) > 2)
            ck_assert_msg(strstr(page, tu_fmt("*%s*", opt)), "pgq-pool(8) lacks option %s", opt);
    }
    free(help);
    free(page);
}
END_TEST

/* The systemd unit carries the install's paths and scores at most 4.0 on
 * `systemd-analyze security` (offline; skipped, saying so, without it). */
START_TEST(systemd_unit_is_hardened)
{
    int st;
    const char *unit = tu_fmt("%s/pgq-pool.service", tu_bin_dir());
    char *text = tu_slurp(unit);
    ck_assert_msg(!strstr(text, "@BINDIR@") && !strstr(text, "@SYSCONFDIR@") &&
                  !strstr(text, "@TYPE@") && !strstr(text, "@WATCHDOG@"),
                  "unit has an unreplaced placeholder:\n%s", text);
    ck_assert_msg(strstr(text, "\nExecStart=/") && strstr(text, "/pgq-pool -c /"), "%s", text);
    /* Type=notify exactly when pgq-pool can say READY=1 (built for
     * libsystemd, which it loads under systemd by this name: pool/notify.c);
     * otherwise systemd would wait for it in vain */
    bool sd = tu_pool_has_systemd();
    ck_assert_msg(strstr(text, sd ? "\nType=notify\n" : "\nType=simple\n") &&
                  (strstr(text, "\nWatchdogSec=") != NULL) == sd,
                  "pgq-pool %s libsystemd, but the unit says:\n%s", sd ? "has" : "lacks", text);
    free(text);
    free(tu_sh("command -v systemd-analyze", &st));
    if (st != 0) {
        fprintf(stderr, "docs_test: systemd-analyze missing: the unit's score is not checked\n");
        return;
    }
    char *out = tu_sh(tu_fmt("systemd-analyze security --offline=true --threshold=40 '%s'", unit),
                       &st);
    const char *level = strstr(out, "Overall exposure level");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the unit scores above 4.0: %s",
                  level ? level : out);
    fprintf(stderr, "docs_test: %s", level ? level : "(no overall line)\n");
    free(out);
}
END_TEST

Suite *docs_suite(void)
{
    Suite *s = suite_create("docs");
    TCase *tc = tcase_create("docs");
    /* man and groff on a loaded machine outlast Check's 4 s default. */
    tcase_set_timeout(tc, TU_TIMEOUT);
    tcase_add_test(tc, readme_config_reference_is_current);
    tcase_add_test(tc, man_pages_render_without_warnings);
    tcase_add_test(tc, man_pages_cover_the_help);
    tcase_add_test(tc, systemd_unit_is_hardened);
    suite_add_tcase(s, tc);
    return s;
}
