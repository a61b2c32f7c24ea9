/*
 * results_test.c -- job results (issue 13, item 2) and the SQL consumer
 * interface (item 5), end to end against a real PostgreSQL.
 *
 * Results: a real pgq-pool runs exec handlers (shell scripts) and the
 * test plugin's result_job (an in-process handler calling
 * pgq_ctx_set_result), and `pgq result` / `pgq show` read what was stored:
 * the exact text, the cut at result_max and its note, stdout that is not
 * UTF-8, the exit codes. Every job's result is its own (the adaptive pool
 * acknowledges several workers' jobs in one statement), in the default
 * and the strict (batch = 1) profile.
 *
 * The SQL consumer: claim, heartbeat, complete, fail and release called
 * as a worker in another language would, through libpq with untyped
 * parameters (as node-postgres and pgx send them: one function per name,
 * no overload to choose between), each fenced by the lease token: a
 * wrong token changes nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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

static char dir[64];

/* ---- the pool ---------------------------------------------------------------- */

static pid_t pool_pid;
static char pool_log_path[128];

static char *pool_log(void)
{
    FILE *f = fopen(pool_log_path, "r");
    if (!f)
        return strdup("");
    char *s = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&s, &cap, '\0', f);
    fclose(f);
    if (n < 0) {
        free(s);
        return strdup("");
    }
    return s;
}

static bool log_has(const char *needle)
{
    char *s = pool_log();
    bool found = strstr(s, needle) != NULL;
    free(s);
    return found;
}

static void dump_log(void)
{
    char *s = pool_log();
    fprintf(stderr, "---- pool log %s:\n%s", pool_log_path, s);
    free(s);
}

#define R_ASSERT(cond, ...)                                                                  \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            dump_log();                                                                      \
            ck_abort_msg(__VA_ARGS__);                                                       \
        }                                                                                    \
    } while (0)

/* A pool.ini: the given [pool] batch line ("" for the default) and job
 * sections, short test timings. */
static const char *write_ini(const char *batch, const char *jobs)
{
    const char *path = tu_fmt("%s/pool.ini", dir);
    tu_write_file(path, tu_fmt("[pool]\nworkers = 4\n%slease_ttl = 5s\nheartbeat = 500ms\n"
                               "poll = 100ms\nshutdown_timeout = 10s\n\n%s", batch, jobs));
    return path;
}

static void pool_start(const char *ini)
{
    snprintf(pool_log_path, sizeof pool_log_path, "%s/pool.log", dir);
    const char *bin = tu_fmt("%s/pgq-pool", tu_bin_dir());
    pid_t pid = tu_spawn_logged(pool_log_path, NULL, bin,
                                (const char *const[]){ "pgq-pool", "-c", ini, "--db",
                                                       tu_db_url(), NULL });
    pool_pid = pid;
    int64_t end = tu_now_ms() + WAIT_MS;
    while (!log_has("pool: started ") && tu_now_ms() < end && waitpid(pid, NULL, WNOHANG) == 0)
        tu_sleep_ms(25);
    R_ASSERT(log_has("pool: started "), "the pool did not start");
}

/* SIGTERM, and a clean exit. */
static void pool_stop(void)
{
    int st = 0;
    if (pool_pid <= 0)
        return;
    ck_assert_int_eq(kill(pool_pid, SIGTERM), 0);
    int64_t end = tu_now_ms() + WAIT_MS;
    pid_t got;
    while ((got = waitpid(pool_pid, &st, WNOHANG)) == 0 && tu_now_ms() < end)
        tu_sleep_ms(25);
    R_ASSERT(got == pool_pid, "the pool did not exit within 60 s");
    pool_pid = 0;
    R_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the pool exited with status 0x%x", st);
}

static const char *script(const char *name, const char *body)
{
    const char *path = tu_fmt("%s/%s", dir, name);
    tu_write_file(path, tu_fmt("#!/bin/sh\n%s", body));
    ck_assert_int_eq(chmod(path, 0755), 0);
    return path;
}

static const char *plugin(void)
{
    return tu_fmt("%s/tests/plugins/pool_plugin.so", tu_bin_dir());
}

