/* Fleet-wide limits per job type and snoozing (issue 12, items 3 and 5),
 * with real pgq-pool processes against a real PostgreSQL:
 *
 *   concurrency  three pools x four workers (one adaptive, one strict, one
 *                with batch = 8) and 200 jobs of a type with concurrency =
 *                2, beside jobs of a type without limits: a sampler thread
 *                reads the number running from the database all along and
 *                never sees more than 2 of the limited type; every job ends
 *                done; the unlimited type ran more than 2 at once
 *   rate         a type with rate = 5/1s over about 10 s: no window of the
 *                recorded start times (pgq.jobs.started_at, bucketed by the
 *                same epoch-aligned windows) holds more than 5 starts
 *   snooze       in process (pgq_ctx_snooze) and exec (`pgq snooze`): the
 *                job comes back after the delay (its next start is at least
 *                the delay after the snoozed end, from the recorded times)
 *                with its attempt count unchanged; max_snoozes refuses the
 *                snooze beyond it; an exec handler that snoozes and exits
 *                non-zero fails as usual
 *
 * Nothing asserts a timing of the test itself; every test ends with
 * pgq.check_invariants() empty (which checks the limit counters against
 * the running jobs). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define WAIT_MS 60000

static char dir[128];

struct pool {
    pid_t pid;
    char log[200];
};

static struct pool pools[4];
static int npools;

static void dump_logs(void)
{
    for (int i = 0; i < npools; i++) {
        char *s = tu_slurp(pools[i].log), *start = s + strlen(s);
        for (int lines = 0; start > s && lines <= 60; start--)
            lines += start[-1] == '\n';
        fprintf(stderr, "---- pool %d log %s:\n%s", i, pools[i].log, start);
        free(s);
    }
    PGresult *r = PQexec(tu_pg(), "SELECT type, state, count(*) FROM pgq.jobs GROUP BY 1, 2"
                                  " ORDER BY 1, 2");
    for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++)
        fprintf(stderr, "---- jobs %s %s: %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                PQgetvalue(r, i, 2));
    PQclear(r);
}

#define L_ASSERT(cond, ...)                                                                  \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            dump_logs();                                                                     \
            ck_abort_msg(__VA_ARGS__);                                                       \
        }                                                                                    \
    } while (0)

static bool log_has(const struct pool *p, const char *needle)
{
    int fd = open(p->log, O_RDONLY);
    if (fd < 0)
        return false;
    close(fd);
    char *s = tu_slurp(p->log);
    bool has = strstr(s, needle) != NULL;
    free(s);
    return has;
}

/* Start pgq-pool -c ini (dying with this test process) and wait until it
 * says it started. */
static void pool_start(const char *ini)
{
    ck_assert_int_lt(npools, 4);
    struct pool *p = &pools[npools];
    snprintf(p->log, sizeof p->log, "%s/pool%d.log", dir, npools);
    const char *bin = tu_fmt("%s/pgq-pool", tu_bin_dir());
    pid_t pid = tu_spawn_logged(p->log, NULL, bin,
                                (const char *const[]){ "pgq-pool", "-c", ini, "--db",
                                                       tu_db_url(), NULL });
    p->pid = pid;
    npools++;
    int64_t end = tu_now_ms() + WAIT_MS;
    int st;
    while (!log_has(p, "pool: started ") && tu_now_ms() < end) {
        L_ASSERT(waitpid(pid, &st, WNOHANG) != pid, "pool %d exited at start", npools - 1);
        tu_sleep_ms(25);
    }
    L_ASSERT(log_has(p, "pool: started "), "pool %d did not start", npools - 1);
}

static void pools_stop(void)
{
    for (int i = 0; i < npools; i++)
        kill(pools[i].pid, SIGTERM);
    for (int i = 0; i < npools; i++) {
        int st;
        L_ASSERT(waitpid(pools[i].pid, &st, 0) == pools[i].pid && WIFEXITED(st)
                 && WEXITSTATUS(st) == 0, "pool %d did not stop cleanly", i);
    }
    npools = 0;
}

