/* PostgreSQL failover (issue 15): a primary and a synchronous streaming
 * standby (scripts/ha-pair.sh), a pool given a multi-host URL with
 * target_session_attrs=read-write, the primary killed mid-load and the
 * standby promoted. The pool finds the new primary by itself; with
 * synchronous replication no committed job, completion or effect is lost
 * and no effect runs twice; a connection to a read-only server is dropped
 * and made again, not counted against a job. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

static char dir[128];
static int port1, port2;
static pid_t pool_pid;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    nanosleep(&(struct timespec){ ms / 1000, (ms % 1000) * 1000000L }, NULL);
}

static const char *script(void)
{
    return tu_fmt("%s/../scripts/ha-pair.sh", tu_test_dir());
}

static const char *url_of(int port)
{
    return tu_fmt("postgresql://pgq@127.0.0.1:%d/pgq?connect_timeout=2", port);
}

static const char *ha_url(void)
{
    return tu_fmt("postgresql://pgq@127.0.0.1:%d,127.0.0.1:%d/pgq?target_session_attrs=read-write"
                  "&connect_timeout=2", port1, port2);
}

/* One integer from the server at url; -1 when it does not answer. */
static long long qi(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    long long v = -1;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
            v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
    }
    PQfinish(c);
    return v;
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/pgq-ha.%d", (int)getpid());
    int st;
    char *out = tu_sh(tu_fmt("'%s' start '%s' 2>&1", script(), dir), &st);
    if (!out || sscanf(out, "%d %d", &port1, &port2) != 2) {
        /* a failed setup gets no teardown: stop what did start */
        int st2;
        free(tu_sh(tu_fmt("'%s' stop '%s' 2>&1", script(), dir), &st2));
        ck_abort_msg("ha-pair.sh start: %s", out ? out : "(nothing)");
    }
    free(out);
    pool_pid = 0;
}

static void teardown(void)
{
    if (pool_pid > 0) {
        kill(pool_pid, SIGKILL);
        waitpid(pool_pid, NULL, 0);
    }
    int st;
    free(tu_sh(tu_fmt("'%s' stop '%s' 2>&1", script(), dir), &st));
}

static void run_ok(const char *const *argv)
{
    tu_run r = tu_run_cmd(NULL, NULL, NULL, argv[0], argv, 60);
    ck_assert_msg(r.code == 0, "%s: exit %d: %s%s", argv[1], r.code, r.out, r.err);
    tu_run_free(&r);
}

/* A connection to the standby: writes fail with a message that says what
 * happens, and the connection is given up so the caller reconnects. */
START_TEST(a_read_only_server_is_left_not_blamed)
{
    const char *pgq = tu_fmt("%s/pgq", tu_bin_dir());
    run_ok((const char *const[]){ pgq, "--db", url_of(port1), "migrate", NULL });
    char err[1024];
    pgq_conn *c = NULL;
    ck_assert_msg(pgq_connect(url_of(port2), &c, err, sizeof err) == 0, "%s", err);
    pgq_add_result res;
    ck_assert_int_eq(pgq_add(c, "t", "{}", NULL, &res, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "read-only") && strstr(err, "reconnecting to find the primary"),
                  "%s", err);
    ck_assert(!pgq_connected(c));
    pgq_disconnect(c);
}
END_TEST