static long long add(const char *type, const char *payload)
{
    const char *p[] = { type, payload };
    return tu_int("SELECT id FROM pgq.add($1, $2::jsonb)", 2, p);
}

static const char *state_of(long long id)
{
    const char *p[] = { tu_lld(id) };
    char *s = tu_text("SELECT state FROM pgq.jobs WHERE id = $1", 1, p);
    const char *r = tu_fmt("%s", s ? s : "(gone)");
    free(s);
    return r;
}

/* Wait until no job is ready or running. */
static void wait_finished(void)
{
    int64_t end = tu_now_ms() + WAIT_MS;
    long long left;
    while ((left = tu_int("SELECT count(*) FROM pgq.jobs WHERE state IN ('ready', 'running')",
                          0, NULL)) > 0 && tu_now_ms() < end)
        tu_sleep_ms(50);
    R_ASSERT(left == 0, "%lld jobs still unfinished after 60 s", left);
}

/* Texts the checks below return, freed by the teardown (results may be
 * larger than tu_fmt's buffers). */
static char *held[512];
static int nkept;

static const char *keep(char *s)
{
    ck_assert_int_lt(nkept, 512);
    held[nkept++] = s;
    return s;
}

/* ---- pgq ----------------------------------------------------------------------- */

struct run {
    int code;
    const char *out, *err;
};

static struct run pgq(const char *cmd, long long id, const char *opt)
{
    const char *argv[] = { "pgq", "--db", tu_db_url(), cmd, tu_lld(id), opt, NULL };
    tu_run r = tu_run_cmd(NULL, NULL, NULL, tu_fmt("%s/pgq", tu_bin_dir()), argv, 60);
    return (struct run){ r.code, keep(r.out), keep(r.err) };
}

/* The stored result and note of job id (NULL: none). */
static const char *db_result(long long id)
{
    const char *p[] = { tu_lld(id) };
    return keep(tu_text("SELECT pgq.result($1)", 1, p));
}

static const char *db_note(long long id)
{
    const char *p[] = { tu_lld(id) };
    return keep(tu_text("SELECT (SELECT result_note FROM pgq.job_results WHERE job_id = $1)", 1,
                        p));
}

/* ---- fixtures ------------------------------------------------------------------- */

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/pgq-results-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    pool_pid = 0;
    tu_reset();
}

static void teardown(void)
{
    if (pool_pid > 0) {
        kill(pool_pid, SIGKILL);
        waitpid(pool_pid, NULL, 0);
        pool_pid = 0;
    }
    for (int i = 0; i < nkept; i++)
        free(held[i]);
    nkept = 0;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "results_test: could not remove %s\n", dir);
    tu_check_invariants();
}

/* ---- exec: stdout is the result --------------------------------------------------- */

/* _i: 0 the default (adaptive: several workers' completions in one
 * statement), 1 strict (batch = 1: each worker's own). */
START_TEST(exec_stdout_comes_back_from_pgq_result)
{
    const char *sh = script("echo.sh", "cat > /dev/null\nprintf 'job %s\\nline two' \"$PGQ_JOB_ID\"\n");
    const char *ini = write_ini(_i ? "batch = 1\n" : "",
                                tu_fmt("[job echo]\nhandler = exec %s\n", sh));
    enum { N = 40 };
    long long ids[N];

    pool_start(ini);
    for (int i = 0; i < N; i++)
        ids[i] = add("echo", "{}");
    wait_finished();
    pool_stop();
    for (int i = 0; i < N; i++) {
        const char *want = tu_fmt("job %lld\nline two", ids[i]);
        ck_assert_str_eq(state_of(ids[i]), "done");
        const char *got = db_result(ids[i]);
        R_ASSERT(got && strcmp(got, want) == 0, "job %lld: result [%s], want [%s]", ids[i],
                 got ? got : "(null)", want);
        ck_assert_ptr_null(db_note(ids[i]));
    }
    /* raw: exactly the bytes, nothing added */
    struct run r = pgq("result", ids[7], NULL);
    ck_assert_msg(r.code == 0, "exit %d: %s", r.code, r.err);
    ck_assert_str_eq(r.out, tu_fmt("job %lld\nline two", ids[7]));
    ck_assert_str_eq(r.err, "");
    r = pgq("show", ids[7], NULL);
    ck_assert_int_eq(r.code, 0);
    ck_assert_msg(strstr(r.out, tu_fmt("\nresult: job %lld\n    line two\n", ids[7])), "%s", r.out);
    r = pgq("show", ids[7], "--json");
    ck_assert_int_eq(r.code, 0);
    ck_assert_msg(strstr(r.out, tu_fmt("\"result\":\"job %lld\\nline two\",\"result_note\":null",
                                       ids[7])), "%s", r.out);
}
END_TEST

