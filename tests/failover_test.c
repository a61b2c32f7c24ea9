/* PostgreSQL failover (issue 15) on an HA engine: a pool given a
 * multi-host URL with target_session_attrs=read-write, the primary killed
 * mid-load and the standby promoted. The pool finds the new primary by
 * itself; with synchronous replication no committed job, completion or
 * effect is lost and no effect runs twice; a connection to a read-only
 * server is dropped and made again, not counted against a job.
 *
 * The engine: pg_auto_failover (scripts/ha-auto.sh: a monitor, a primary
 * and a synchronous secondary, the primary's keeper and postgres SIGKILLed,
 * the monitor promotes the secondary) when pg_autoctl and its extension
 * are installed (scripts/deps.sh installs them); otherwise, as a fallback,
 * a primary and a synchronous streaming standby (scripts/ha-pair.sh: the
 * primary stopped -m immediate, the standby promoted by pg_ctl promote).
 * PGQ_HA_ENGINE=pg_ctl forces the fallback. One cluster serves the whole
 * test case (an unchecked fixture: starting a formation takes seconds);
 * both scripts stop it when the test runner dies (PGQ_HA_OWNER). */
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
static char engine_url[512];   /* pg_autoctl show uri, without user */
static bool autoctl;           /* the engine is pg_auto_failover */
static pid_t pool_pid;

/* pg_auto_failover when it is here (and not turned off), else pg_ctl. */
static bool want_autoctl(void)
{
    const char *e = getenv("PGQ_HA_ENGINE");
    if (e && strcmp(e, "pg_ctl") == 0)
        return false;
    int st;
    free(tu_sh("command -v pg_autoctl >/dev/null 2>&1 && ls /usr/share/postgresql/*/extension/"
               "pgautofailover.control >/dev/null 2>&1", &st));
    return st == 0;
}

static const char *engine_name(void)
{
    if (autoctl)
        return "pg_auto_failover (pg_autoctl, monitor-driven promotion)";
    const char *e = getenv("PGQ_HA_ENGINE");
    return e && strcmp(e, "pg_ctl") == 0
               ? "a streaming standby promoted by pg_ctl promote (PGQ_HA_ENGINE=pg_ctl)"
               : "a streaming standby promoted by pg_ctl promote (pg_autoctl not installed)";
}

static const char *script(void)
{
    return tu_fmt("%s/../scripts/%s", tu_test_dir(), autoctl ? "ha-auto.sh" : "ha-pair.sh");
}

static const char *url_of(int port)
{
    return tu_fmt("postgresql://pgq@127.0.0.1:%d/pgq?connect_timeout=2", port);
}

/* The URL a user would give pools: pg_auto_failover's own (pg_autoctl show
 * uri: every node, target_session_attrs=read-write) with our role added,
 * or the same made by hand for the pg_ctl pair. */