START_TEST(pool_follows_the_promoted_standby)
{
    enum { JOBS = 400 };
    const char *pgq = tu_fmt("%s/pgq", tu_bin_dir());
    run_ok((const char *const[]){ pgq, "--db", url_of(port1), "migrate", NULL });
    PGconn *p = PQconnectdb(url_of(port1));
    ck_assert_int_eq(PQstatus(p), CONNECTION_OK);
    PQclear(PQexec(p, "CREATE TABLE test_ledger (job_id bigint, key text)"));
    PQfinish(p);

    const char *ini = tu_fmt("%s/pool.ini", dir);
    tu_write_file(ini, tu_fmt("[pool]\nworkers = 3\nlease_ttl = 3s\nheartbeat = 300ms\n"
                              "poll = 200ms\nshutdown_timeout = 10s\n\n[job load]\nhandler = "
                              "plugin %s/tests/plugins/pool_plugin.so ledger_job\n"
                              "max_retries = 20\nbackoff_base = 100ms\n", tu_bin_dir()));
    const char *log = tu_fmt("%s/pool.log", dir);
    const char *bin = tu_fmt("%s/pgq-pool", tu_bin_dir());
    const char *url = ha_url();
    pool_pid = tu_spawn_logged(log, NULL, bin,
                               (const char *const[]){ "pgq-pool", "-c", ini, "--db", url, NULL });
    /* the jobs, added through the HA URL: committed means on both servers */
    for (int w = 0; w < 300 && qi(url_of(port1), "SELECT count(*) FROM pgq.job_types WHERE "
                                  "name = 'load'") != 1; w++)
        sleep_ms(100);
    char err[1024];
    pgq_conn *c = NULL;
    ck_assert_msg(pgq_connect(url, &c, err, sizeof err) == 0, "%s", err);
    static pgq_add_item items[JOBS];
    static pgq_add_result res[JOBS];
    for (int i = 0; i < JOBS; i++)
        items[i] = (pgq_add_item){ "load", i % 2 ? "{\"sleep_ms\": 15}"
                                                 : "{\"sleep_ms\": 15, \"effect\": 0}",
                                   PGQ_ADD_OPTS_INIT };
    ck_assert_msg(pgq_add_batch(c, items, JOBS, res, err, sizeof err) == 0, "%s", err);
    pgq_disconnect(c);

    const char *done_sql = "SELECT count(*) FROM pgq.jobs WHERE state = 'done'";
    for (int w = 0; w < 600 && qi(url_of(port1), done_sql) < JOBS / 4; w++)
        sleep_ms(100);
    long long done_before = qi(url_of(port1), done_sql);
    ck_assert_msg(done_before >= JOBS / 4 && done_before < JOBS, "done before the kill: %lld",
                  done_before);
    int fst;
    char *out = tu_sh(tu_fmt("'%s' failover '%s' 2>&1", script(), dir), &fst);
    ck_assert_msg(fst == 0, "ha-pair.sh failover: %s", out);
    free(out);
    int64_t promoted = now_ms();
    long long done_at_promotion = qi(url_of(port2), done_sql);
    /* Synchronous replication: every completion the primary committed is
     * on the standby. (Commits the primary made after this read are not
     * possible: it is gone.) */
    ck_assert_msg(done_at_promotion >= done_before, "done on the new primary %lld < %lld seen "
                  "on the old one", done_at_promotion, done_before);
    int64_t first_done = -1;
    for (int w = 0; w < 1200; w++) {
        long long d = qi(url_of(port2), done_sql);
        if (first_done < 0 && d > done_at_promotion)
            first_done = now_ms() - promoted;
        if (d == JOBS)
            break;
        sleep_ms(100);
    }
    const char *p2 = url_of(port2);
    ck_assert_msg(qi(p2, done_sql) == JOBS, "only %lld of %d jobs done after the failover\n%s",
                  qi(p2, done_sql), JOBS, tu_slurp(log));
    ck_assert_int_eq(qi(p2, "SELECT count(*) FROM pgq.jobs"), JOBS);
    /* no effect twice, none lost */
    ck_assert_int_eq(qi(p2, "SELECT count(*) - (SELECT count(*) FROM (SELECT DISTINCT job_id, key"
                            " FROM test_ledger) x) FROM test_ledger"), 0);
    ck_assert_int_eq(qi(p2, "SELECT count(*) FROM pgq.effects e WHERE e.state = 'done' AND NOT "
                            "EXISTS (SELECT 1 FROM test_ledger l WHERE l.job_id = e.job_id)"), 0);
    ck_assert_int_eq(qi(p2, "SELECT count(*) FROM pgq.jobs j WHERE j.state = 'done' AND "
                            "coalesce(j.payload->>'effect', '1') <> '0' AND NOT EXISTS (SELECT 1 "
                            "FROM test_ledger l WHERE l.job_id = j.id) AND NOT EXISTS (SELECT 1 "
                            "FROM pgq.effects_in_doubt d WHERE d.job_id = j.id)"), 0);
    ck_assert_int_eq(qi(p2, "SELECT count(*) FROM pgq.check_invariants()"), 0);
    /* the failover cost no job an attempt (jobs in hand are reaped at
     * worst, never failed for the connection) */
    ck_assert_int_eq(qi(p2, "SELECT count(*) FROM pgq.job_attempts a JOIN pgq.jobs j ON j.id = "
                            "a.job_id WHERE j.payload->>'effect' = '0' AND a.outcome = 'failed'"),
                     0);
    fprintf(stderr, "failover_test: %lld of %d done at the kill; first job done on the new "
            "primary %lld ms after the promotion; %lld attempts lost their lease\n",
            done_before, JOBS, (long long)first_done,
            qi(p2, "SELECT count(*) FROM pgq.job_attempts WHERE outcome = 'lease_expired'"));
    kill(pool_pid, SIGTERM);
    int st;
    waitpid(pool_pid, &st, 0);
    pool_pid = 0;
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the pool did not stop cleanly\n%s",
                  tu_slurp(log));
}
END_TEST

Suite *failover_suite(void)
{
    Suite *s = suite_create("failover");
    TCase *tc = tcase_create("failover");
    tcase_set_timeout(tc, TU_TIMEOUT);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, a_read_only_server_is_left_not_blamed);
    tcase_add_test(tc, pool_follows_the_promoted_standby);
    suite_add_tcase(s, tc);
    return s;
}