/* Megabytes on stdout (and stderr, from a command that does not read its
 * payload): the first result_max bytes are stored, cut before a character
 * that does not fit, and the cut is said: in the note (pgq show, pgq
 * result's stderr, pgq.job_results) and in the pool's log. */
START_TEST(exec_stdout_is_cut_at_result_max_and_said)
{
    const char *big = script("big.sh", "head -c 1000000 /dev/zero | tr '\\0' a\n"
                                       "head -c 1000000 /dev/zero >&2\n");
    const char *accents = script("accents.sh", "cat > /dev/null\ni=0\n"
                                               "while [ $i -lt 150 ]; do printf '\\303\\251'; "
                                               "i=$((i+1)); done\n");
    const char *ini = write_ini("", tu_fmt("[job big]\nhandler = exec %s\n\n"
                                           "[job accents]\nhandler = exec %s\nresult_max = 101\n",
                                           big, accents));
    pool_start(ini);
    char *payload = malloc(600000);
    ck_assert_ptr_nonnull(payload);
    snprintf(payload, 20, "{\"pad\": \"");
    memset(payload + 9, 'p', 500000);
    strcpy(payload + 500009, "\"}");
    long long b = add("big", payload);
    free(payload);
    long long a = add("accents", "{}");
    wait_finished();
    pool_stop();

    ck_assert_str_eq(state_of(b), "done");
    const char *got = db_result(b);
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_eq(strlen(got), 65536);
    ck_assert_uint_eq(strspn(got, "a"), 65536);
    ck_assert_str_eq(db_note(b), "stdout cut to the first 65536 of 1000000 bytes (result_max = "
                                 "65536 bytes)");

    /* 101 bytes allowed: 50 whole characters (100 bytes) kept */
    ck_assert_str_eq(state_of(a), "done");
    got = db_result(a);
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_eq(strlen(got), 100);
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(strncmp(got + 2 * i, "\xc3\xa9", 2), 0);
    const char *note = "stdout cut to the first 100 of 300 bytes (result_max = 101 bytes)";
    ck_assert_str_eq(db_note(a), note);
    struct run r = pgq("result", a, NULL);
    ck_assert_msg(r.code == 0, "exit %d: %s", r.code, r.err);
    ck_assert_str_eq(r.out, got);
    ck_assert_str_eq(r.err, tu_fmt("pgq result: job %lld: %s\n", a, note));
    r = pgq("show", a, NULL);
    ck_assert_msg(strstr(r.out, tu_fmt("\nresult_note: %s\n", note)), "%s", r.out);
    R_ASSERT(log_has(tu_fmt("job=%lld type=accents: result: %s", a, note)),
             "the pool's log does not say the result was cut");
    R_ASSERT(log_has(tu_fmt("job=%lld type=big: result: stdout cut to the first 65536 of "
                            "1000000 bytes", b)), "the pool's log does not say the cut");
}
END_TEST

/* stdout that is not UTF-8 text is not stored (nor escaped, nor
 * guessed): the job is done, the note says why, `pgq result` exits 5. An
 * empty stdout is no result. result_max = 0 keeps none. */