static const char *ha_url(void)
{
    if (autoctl)
        return tu_fmt("%s&user=pgq&connect_timeout=2", engine_url);
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

/* One text value (tu_fmt's storage; "" when there is none). */
static const char *qs(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    const char *v = "";
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
            v = tu_fmt("%s", PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    PQfinish(c);
    return v;
}

static void stop_cluster(void)
{
    int st;
    free(tu_sh(tu_fmt("'%s' stop '%s' 2>&1", script(), dir), &st));
}

static void kill_pool(void)
{
    if (pool_pid > 0) {
        kill(pool_pid, SIGKILL);
        waitpid(pool_pid, NULL, 0);
        pool_pid = 0;
    }
}

static void setup(void)
{
    autoctl = want_autoctl();
    snprintf(dir, sizeof dir, "/tmp/pgq-ha.%d", (int)getpid());
    fprintf(stderr, "failover_test: engine %s\n", engine_name());
    int st;
    /* PGQ_HA_OWNER: this process; if it dies, the script's watchdog stops
     * the servers */
    char *out = tu_sh(tu_fmt("PGQ_HA_OWNER=%d '%s' start '%s' 2>&1", (int)getpid(), script(),
                             dir), &st);
    engine_url[0] = '\0';
    bool ok = out && st == 0 && sscanf(out, "%d %d", &port1, &port2) == 2;
    if (ok && autoctl) {
        const char *nl = strchr(out, '\n');
        ok = nl && sscanf(nl + 1, "%511s", engine_url) == 1 &&
             strncmp(engine_url, "postgres", 8) == 0 && strchr(engine_url, '?');
    }
    if (!ok) {
        /* a failed setup gets no teardown: stop what did start. The
         * output is freed before the abort: this setup runs in the
         * runner's process, and a block it leaks there is inherited by
         * every test forked after it, each of which LeakSanitizer then
         * fails (one failed start once failed eleven later tests). */
        char msg[4096];
        int len = snprintf(msg, sizeof msg, "%s", out ? out : "(nothing)");
        if (len >= (int)sizeof msg)   /* the message keeps its start; stderr gets it all */
            fprintf(stderr, "failover_test: %s start, its whole output:\n%s\n", script(), out);
        free(out);
        stop_cluster();
        ck_abort_msg("%s start: %s", script(), msg);
    }
    free(out);
    pool_pid = 0;
}

static void teardown(void)
{
    kill_pool();   /* set only without CK_FORK (with it, the pool dies with its test) */
    stop_cluster();
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
    int64_t started = tu_now_ms();
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
    /* the pool has registered its job type (the column is "type": this
     * loop used to ask for "name", got -1 and waited out its 30 s) */
    const char *registered = "SELECT count(*) FROM pgq.job_types WHERE type = 'load'";
    for (int w = 0; w < 300 && qi(url_of(port1), registered) != 1; w++)
        tu_sleep_ms(100);
    ck_assert_msg(qi(url_of(port1), registered) == 1, "the pool did not register its job type\n%s",
                  tu_slurp(log));
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
        tu_sleep_ms(100);
    long long done_before = qi(url_of(port1), done_sql);
    ck_assert_msg(done_before >= JOBS / 4 && done_before < JOBS, "done before the kill: %lld",
                  done_before);
    /* the crash: pg_auto_failover's monitor sees the primary die and
     * promotes the secondary; the pg_ctl pair is promoted by the script */
    int64_t killed = tu_now_ms();
    fprintf(stderr, "failover_test: load started after %.1f s\n", (double)(killed - started) / 1000.0);
    int fst;
    char *out = tu_sh(tu_fmt("'%s' failover '%s' 2>&1", script(), dir), &fst);
    ck_assert_msg(fst == 0, "%s failover: %s", script(), out);
    free(out);
    int64_t promoted = tu_now_ms();
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
            first_done = tu_now_ms() - promoted;
        if (d == JOBS)
            break;
        tu_sleep_ms(100);
    }
    int64_t all_done = tu_now_ms() - promoted;
    const char *p2 = url_of(port2);
    ck_assert_msg(qi(p2, done_sql) == JOBS, "only %lld of %d jobs done after the failover (%s)\n%s",
                  qi(p2, done_sql), JOBS, engine_name(), tu_slurp(log));
    /* the promise: pools are working on the new primary within
     * 10 s of its promotion (the only timing this suite asserts) */
    ck_assert_msg(first_done >= 0 && first_done <= 10000,
                  "first job done on the new primary %lld ms after the promotion",
                  (long long)first_done);
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
    /* A handler whose own statement (run_once on the worker's connection)
     * died with the primary returns an error, and that attempt counts as
     * failed: the handler's verdict, not the pool's. No attempt failed for
     * any other reason. */
    ck_assert_msg(qi(p2, "SELECT count(*) FROM pgq.job_attempts WHERE outcome = 'failed' AND "
                         "error !~ '(no connection to the server|server closed the connection|"
                         "could not receive data from server|terminating connection)'") == 0,
                  "an attempt failed for another reason than the lost primary: %s",
                  qs(p2, "SELECT string_agg(DISTINCT error, ' | ') FROM pgq.job_attempts WHERE "
                         "outcome = 'failed'"));
    fprintf(stderr, "failover_test [%s]: %lld of %d done at the kill; promoted %lld ms after "
            "the kill; first job done on the new primary %lld ms after the promotion, all %lld ms after it; %lld of %d "
            "done, %lld effects (%lld in doubt), %lld attempts lost their lease, %lld attempts "
            "of effect jobs failed in their handler; test %.1f s\n",
            autoctl ? "pg_auto_failover" : "pg_ctl promote", done_before, JOBS,
            (long long)(promoted - killed), (long long)first_done, (long long)all_done, qi(p2, done_sql), JOBS,
            qi(p2, "SELECT count(*) FROM test_ledger"),
            qi(p2, "SELECT count(*) FROM pgq.effects_in_doubt"),
            qi(p2, "SELECT count(*) FROM pgq.job_attempts WHERE outcome = 'lease_expired'"),
            qi(p2, "SELECT count(*) FROM pgq.job_attempts WHERE outcome = 'failed'"),
            (double)(tu_now_ms() - started) / 1000.0);
    const char *why = qs(p2, "SELECT string_agg(DISTINCT error, ' | ') FROM pgq.job_attempts "
                             "WHERE outcome = 'failed'");
    if (*why)
        fprintf(stderr, "failover_test: the effect jobs' failed attempts said: %s\n", why);
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
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_add_test(tc, a_read_only_server_is_left_not_blamed);
    tcase_add_test(tc, pool_follows_the_promoted_standby);
    suite_add_tcase(s, tc);
    return s;
}
