/* The short chaos run (tests/chaos/chaos.c; `make chaos` runs it long):
 * three pools under load while every kind of fault is injected at least
 * once; the driver checks that no job is lost, no run_once effect repeated
 * and pgq.check_invariants() is clean, and exits non-zero otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define ARGV(...) ((const char *const[]){ __VA_ARGS__, NULL })

START_TEST(every_fault_survived)
{
    tu_reset();
    tu_exec("DROP TABLE IF EXISTS test_ledger", 0, NULL);
    /* make test runs the server with synchronous_commit off, under which a
     * crash (immediate restart) may lose the last commits by design: the
     * chaos run's connections get it on */
    tu_exec("DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET synchronous_commit = on', "
            "current_database()); END $$", 0, NULL);
    const char *bin = tu_fmt("%s/pgq-chaos", tu_bin_dir());
    bool restarts = getenv("PGQ_PG_BINDIR") && getenv("PGQ_PG_DATADIR");
    tu_run r = tu_run_cmd(NULL, (const char *const[]){ tu_fmt("DATABASE_URL=%s", tu_db_url()),
                                                       NULL },
                          NULL, bin, ARGV(bin, "--seconds", "50", "--idle", "100", "--rate", "100"),
                          400);
    fprintf(stderr, "%s", r.out);
    /* the server was restarted under this connection; the setting back
     * before any assertion can end the test */
    PQreset(tu_pg());
    tu_exec("DO $$ BEGIN EXECUTE format('ALTER DATABASE %I RESET synchronous_commit', "
            "current_database()); END $$", 0, NULL);

    ck_assert_msg(r.code == 0, "pgq-chaos: exit %d\n%s%s", r.code, r.out, r.err);
    ck_assert_msg(strstr(r.out, "chaos: all checks passed\n"), "%s", r.out);
    static const char *const faults[] = { "kill", "stop", "terminate", "restart", "crash",
                                          "slots", "pin", "idle" };
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
        if (!restarts && (strcmp(faults[i], "restart") == 0 || strcmp(faults[i], "crash") == 0))
            continue;
        const char *line = strstr(r.out, tu_fmt("chaos: %-9s survived ", faults[i]));
        ck_assert_msg(line, "no line for fault %s:\n%s", faults[i], r.out);
        ck_assert_msg(atoi(line + strlen("chaos: ") + 9 + strlen(" survived ")) >= 1,
                      "fault %s never injected:\n%s", faults[i], r.out);
    }
    tu_run_free(&r);
    tu_check_invariants();
    tu_exec("DROP TABLE IF EXISTS test_ledger", 0, NULL);
}
END_TEST

Suite *chaos_suite(void)
{
    Suite *s = suite_create("chaos");
    TCase *tc = tcase_create("chaos");
    tcase_set_timeout(tc, TU_TIMEOUT);
    tcase_add_test(tc, every_fault_survived);
    suite_add_tcase(s, tc);
    return s;
}