START_TEST(exec_stdout_not_utf8_is_not_stored)
{
    const char *bin = script("bin.sh", "printf 'ok\\377\\376'\n");
    const char *quiet = script("quiet.sh", "exit 0\n");
    const char *kept = script("kept.sh", "echo something\n");
    const char *ini = write_ini("", tu_fmt("[job bin]\nhandler = exec %s\n\n"
                                           "[job quiet]\nhandler = exec %s\n\n"
                                           "[job nokeep]\nhandler = exec %s\nresult_max = 0\n",
                                           bin, quiet, kept));
    pool_start(ini);
    long long b = add("bin", "{}"), q = add("quiet", "{}"), k = add("nokeep", "{}");
    wait_finished();
    pool_stop();

    const char *note = "not stored: stdout is not UTF-8 text (byte 2 of 4 starts no character; "
                       "NUL bytes and other encodings cannot be stored)";
    ck_assert_str_eq(state_of(b), "done");
    ck_assert_ptr_null(db_result(b));
    ck_assert_str_eq(db_note(b), note);
    struct run r = pgq("result", b, NULL);
    ck_assert_int_eq(r.code, 5);
    ck_assert_str_eq(r.out, "");
    ck_assert_str_eq(r.err, tu_fmt("pgq result: job %lld: no result: %s\n", b, note));
    R_ASSERT(log_has(tu_fmt("job=%lld type=bin: result: %s", b, note)), "not in the log");

    for (int i = 0; i < 2; i++) {
        long long id = i ? k : q;
        ck_assert_str_eq(state_of(id), "done");
        ck_assert_ptr_null(db_result(id));
        ck_assert_ptr_null(db_note(id));
        r = pgq("result", id, NULL);
        ck_assert_int_eq(r.code, 5);
        ck_assert_str_eq(r.err, tu_fmt("pgq result: job %lld: no result (done without one)\n", id));
    }
}
END_TEST

/* ---- in-process: pgq_ctx_set_result --------------------------------------------- */

START_TEST(inprocess_result_comes_back_and_is_cut)
{
    const char *ini = write_ini(_i ? "batch = 1\n" : "",
                                tu_fmt("[job res]\nhandler = plugin %s result_job\n\n"
                                       "[job small]\nhandler = plugin %s result_job\n"
                                       "result_max = 64\n\n"
                                       "[job failing]\nhandler = plugin %s result_job\n"
                                       "max_retries = 0\n",
                                       plugin(), plugin(), plugin()));
    enum { N = 30 };
    long long ids[N];
    pool_start(ini);
    for (int i = 0; i < N; i++)
        ids[i] = add("res", "{}");
    long long s = add("small", "{\"repeat\": 100}");
    long long f = add("failing", "{\"fail\": 1}");
    wait_finished();
    pool_stop();

    /* each job its own result; the text that was not UTF-8 was refused (-1) */
    for (int i = 0; i < N; i++) {
        const char *want = tu_fmt("job %lld: refused=-1", ids[i]);
        const char *got = db_result(ids[i]);
        R_ASSERT(got && strcmp(got, want) == 0, "job %lld: result [%s], want [%s]", ids[i],
                 got ? got : "(null)", want);
    }
    struct run r = pgq("result", ids[3], NULL);
    ck_assert_msg(r.code == 0, "exit %d: %s", r.code, r.err);
    ck_assert_str_eq(r.out, tu_fmt("job %lld: refused=-1", ids[3]));

    /* cut to 64 bytes at a whole character, and said */
    const char *head = tu_fmt("job %lld: refused=-1", s);
    size_t hl = strlen(head), total = hl + 200, kept = hl + (64 - hl) / 2 * 2;
    const char *got = db_result(s);
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_eq(strlen(got), kept);
    ck_assert_int_eq(strncmp(got, head, hl), 0);
    ck_assert_str_eq(db_note(s), tu_fmt("result cut to the first %zu of %zu bytes (result_max = "
                                        "64 bytes)", kept, total));

    /* a failed attempt stores no result */
    ck_assert_str_eq(state_of(f), "dead");
    ck_assert_ptr_null(db_result(f));
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.job_attempts WHERE result IS NOT NULL"
                            " AND outcome <> 'done'", 0, NULL), 0);
    r = pgq("result", f, NULL);
    ck_assert_int_eq(r.code, 5);
    ck_assert_str_eq(r.err, tu_fmt("pgq result: job %lld: no result (dead)\n", f));
}
END_TEST

/* ---- pgq result: exit codes ----------------------------------------------------- */