static const char *plugin(void)
{
    return tu_fmt("%s/tests/plugins/limits_plugin.so", tu_bin_dir());
}

/* A pool.ini: workers, batch (0: no key, adaptive; 1: strict), fast
 * timings, then the [job ...] sections. */
static const char *pool_ini(const char *name, int workers, int batch, const char *jobs)
{
    const char *path = tu_fmt("%s/%s", dir, name);
    tu_write_file(path, tu_fmt("[pool]\nworkers = %d\n%slease_ttl = 5s\nheartbeat = 500ms\n"
                               "poll = 100ms\nshutdown_timeout = 5s\n\n%s",
                               workers, batch ? tu_fmt("batch = %d\n", batch) : "", jobs));
    return path;
}

static void add_jobs(const char *type, const char *payload, int n)
{
    pgq_conn *c = tu_connect();
    char err[512];
    for (int i = 0; i < n; i++) {
        pgq_add_result res;
        ck_assert_msg(pgq_add(c, type, payload, NULL, &res, err, sizeof err) == 0, "add: %s", err);
    }
    pgq_disconnect(c);
}

static long long q0(const char *sql)
{
    return tu_int(sql, 0, NULL);
}

/* Wait until no job of the test is ready or running (60 s without
 * progress fails). */
static void wait_finished(long long total)
{
    long long last = -1;
    int64_t moved = tu_now_ms();
    for (;;) {
        long long fin = q0("SELECT count(*) FROM pgq.jobs WHERE state IN ('done', 'dead')");
        if (fin == total)
            return;
        if (fin != last) {
            last = fin;
            moved = tu_now_ms();
        }
        L_ASSERT(tu_now_ms() - moved < WAIT_MS, "stuck at %lld of %lld jobs finished", fin, total);
        tu_sleep_ms(50);
    }
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/pgq-limits-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    npools = 0;
    tu_reset();
}

static void teardown(void)
{
    tu_check_invariants();
    char *out = tu_sh(tu_fmt("rm -rf '%s'", dir), &(int){ 0 });
    free(out);
}

/* ---- concurrency ------------------------------------------------------------ */

struct sampler {
    atomic_bool stop;
    long long max_lim, max_free, samples;
    char error[256];
};

/* Reads the running counts from the database as fast as it can, on its
 * own connection, until told to stop. */
static void *sample(void *arg)
{
    struct sampler *s = arg;
    PGconn *pg = PQconnectdb(tu_db_url());
    if (PQstatus(pg) != CONNECTION_OK) {
        snprintf(s->error, sizeof s->error, "sampler: %s", PQerrorMessage(pg));
        PQfinish(pg);
        return NULL;
    }
    while (!atomic_load(&s->stop)) {
        PGresult *r = PQexec(pg, "SELECT count(*) FILTER (WHERE type = 'lim'),"
                                 " count(*) FILTER (WHERE type = 'free')"
                                 " FROM pgq.jobs WHERE state = 'running'");
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            snprintf(s->error, sizeof s->error, "sampler: %s", PQresultErrorMessage(r));
            PQclear(r);
            break;
        }
        long long lim = atoll(PQgetvalue(r, 0, 0)), fr = atoll(PQgetvalue(r, 0, 1));
        PQclear(r);
        if (lim > s->max_lim)
            s->max_lim = lim;
        if (fr > s->max_free)
            s->max_free = fr;
        s->samples++;
    }
    PQfinish(pg);
    return NULL;
}

