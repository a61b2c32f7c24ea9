/* The one test runner: gathers every module's Suite (pgagroal style).
 * Unit suites always run; integration suites need PGQ_TEST_DATABASE_URL
 * (make test starts a throwaway PostgreSQL and sets it), which is migrated
 * once here before any test. PGQ_UNIT_ONLY=1 runs the unit suites alone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

int main(void)
{
    const char *unit_only = getenv("PGQ_UNIT_ONLY");
    bool db = !(unit_only && *unit_only && strcmp(unit_only, "0") != 0);
    char err[1024];

    SRunner *sr = srunner_create(config_suite());
    srunner_add_suite(sr, duration_suite());
    srunner_add_suite(sr, exec_suite());
    srunner_add_suite(sr, utf8_suite());
    srunner_add_suite(sr, dburl_suite());
    srunner_add_suite(sr, log_suite());
    srunner_add_suite(sr, docs_suite());
    srunner_add_suite(sr, slot_suite());
    srunner_add_suite(sr, cron_suite());
    srunner_add_suite(sr, layout_suite());
    srunner_add_suite(sr, typed_suite());
    if (db) {
        const char *url = getenv("PGQ_TEST_DATABASE_URL");
        pgq_conn *c;
        if (!url || !*url) {
            fprintf(stderr, "pgq-tests: PGQ_TEST_DATABASE_URL is not set; run `make test` "
                            "(or PGQ_UNIT_ONLY=1 for unit tests alone)\n");
            return 2;
        }
        if (pgq_connect(url, &c, err, sizeof err) < 0 || pgq_migrate(c, NULL, err, sizeof err) < 0) {
            fprintf(stderr, "pgq-tests: cannot prepare the test database: %s\n", err);
            return 2;
        }
        pgq_disconnect(c);
        srunner_add_suite(sr, migrate_suite());
        srunner_add_suite(sr, upgrade_suite());
        srunner_add_suite(sr, enqueue_suite());
        srunner_add_suite(sr, claim_suite());
        srunner_add_suite(sr, state_suite());
        srunner_add_suite(sr, lease_suite());
        srunner_add_suite(sr, once_suite());
        srunner_add_suite(sr, admin_suite());
        srunner_add_suite(sr, deps_suite());
        srunner_add_suite(sr, cli_suite());
        srunner_add_suite(sr, cron_db_suite());
        srunner_add_suite(sr, pool_suite());
        srunner_add_suite(sr, limits_suite());
        srunner_add_suite(sr, events_suite());
        srunner_add_suite(sr, results_suite());
        srunner_add_suite(sr, pgbouncer_suite());
        srunner_add_suite(sr, tui_model_suite());
        srunner_add_suite(sr, tui_e2e_suite());
        srunner_add_suite(sr, typed_db_suite());
        srunner_add_suite(sr, secrets_suite());
        srunner_add_suite(sr, roles_suite());
        srunner_add_suite(sr, chaos_suite());
        srunner_add_suite(sr, failover_suite());
        srunner_add_suite(sr, badinput_suite());
        srunner_add_suite(sr, notify_suite());
        srunner_add_suite(sr, top_once_suite());
    }
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    /* The failures once more, into PGQ_TEST_FAILURES when it names a file:
     * `make test` prints that file last, after the server log's tail, so
     * that the end of a failed run (all a CI excerpt may show) names the
     * failing tests. */
    const char *list = getenv("PGQ_TEST_FAILURES");
    FILE *f = failed && list && *list ? fopen(list, "w") : NULL;
    if (f) {
        TestResult **tr = srunner_failures(sr);
        for (int i = 0; i < failed; i++)
            fprintf(f, "%s:%d: [%s] %s\n", tr_lfile(tr[i]) ? tr_lfile(tr[i]) : "?", tr_lno(tr[i]),
                    tr_tcname(tr[i]) ? tr_tcname(tr[i]) : "?", tr_msg(tr[i]) ? tr_msg(tr[i]) : "");
        free(tr);
        fclose(f);
    }
    srunner_free(sr);
    return failed ? 1 : 0;
}
