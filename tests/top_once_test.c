/* `pgq top --once` (tui/once.c): the dashboard's Overview printed once as
 * plain text, without a terminal (stdin and stdout are not ttys here). The
 * test adds jobs to two queues, one of them with a name longer than the
 * screen is wide, and reads the printout: exit 0, exactly LINES rows none
 * wider than COLUMNS, no escape sequence, the tabs, the queues with their
 * counts, the totals line. */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static void setup(void)
{
    tu_reset();
}

static void teardown(void)
{
    tu_check_invariants();
}

static tu_run pgq(const char *const *env, const char *const *args)
{
    const char *argv[16] = { "pgq", "--db", tu_db_url() };
    size_t n = 3;
    for (; args[n - 3]; n++)
        argv[n] = args[n - 3];
    argv[n] = NULL;
    return tu_run_cmd(NULL, env, NULL, tu_fmt("%s/pgq", tu_bin_dir()), argv, 60);
}

static void add(const char *queue, int n)
{
    for (int i = 0; i < n; i++) {
        tu_run r = pgq(NULL, (const char *[]){ "add", "once-job", "{}", "--queue", queue, NULL });
        ck_assert_msg(r.code == 0, "pgq add: %s", r.err);
        tu_run_free(&r);
    }
}

/* The row of out that contains what, or NULL. */
static const char *row_with(char *const *rows, int n, const char *what)
{
    for (int i = 0; i < n; i++)
        if (strstr(rows[i], what))
            return rows[i];
    return NULL;
}

START_TEST(once_prints_the_overview_as_text)
{
    tu_type("once-job", "default", "", 3, 1000);
    add("once-mail", 3);
    const char *longq = "a-queue-name-much-longer-than-the-sixty-columns-of-this-screen-is-wide";
    add(longq, 1);

    tu_run r = pgq((const char *[]){ "COLUMNS=60", "LINES=20", "LANG=C.UTF-8", NULL },
                   (const char *[]){ "top", "--once", NULL });
    ck_assert_msg(r.code == 0, "pgq top --once: exit %d: %s", r.code, r.err);
    ck_assert_msg(!strchr(r.out, '\033'), "escape sequences in the output:\n%s", r.out);

    char *rows[64];
    int n = 0;
    char *text = strdup(r.out);
    /* strtok_r would merge empty rows: split by hand */
    for (char *p = text; *p && n < 64;) {
        char *nl = strchr(p, '\n');
        ck_assert_msg(nl, "the last row has no newline:\n%s", r.out);
        *nl = '\0';
        rows[n++] = p;
        p = nl + 1;
    }
    ck_assert_msg(n == 20, "%d rows, want LINES=20:\n%s", n, r.out);
    /* widths in characters: the screen may hold UTF-8 (the sparkline) */
    ck_assert_msg(setlocale(LC_CTYPE, "C.UTF-8"), "no C.UTF-8 locale");
    for (int i = 0; i < n; i++) {
        size_t width = mbstowcs(NULL, rows[i], 0);
        ck_assert_msg(width != (size_t)-1 && width <= 60, "row %d is %zu wide (COLUMNS=60): %s",
                      i + 1, width, rows[i]);
    }
    ck_assert_msg(strstr(rows[0], "pgq top") && strstr(rows[0], "Overview"),
                  "no tab bar in row 1:\n%s", r.out);
    const char *mail = row_with(rows, n, "once-mail");
    ck_assert_msg(mail, "queue once-mail not shown:\n%s", r.out);
    int ready = -1;
    /* the row may start with a marker (! nobody serves it, P paused) */
    ck_assert_msg(sscanf(strstr(mail, "once-mail"), "once-mail %d", &ready) == 1 && ready == 3,
                  "once-mail's row does not start with its 3 ready jobs: %s", mail);
    ck_assert_msg(row_with(rows, n, "a-queue-n"),
                  "the long queue name is not shown (cut is fine, gone is not):\n%s", r.out);
    ck_assert_msg(row_with(rows, n, "ready 4"), "no totals line with ready 4:\n%s", r.out);
    fprintf(stderr, "top_once_test: pgq top --once at 60x20:\n%s", r.out);
    free(text);
    tu_run_free(&r);

    /* COLUMNS unset: 80 wide, 24 rows */
    r = pgq((const char *[]){ "COLUMNS", "LINES", NULL }, (const char *[]){ "top", "--once", NULL });
    ck_assert_msg(r.code == 0, "pgq top --once: exit %d: %s", r.code, r.err);
    ck_assert_int_eq(tu_count_lines(r.out), 24);
    tu_run_free(&r);
}
END_TEST

Suite *top_once_suite(void)
{
    Suite *s = suite_create("top_once");
    TCase *tc = tcase_create("top_once");
    tcase_set_timeout(tc, TU_TIMEOUT);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, once_prints_the_overview_as_text);
    suite_add_tcase(s, tc);
    return s;
}