START_TEST(concurrency_holds_across_three_pools)
{
    const char *jobs = tu_fmt("[job lim]\nhandler = plugin %s nap_job\nconcurrency = 2\n\n"
                              "[job free]\nhandler = plugin %s nap_job\n", plugin(), plugin());
    /* Registered before the jobs are added (pgq add checks the type). */
    const char *inis[] = { pool_ini("a.ini", 4, 0, jobs), pool_ini("b.ini", 4, 1, jobs),
                           pool_ini("c.ini", 4, 8, jobs) };
    pool_start(inis[0]);
    add_jobs("lim", "{\"sleep_ms\": 10}", 200);
    add_jobs("free", "{\"sleep_ms\": 150}", 60);

    struct sampler s = { 0 };
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, sample, &s), 0);
    pool_start(inis[1]);
    pool_start(inis[2]);
    wait_finished(260);
    atomic_store(&s.stop, true);
    pthread_join(t, NULL);
    pools_stop();

    fprintf(stderr, "limits_test: concurrency: %lld samples, at most %lld of the limited type "
            "and %lld of the other running at once\n", s.samples, s.max_lim, s.max_free);
    L_ASSERT(!*s.error, "%s", s.error);
    L_ASSERT(s.max_lim <= 2, "the sampler saw %lld jobs of a type with concurrency = 2 running",
             s.max_lim);
    L_ASSERT(s.max_lim == 2, "the limited type never ran 2 at once (max %lld)", s.max_lim);
    L_ASSERT(s.max_free > 2, "the type without limits never ran more than 2 at once (max %lld): "
             "the limit leaked", s.max_free);
    L_ASSERT(q0("SELECT count(*) FROM pgq.jobs WHERE state = 'done'") == 260, "not all done");
    L_ASSERT(q0("SELECT count(*) FROM pgq.job_attempts") == 0, "attempts failed");
    /* The counters agree that nothing runs. */
    L_ASSERT(q0("SELECT running FROM pgq.type_use WHERE type = 'lim'") == 0, "counter not 0");
}
END_TEST

/* ---- rate ------------------------------------------------------------------ */

START_TEST(rate_limit_holds_per_window)
{
    const char *jobs = tu_fmt("[job rated]\nhandler = plugin %s nap_job\nrate = 5/1s\n",
                              plugin());
    const char *ini = pool_ini("r.ini", 4, 0, jobs);
    pool_start(ini);
    add_jobs("rated", "{\"sleep_ms\": 0}", 50);
    pool_start(ini);
    pool_start(ini);
    wait_finished(50);
    pools_stop();

    /* Starts per window, the windows as the claim counts them: whole
     * seconds since the epoch (rate = 5/1s). */
    const char *per_window =
        "SELECT floor(extract(epoch FROM started_at) * 1000 / 1000) AS w, count(*) AS n"
        "  FROM pgq.jobs WHERE type = 'rated' GROUP BY 1";
    long long most = q0(tu_fmt("SELECT max(n) FROM (%s) x", per_window));
    long long windows = q0(tu_fmt("SELECT count(*) FROM (%s) x", per_window));
    fprintf(stderr, "limits_test: rate: 50 starts in %lld windows of 1 s, at most %lld in one\n",
            windows, most);
    L_ASSERT(q0("SELECT count(*) FROM pgq.jobs WHERE state = 'done'") == 50, "not all done");
    L_ASSERT(most <= 5, "a window of 1 s had %lld starts; rate = 5/1s", most);
    L_ASSERT(most == 5, "no window reached the rate (most %lld): the test shows nothing", most);
    L_ASSERT(windows >= 10, "50 starts at 5/1s in %lld windows", windows);
}
END_TEST

/* ---- snooze ------------------------------------------------------------------ */