START_TEST(pgq_result_exit_codes)
{
    tu_type("t", "default", "", 5, 1000);
    struct run r = pgq("result", 987654321, NULL);
    ck_assert_int_eq(r.code, 3);
    ck_assert_str_eq(r.out, "");
    ck_assert_str_eq(r.err, "pgq result: job 987654321: no such job\n");

    long long id = add("t", "{}");
    r = pgq("result", id, NULL);
    ck_assert_int_eq(r.code, 4);
    ck_assert_str_eq(r.err, tu_fmt("pgq result: job %lld: no result yet (ready)\n", id));

    char *tok = tu_text("SELECT lease_token FROM pgq.claim()", 0, NULL);
    ck_assert_ptr_nonnull(tok);
    r = pgq("result", id, NULL);
    ck_assert_int_eq(r.code, 4);
    ck_assert_str_eq(r.err, tu_fmt("pgq result: job %lld: no result yet (running)\n", id));

    const char *p[] = { tu_lld(id), tok, "{\"line\": \"ünïcode\"}\n" };
    ck_assert_int_eq(tu_int("SELECT pgq.complete($1, $2, $3)::int", 3, p), 1);
    free(tok);
    r = pgq("result", id, NULL);
    ck_assert_int_eq(r.code, 0);
    ck_assert_str_eq(r.out, "{\"line\": \"ünïcode\"}\n");

    r = pgq("result", 0, NULL);
    ck_assert_int_eq(r.code, 2);
}
END_TEST

/* ---- the SQL consumer ------------------------------------------------------------- */

/* Untyped parameters (paramTypes NULL), as drivers in other languages
 * send them; one row expected. */