START_TEST(snooze_in_process)
{
    const char *jobs = tu_fmt("[job snz]\nhandler = plugin %s snooze_job\nmax_snoozes = 2\n"
                              "max_retries = 0\n", plugin());
    pool_start(pool_ini("s.ini", 2, 0, jobs));
    pgq_conn *c = tu_connect();
    char err[512];
    pgq_add_result once, always;
    ck_assert(pgq_add(c, "snz", "{\"snooze_ms\": 300, \"times\": 1}", NULL, &once, err,
                      sizeof err) == 0);
    ck_assert(pgq_add(c, "snz", "{\"snooze_ms\": 0, \"times\": 100}", NULL, &always, err,
                      sizeof err) == 0);
    pgq_disconnect(c);
    wait_finished(2);
    pools_stop();

    const char *p1[] = { tu_lld(once.id) }, *p2[] = { tu_lld(always.id) };
    /* Snoozed once, then done at its first attempt, 300 ms or more after
     * the snoozed end. */
    L_ASSERT(tu_int("SELECT count(*) FROM pgq.jobs WHERE id = $1 AND state = 'done'"
                    " AND attempts = 1 AND snoozes = 1", 1, p1) == 1,
             "the once-snoozed job is not done at attempt 1 with one snooze");
    L_ASSERT(tu_int("SELECT count(*) FROM pgq.job_attempts WHERE job_id = $1", 1, p1) == 1 &&
             tu_int("SELECT count(*) FROM pgq.job_attempts a JOIN pgq.jobs j ON j.id = a.job_id"
                    " WHERE a.job_id = $1 AND a.outcome = 'snoozed' AND a.attempt = 1"
                    " AND j.started_at >= a.finished_at + interval '300 ms'", 1, p1) == 1,
             "no snoozed history row, or the job came back before its delay");
    /* Always snoozing: twice (max_snoozes = 2), then refused: the attempt
     * fails with the refusal, and with max_retries = 0 the job is dead, its
     * attempt count still 1. */
    char *why = tu_text("SELECT last_error FROM pgq.jobs WHERE id = $1 AND state = 'dead'"
                        " AND attempts = 1 AND snoozes = 2", 1, p2);
    L_ASSERT(why && strstr(why, "snooze refused") && strstr(why, "max_snoozes = 2"),
             "the always-snoozing job: %s", why ? why : "(not dead at attempt 1 after 2 snoozes)");
    free(why);
    char *hist = tu_text("SELECT string_agg(outcome || ':' || attempt, ' ' ORDER BY id)"
                         " FROM pgq.job_attempts WHERE job_id = $1", 1, p2);
    L_ASSERT(hist && strcmp(hist, "snoozed:1 snoozed:1 failed:1") == 0, "history: %s", hist);
    free(hist);
}
END_TEST

START_TEST(snooze_exec)
{
    const char *pgq = tu_fmt("%s/pgq", tu_bin_dir());
    const char *once = tu_fmt("%s/once.sh", dir), *fails = tu_fmt("%s/fails.sh", dir),
               *refused = tu_fmt("%s/refused.sh", dir);
    tu_write_file(once, tu_fmt("#!/bin/sh\nif [ ! -e '%s/s-'\"$PGQ_JOB_ID\" ]; then\n"
                               "  : > '%s/s-'\"$PGQ_JOB_ID\"\n  '%s' snooze 300ms || exit 1\nfi\n"
                               "exit 0\n", dir, dir, pgq));
    tu_write_file(fails, tu_fmt("#!/bin/sh\n'%s' snooze 1s\necho broke >&2\nexit 3\n", pgq));
    tu_write_file(refused, tu_fmt("#!/bin/sh\n'%s' snooze 1s || exit 1\nexit 0\n", pgq));
    ck_assert_int_eq(chmod(once, 0755) | chmod(fails, 0755) | chmod(refused, 0755), 0);
    const char *jobs = tu_fmt("[job once]\nhandler = exec %s\n\n"
                              "[job fails]\nhandler = exec %s\nmax_retries = 0\n\n"
                              "[job refused]\nhandler = exec %s\nmax_retries = 0\n"
                              "max_snoozes = 0\n", once, fails, refused);
    pool_start(pool_ini("e.ini", 3, 0, jobs));
    add_jobs("once", "{}", 1);
    add_jobs("fails", "{}", 1);
    add_jobs("refused", "{}", 1);
    wait_finished(3);
    pools_stop();

    L_ASSERT(q0("SELECT count(*) FROM pgq.jobs j JOIN pgq.job_attempts a ON a.job_id = j.id"
                " WHERE j.type = 'once' AND j.state = 'done' AND j.attempts = 1"
                " AND j.snoozes = 1 AND a.outcome = 'snoozed' AND a.attempt = 1"
                " AND j.started_at >= a.finished_at + interval '300 ms'") == 1,
             "the exec job did not come back, after its delay, at attempt 1");
    /* The pool learns of the snooze from the completion: its log says
     * snoozed, not done (the metrics and events follow the same answer). */
    L_ASSERT(log_has(&pools[0], "snoozed (attempt 1 not counted)"),
             "the pool did not log the exec job's snooze");
    /* Snoozed, then exited 3: a failed attempt like any other, no snooze. */
    char *why = tu_text("SELECT last_error FROM pgq.jobs WHERE type = 'fails'"
                        " AND state = 'dead' AND snoozes = 0", 0, NULL);
    L_ASSERT(why && strstr(why, "broke"), "fails: %s", why ? why : "(not dead, or snoozed)");
    free(why);
    L_ASSERT(q0("SELECT count(*) FROM pgq.job_attempts a JOIN pgq.jobs j ON j.id = a.job_id"
                " WHERE j.type = 'fails' AND a.outcome = 'snoozed'") == 0, "fails snoozed");
    why = tu_text("SELECT last_error FROM pgq.jobs WHERE type = 'refused' AND state = 'dead'",
                  0, NULL);
    L_ASSERT(why && strstr(why, "snooze refused") && strstr(why, "max_snoozes = 0"),
             "refused: %s", why ? why : "(not dead)");
    free(why);
}
END_TEST

/* pgq snooze outside a handler, and against a job it does not hold. */
START_TEST(snooze_cli_refuses_without_a_lease)
{
    const char *pgq = tu_fmt("%s/pgq", tu_bin_dir());
    tu_run r = tu_run_cmd(NULL, (const char *const[]){ "PGQ_JOB_ID=", NULL }, NULL, pgq,
                          (const char *const[]){ pgq, "--db", tu_db_url(), "snooze", "1s", NULL },
                          60);
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(strstr(r.err, "PGQ_JOB_ID is not set"), "%s", r.err);
    tu_run_free(&r);
    tu_type("t", "default", NULL, 0, 0);
    add_jobs("t", "{}", 1);
    r = tu_run_cmd(NULL, (const char *const[]){ "PGQ_JOB_ID=1",
                       "PGQ_LEASE_TOKEN=00000000-0000-0000-0000-000000000000", NULL }, NULL, pgq,
                   (const char *const[]){ pgq, "--db", tu_db_url(), "snooze", "1s", NULL }, 60);
    ck_assert_int_eq(r.code, 5);
    ck_assert_msg(strstr(r.err, "lease lost"), "%s", r.err);
    tu_run_free(&r);
    r = tu_run_cmd(NULL, (const char *const[]){ "PGQ_JOB_ID=1",
                       "PGQ_LEASE_TOKEN=00000000-0000-0000-0000-000000000000", NULL }, NULL, pgq,
                   (const char *const[]){ pgq, "--db", tu_db_url(), "snooze", "soon", NULL }, 60);
    ck_assert_int_eq(r.code, 2);
    tu_run_free(&r);
}
END_TEST

Suite *limits_suite(void)
{
    Suite *s = suite_create("limits");
    TCase *tc = tcase_create("limits");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, TU_TIMEOUT);
    tcase_add_test(tc, concurrency_holds_across_three_pools);
    tcase_add_test(tc, rate_limit_holds_per_window);
    suite_add_tcase(s, tc);
    tc = tcase_create("snooze");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, TU_TIMEOUT);
    tcase_add_test(tc, snooze_in_process);
    tcase_add_test(tc, snooze_exec);
    tcase_add_test(tc, snooze_cli_refuses_without_a_lease);
    suite_add_tcase(s, tc);
    return s;
}