static PGresult *sql1(const char *sql, int n, const char *const *params)
{
    PGresult *r = PQexecParams(tu_pg(), sql, n, NULL, params, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
    return r;
}

static const char *sql_text(const char *sql, int n, const char *const *params)
{
    PGresult *r = sql1(sql, n, params);
    ck_assert_int_eq(PQntuples(r), 1);
    const char *v = PQgetisnull(r, 0, 0) ? "(null)" : tu_fmt("%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

/* The job's row as text, to see that a fenced-off call changed nothing. */
static const char *row_of(long long id)
{
    const char *p[] = { tu_lld(id) };
    return sql_text("SELECT j::text FROM pgq.jobs j WHERE id = $1", 1, p);
}

static const char *history_count(long long id)
{
    const char *p[] = { tu_lld(id) };
    return sql_text("SELECT count(*) FROM pgq.job_attempts WHERE job_id = $1", 1, p);
}

START_TEST(sql_consumer_claim_heartbeat_complete)
{
    static const char wrong[] = "00000000-0000-4000-8000-000000000000";
    tu_type("mail", "emails", "", 5, 1000);
    long long id = add("mail", "{\"to\": \"a@example.com\"}");

    /* nothing in the default queue; the named queue gives the job */
    PGresult *r = sql1("SELECT id FROM pgq.claim()", 0, NULL);
    ck_assert_int_eq(PQntuples(r), 0);
    PQclear(r);
    const char *cp[] = { "{emails}", "node-1", "60000" };
    r = sql1("SELECT id, lease_token, lease_owner, attempts, payload->>'to' FROM "
             "pgq.claim(queues => $1, worker => $2, lease_ttl_ms => $3)", 3, cp);
    ck_assert_int_eq(PQntuples(r), 1);
    ck_assert_str_eq(PQgetvalue(r, 0, 0), tu_lld(id));
    const char *tok = tu_fmt("%s", PQgetvalue(r, 0, 1));
    ck_assert_str_eq(PQgetvalue(r, 0, 2), "node-1");
    ck_assert_str_eq(PQgetvalue(r, 0, 3), "1");
    ck_assert_str_eq(PQgetvalue(r, 0, 4), "a@example.com");
    PQclear(r);

    /* heartbeat: a wrong token changes nothing */
    const char *before = row_of(id);
    const char *hw[] = { tu_lld(id), wrong };
    ck_assert_str_eq(sql_text("SELECT pgq.heartbeat($1, $2)", 2, hw), "f");
    ck_assert_str_eq(row_of(id), before);
    const char *hp[] = { tu_lld(id), tok, "3600000" };
    ck_assert_str_eq(sql_text("SELECT pgq.heartbeat($1, $2, lease_ttl_ms => $3)", 3, hp), "t");
    const char *ip[] = { tu_lld(id) };
    ck_assert_str_eq(sql_text("SELECT lease_expires_at > now() + interval '59 minutes' FROM "
                              "pgq.jobs WHERE id = $1", 1, ip), "t");

    /* complete: a wrong token changes nothing, the right one stores the result */
    before = row_of(id);
    const char *kw[] = { tu_lld(id), wrong, "stolen" };
    ck_assert_str_eq(sql_text("SELECT pgq.complete($1, $2, result => $3)", 3, kw), "f");
    ck_assert_str_eq(row_of(id), before);
    ck_assert_str_eq(history_count(id), "0");
    const char *kp[] = { tu_lld(id), tok, "sent: 250 OK" };
    ck_assert_str_eq(sql_text("SELECT pgq.complete($1, $2, result => $3)", 3, kp), "t");
    ck_assert_str_eq(state_of(id), "done");
    ck_assert_str_eq(sql_text("SELECT pgq.result($1)", 1, ip), "sent: 250 OK");
    /* done: the token holds nothing any more */
    ck_assert_str_eq(sql_text("SELECT pgq.heartbeat($1, $2)", 2, kp), "f");
    ck_assert_str_eq(sql_text("SELECT pgq.complete($1, $2)", 2, kp), "f");
    ck_assert_str_eq(sql_text("SELECT pgq.result($1)", 1, ip), "sent: 250 OK");

    /* complete without a result, and the previous release's batch form */
    long long id2 = add("mail", "{\"to\": \"b@example.com\"}");
    const char *q[] = { "{emails}" };
    char *tok2 = tu_text("SELECT lease_token FROM pgq.claim($1)", 1, q);
    const char *k2[] = { tu_lld(id2), tok2 };
    ck_assert_str_eq(sql_text("SELECT count(*) FROM pgq.end_attempts('done', ARRAY[$1::bigint], "
                              "ARRAY[$2::uuid])", 2, k2), "1");
    free(tok2);
    ck_assert_str_eq(state_of(id2), "done");
    const char *ip2[] = { tu_lld(id2) };
    ck_assert_str_eq(sql_text("SELECT pgq.result($1)", 1, ip2), "(null)");
}
END_TEST

START_TEST(sql_consumer_claim_fail_release)
{
    static const char wrong[] = "00000000-0000-4000-8000-000000000000";
    tu_type("t", "default", "", 1, 60000);
    long long id = add("t", "{}");
    const char *ip[] = { tu_lld(id) };

    /* fail: a wrong token changes nothing (no row) */
    char *tok = tu_text("SELECT lease_token FROM pgq.claim()", 0, NULL);
    const char *before = row_of(id);
    const char *fw[] = { tu_lld(id), wrong, "smtp 451" };
    PGresult *r = sql1("SELECT * FROM pgq.fail($1, $2, error => $3)", 3, fw);
    ck_assert_int_eq(PQntuples(r), 0);
    PQclear(r);
    ck_assert_str_eq(row_of(id), before);
    ck_assert_str_eq(history_count(id), "0");
    /* the right one: retried later (backoff 60 s), with the error */
    const char *fp[] = { tu_lld(id), tok, "smtp 451" };
    r = sql1("SELECT state, run_at > now() + interval '30 seconds', attempts FROM "
             "pgq.fail($1, $2, error => $3)", 3, fp);
    ck_assert_int_eq(PQntuples(r), 1);
    ck_assert_str_eq(PQgetvalue(r, 0, 0), "ready");
    ck_assert_str_eq(PQgetvalue(r, 0, 1), "t");
    ck_assert_str_eq(PQgetvalue(r, 0, 2), "1");
    PQclear(r);
    free(tok);
    ck_assert_str_eq(sql_text("SELECT last_error FROM pgq.jobs WHERE id = $1", 1, ip), "smtp 451");
    ck_assert_str_eq(sql_text("SELECT error FROM pgq.job_attempts WHERE job_id = $1", 1, ip),
                     "smtp 451");

    /* release: fenced, gives the attempt back */
    tu_exec("UPDATE pgq.jobs SET run_at = now() WHERE id = $1", 1, ip);
    tok = tu_text("SELECT lease_token FROM pgq.claim()", 0, NULL);
    ck_assert_ptr_nonnull(tok);
    before = row_of(id);
    const char *rw[] = { tu_lld(id), wrong };
    ck_assert_str_eq(sql_text("SELECT pgq.release($1, $2)", 2, rw), "f");
    ck_assert_str_eq(row_of(id), before);
    const char *rp[] = { tu_lld(id), tok };
    ck_assert_str_eq(sql_text("SELECT pgq.release($1, $2)", 2, rp), "t");
    free(tok);
    ck_assert_str_eq(state_of(id), "ready");
    ck_assert_str_eq(sql_text("SELECT attempts FROM pgq.jobs WHERE id = $1", 1, ip), "1");

    /* fail with every default (error NULL too): 'failed'; the last retry
     * spent, the job is dead */
    tok = tu_text("SELECT lease_token FROM pgq.claim()", 0, NULL);
    ck_assert_ptr_nonnull(tok);
    const char *fd[] = { tu_lld(id), tok };
    r = sql1("SELECT state FROM pgq.fail($1, $2, NULL, NULL)", 2, fd);
    ck_assert_int_eq(PQntuples(r), 1);
    ck_assert_str_eq(PQgetvalue(r, 0, 0), "dead");
    PQclear(r);
    free(tok);
    ck_assert_str_eq(sql_text("SELECT last_error FROM pgq.jobs WHERE id = $1", 1, ip), "failed");

    /* the pools' own call (eight arguments) still resolves */
    long long id2 = add("t", "{}");
    tok = tu_text("SELECT lease_token FROM pgq.claim()", 0, NULL);
    const char *old[] = { tu_lld(id2), tok, "boom" };
    r = sql1("SELECT state FROM pgq.fail($1, $2::uuid, $3, 'failed', NULL, NULL, NULL, NULL)", 3,
             old);
    ck_assert_int_eq(PQntuples(r), 1);
    ck_assert_str_eq(PQgetvalue(r, 0, 0), "ready");
    PQclear(r);
    free(tok);
    /* an unknown outcome is refused, naming it */
    r = PQexec(tu_pg(), "SELECT * FROM pgq.fail(1, gen_random_uuid(), 'x', 'done')");
    ck_assert_int_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
    ck_assert_ptr_nonnull(strstr(PQresultErrorMessage(r), "outcome must be failed or "
                                 "lease_expired, not \"done\""));
    PQclear(r);
}
END_TEST

/* The invariant a result adds can fail: a result on an attempt that did
 * not end done is listed. */
START_TEST(invariant_result_only_on_done_attempts)
{
    tu_type("t", "default", "", 5, 1000);
    long long id = add("t", "{}");
    char *tok = tu_text("SELECT lease_token FROM pgq.claim()", 0, NULL);
    const char *fp[] = { tu_lld(id), tok };
    tu_exec("SELECT * FROM pgq.fail($1, $2, 'x')", 2, fp);
    free(tok);
    tu_exec("UPDATE pgq.job_attempts SET result = 'forged'", 0, NULL);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.check_invariants() WHERE invariant = "
                            "'result on an attempt that did not end done'", 0, NULL), 1);
    tu_exec("UPDATE pgq.job_attempts SET result = NULL", 0, NULL);
}
END_TEST

Suite *results_suite(void)
{
    Suite *s = suite_create("results");
    TCase *tc = tcase_create("results");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, TU_TIMEOUT);
    tcase_add_loop_test(tc, exec_stdout_comes_back_from_pgq_result, 0, 2);
    tcase_add_test(tc, exec_stdout_is_cut_at_result_max_and_said);
    tcase_add_test(tc, exec_stdout_not_utf8_is_not_stored);
    tcase_add_loop_test(tc, inprocess_result_comes_back_and_is_cut, 0, 2);
    tcase_add_test(tc, pgq_result_exit_codes);
    tcase_add_test(tc, sql_consumer_claim_heartbeat_complete);
    tcase_add_test(tc, sql_consumer_claim_fail_release);
    tcase_add_test(tc, invariant_result_only_on_done_attempts);
    suite_add_tcase(s, tc);
    return s;
}
