/* The state machine's one home (migrations/state_machine.sql):
 *   - no .c file of the library or the programs writes a job row;
 *   - every function named in README's state-machine table exists;
 *   - pgq.check_invariants() reports each kind of broken row;
 *   - claim hints: parsing and moving them (core/hints.c), and a claim
 *     that stays flat while another session pins the xmin horizon. */
#include <dirent.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

/* ---- no C code writes job rows --------------------------------------------- */

/* Join adjacent C string literals ("UPDATE pgq." "jobs" across lines), so
 * that a statement split over lines is seen whole. */
static void join_literals(char *s)
{
    char *o = s;
    for (char *p = s; *p;) {
        if (*p == '"') {
            char *q = p + 1;
            while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
                q++;
            if (*q == '"' && q > p + 1) {
                p = q + 1;
                continue;
            }
        }
        *o++ = *p++;
    }
    *o = '\0';
}

/* The first statement in text that writes a job row, or NULL. */
static const char *writes_job_rows(char *text, char *found, size_t foundlen)
{
    static regex_t re;
    static bool compiled;
    if (!compiled) {
        ck_assert_int_eq(regcomp(&re, "(update|insert[[:space:]]+into|delete[[:space:]]+from|"
                                      "truncate([[:space:]]+table)?|merge[[:space:]]+into|copy)"
                                      "[[:space:]]+(only[[:space:]]+)?pgq[.](jobs|job_attempts|"
                                      "effects|job_deps)([^a-z_]|$)",
                                 REG_EXTENDED | REG_ICASE), 0);
        compiled = true;
    }
    join_literals(text);
    regmatch_t m;
    if (regexec(&re, text, 1, &m, 0) != 0)
        return NULL;
    size_t n = (size_t)(m.rm_eo - m.rm_so);
    snprintf(found, foundlen, "%.*s", (int)(n < foundlen ? n : foundlen - 1), text + m.rm_so);
    return found;
}

START_TEST(scanner_finds_job_row_writes)
{
    /* The scanner itself, so that the test below can fail. */
    char found[128];
    char a[] = "PQexec(c, \"UPDATE pgq.jobs SET state = 'done'\");";
    char b[] = "\"WITH x AS (DELETE FROM pgq.\"\n    \"job_attempts WHERE true)\"";
    char c[] = "\"insert into  pgq.effects (job_id) values (1)\"";
    char d[] = "\"SELECT * FROM pgq.jobs; UPDATE pgq.workers SET x = 1\"";
    char e[] = "\"UPDATE pgq.jobs_archive SET x = 1\"";
    ck_assert_ptr_nonnull(writes_job_rows(a, found, sizeof found));
    ck_assert_ptr_nonnull(writes_job_rows(b, found, sizeof found));
    ck_assert_ptr_nonnull(writes_job_rows(c, found, sizeof found));
    ck_assert_ptr_null(writes_job_rows(d, found, sizeof found));
    ck_assert_ptr_null(writes_job_rows(e, found, sizeof found));
}
END_TEST

START_TEST(no_c_file_writes_job_rows)
{
    /* Tests and benchmarks may (they emulate old clients and break rows on
     * purpose); the library and the programs may not. */
    static const char *const dirs[] = { "core", "pool", "cli", "tui", "config", "examples" };
    int files = 0;
    for (size_t d = 0; d < sizeof dirs / sizeof dirs[0]; d++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/../%s", tu_test_dir(), dirs[d]);
        DIR *dp = opendir(dir);
        ck_assert_msg(dp != NULL, "cannot open %s", dir);
        struct dirent *de;
        while ((de = readdir(dp)) != NULL) {
            size_t n = strlen(de->d_name);
            if (n < 3 || (strcmp(de->d_name + n - 2, ".c") != 0 &&
                          strcmp(de->d_name + n - 2, ".h") != 0))
                continue;
            char path[8192], found[128];
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            char *text = tu_slurp(path);
            const char *w = writes_job_rows(text, found, sizeof found);
            ck_assert_msg(w == NULL, "%s/%s writes job rows (\"%s\"): call a function of "
                          "migrations/state_machine.sql instead", dirs[d], de->d_name, w);
            free(text);
            files++;
        }
        closedir(dp);
    }
    ck_assert_int_gt(files, 20);
}
END_TEST

/* ---- README's table names functions that exist ------------------------------ */

START_TEST(readme_state_table_functions_exist)
{
    static const char begin[] = "<!-- state-machine:begin -->", end[] = "<!-- state-machine:end -->";
    char path[4096];
    snprintf(path, sizeof path, "%s/../README.md", tu_test_dir());
    char *readme = tu_slurp(path);
    char *a = strstr(readme, begin), *b = a ? strstr(a, end) : NULL;
    ck_assert_msg(a && b, "README.md lacks the state-machine table markers");
    *b = '\0';
    int named = 0;
    for (char *p = strstr(a, "`pgq."); p; p = strstr(p + 1, "`pgq.")) {
        char name[128];
        size_t k = 0;
        for (const char *q = p + 5; k + 1 < sizeof name && (*q == '_' || (*q >= 'a' && *q <= 'z'));
             q++)
            name[k++] = *q;
        name[k] = '\0';
        const char *params[] = { name };
        ck_assert_msg(tu_int("SELECT count(*) FROM pg_proc WHERE proname = $1"
                             " AND pronamespace = 'pgq'::regnamespace", 1, params) > 0,
                      "README's state-machine table names pgq.%s, which does not exist", name);
        named++;
    }
    ck_assert_int_ge(named, 12);
    free(readme);
}
END_TEST

/* ---- the invariant check sees what the state machine makes impossible ------- */

static void setup(void)
{
    tu_reset();
    tu_type("t", "default", "", 2, 1000);
}

/* Break job 1 with `set` (an UPDATE's SET list) and assert that
 * check_invariants names `invariant`; then mend it. */
static void expect_violation(const char *set, const char *invariant)
{
    char sql[512];
    tu_exec("BEGIN", 0, NULL);
    snprintf(sql, sizeof sql, "UPDATE pgq.jobs SET %s WHERE id = 1", set);
    tu_exec(sql, 0, NULL);
    const char *params[] = { invariant };
    long long n = tu_int("SELECT count(*) FROM pgq.check_invariants() WHERE job_id = 1"
                         " AND invariant = $1", 1, params);
    tu_exec("ROLLBACK", 0, NULL);
    ck_assert_msg(n == 1, "%s: check_invariants did not report \"%s\"", set, invariant);
}

START_TEST(check_invariants_reports_each_violation)
{
    pgq_conn *c = tu_connect();
    char err[512];
    pgq_add_result r;
    ck_assert_msg(pgq_add(c, "t", "{}", NULL, &r, err, sizeof err) == 0, "%s", err);
    tu_check_invariants();   /* a fresh job is fine */

    expect_violation("state = 'paused'", "unknown state");
    expect_violation("state = 'running', attempts = 1", "running without a lease");
    expect_violation("lease_token = gen_random_uuid()", "lease on a job that is not running");
    expect_violation("attempts = 9", "attempts beyond max_retries + 1");
    expect_violation("attempts = -1", "negative attempts or max_retries");
    expect_violation("state = 'running', lease_token = gen_random_uuid(), lease_owner = 'w',"
                     " lease_expires_at = now()", "running without an attempt");
    expect_violation("attempts = 3", "ready with no retries left");
    expect_violation("state = 'dead', attempts = 1, finished_at = now()", "dead with retries left");
    expect_violation("state = 'done', finished_at = now()", "done without an attempt");
    expect_violation("state = 'cancelled'", "finished without finished_at");
    expect_violation("finished_at = now()", "unfinished with finished_at");
    expect_violation("run_at = 'infinity'", "run_at not finite");
    expect_violation("snooze_ms = 1000", "snooze asked by a job that is not running");
    expect_violation("snoozes = -1", "negative snooze count");

    /* history and effects */
    pgq_job *j;
    const char *q[] = { "default" };
    ck_assert_msg(pgq_claim(c, q, 1, "w", 30000, &j, err, sizeof err) == 0 && j, "%s", err);
    const char *params[] = { j->lease_token };
    tu_exec("BEGIN", 0, NULL);
    tu_exec("INSERT INTO pgq.effects (job_id, key, state, attempt, lease_token)"
            " VALUES (1, 'k', 'started', 7, $1::uuid)", 1, params);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.check_invariants() WHERE invariant ="
                            " 'effect started under the current lease at another attempt'",
                            0, NULL), 1);
    tu_exec("ROLLBACK", 0, NULL);
    tu_exec("BEGIN", 0, NULL);
    tu_exec("INSERT INTO pgq.job_attempts (job_id, attempt, outcome, finished_at)"
            " VALUES (1, 1, 'failed', now()), (1, 2, 'failed', now() - interval '1 hour')",
            0, NULL);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.check_invariants() WHERE invariant ="
                            " 'history out of order'", 0, NULL), 1);
    tu_exec("ROLLBACK", 0, NULL);
    tu_exec("BEGIN", 0, NULL);
    tu_exec("INSERT INTO pgq.job_attempts (job_id, attempt, outcome)"
            " VALUES (1, 1, 'done'), (1, 2, 'failed')", 0, NULL);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.check_invariants() WHERE invariant ="
                            " 'history after a done attempt'", 0, NULL), 1);
    tu_exec("ROLLBACK", 0, NULL);

    /* limits: a running job of a limited type that its claim did not mark
     * is not counted; more running than the concurrency; a rate window
     * over its rate */
    tu_exec("BEGIN", 0, NULL);
    tu_exec("UPDATE pgq.job_types SET concurrency = 1, rate_count = 1, rate_ms = 60000"
            " WHERE type = 't'", 0, NULL);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.check_invariants()", 0, NULL), 0);
    tu_exec("UPDATE pgq.jobs SET limited = NULL WHERE id = 1", 0, NULL);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.check_invariants() WHERE invariant ="
                            " 'running job of a limited type not counted'", 0, NULL), 1);
    tu_exec("UPDATE pgq.jobs SET limited = true WHERE id = 1", 0, NULL);
    tu_exec("UPDATE pgq.type_limits SET set_at = now() - interval '1 hour',"
            " window_no = pgq.rate_window(rate_ms), window_starts = 2", 0, NULL);
    tu_exec("INSERT INTO pgq.jobs (queue, type, payload, state, attempts, lease_token,"
            " lease_owner, lease_expires_at, started_at, limited)"
            " VALUES ('default', 't', '{}', 'running', 1, gen_random_uuid(), 'w',"
            " now() + interval '1 minute', now(), true)", 0, NULL);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.check_invariants() WHERE invariant ="
                            " 'more running than the concurrency of the type'", 0, NULL), 1);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.check_invariants() WHERE invariant ="
                            " 'more starts in a rate window than the rate of the type'", 0,
                            NULL), 1);
    tu_exec("ROLLBACK", 0, NULL);

    /* and the transitions themselves keep them */
    bool lost;
    ck_assert_msg(pgq_complete(c, j->id, j->lease_token, NULL, &lost, err, sizeof err) == 0,
                  "%s", err);
    pgq_job_free(j);
    tu_check_invariants();
    pgq_disconnect(c);
}
END_TEST

/* ---- claim hints ------------------------------------------------------------ */

START_TEST(hints_ignore_bad_notes_and_other_queues)
{
    const char *q[] = { "emails", "default" };
    pgq_hints *h = pgq_hints_new(q, 2, 1000, 10000);
    ck_assert_ptr_nonnull(h);
    const char *R = "pgq_ready";
    ck_assert(pgq_hints_note(h, R, "emails 0 1764583200000001 42 1"));
    ck_assert(pgq_hints_note(h, R, "default -5 -62135596800000000 1 0"));
    ck_assert(pgq_hints_note(h, R, "emails 2147483647 9223372036854775807 9223372036854775807 0"));
    ck_assert(pgq_hints_note(h, "pgq_jobs", "emails"));
    ck_assert(!pgq_hints_note(h, R, "other 0 1764583200000001 42 1"));
    ck_assert(!pgq_hints_note(h, R, "emails"));            /* the queue alone: not a position */
    ck_assert(!pgq_hints_note(h, R, "emails x 1764583200000001 42 1"));
    ck_assert(!pgq_hints_note(h, R, "emails 0 2026-12-01T10:00:00Z 42 1"));
    ck_assert(!pgq_hints_note(h, R, "emails 0 0 0 1"));    /* no job 0 */
    ck_assert(!pgq_hints_note(h, R, "emails 0 0 12x 1"));
    ck_assert(!pgq_hints_note(h, R, "emails 0 0 12 2"));
    ck_assert(!pgq_hints_note(h, R, "emails  0 12 1"));    /* an empty priority */
    ck_assert(!pgq_hints_note(h, R, "emails 2147483648 0 12 1"));
    ck_assert(!pgq_hints_note(h, R, "emails 0 99999999999999999999 12 1"));
    ck_assert(!pgq_hints_note(h, R, " 0 0 12 1"));         /* no queue */
    ck_assert(!pgq_hints_note(h, R, ""));
    ck_assert(!pgq_hints_note(h, R, NULL));
    ck_assert(!pgq_hints_note(h, "elsewhere", "emails 0 0 12 1"));
    pgq_hints_free(h);
}
END_TEST

/* Claim every job through the C path with hints while a note announces a
 * job behind the hint: each job is claimed once, and the announced one
 * comes next rather than after the rest. */
START_TEST(hinted_claims_take_each_job_once_and_follow_notes)
{
    pgq_conn *c = tu_connect();
    char err[512];
    const char *q[] = { "default" };
    pgq_hints *h = pgq_hints_new(q, 1, 3600000, 3600000);   /* no safety nets: notes only */
    pgq_add_result r;
    for (int i = 0; i < 30; i++)
        ck_assert_msg(pgq_add(c, "t", "{}", NULL, &r, err, sizeof err) == 0, "%s", err);
    int claimed = 0;
    int64_t prev = 0;
    for (;;) {
        pgq_job *j = NULL;
        size_t got = 0;
        ck_assert_msg(pgq_complete_claim_hinted(c, h, NULL, 0, NULL, q, 1, "w", 30000, 1, &j,
                                                &got, err, sizeof err) == 0, "%s", err);
        if (!got)
            break;
        ck_assert_int_gt(j->id, prev);   /* in order, each once */
        prev = j->id;
        bool lost;
        ck_assert_msg(pgq_complete(c, j->id, j->lease_token, NULL, &lost, err, sizeof err) == 0,
                      "%s", err);
        pgq_job_free(j);
        if (++claimed == 10) {
            /* A job made ready behind the hint (a run_at in the past, as a
             * producer whose transaction started earlier would write): the
             * hint does not see it until its note comes. */
            pgq_add_opts o = PGQ_ADD_OPTS_INIT;
            o.run_at = "2000-01-01T00:00:00Z";
            ck_assert_msg(pgq_add(c, "t", "{}", &o, &r, err, sizeof err) == 0, "%s", err);
            char *pos = tu_text("SELECT queue || ' ' || priority || ' ' || pgq.position_us(run_at)"
                                " || ' ' || id || ' 1' FROM pgq.jobs WHERE run_at < '2001-01-01'",
                                0, NULL);
            ck_assert(pgq_hints_note(h, "pgq_ready", pos));
            free(pos);
            j = NULL;
            ck_assert_msg(pgq_complete_claim_hinted(c, h, NULL, 0, NULL, q, 1, "w", 30000, 1,
                                                    &j, &got, err, sizeof err) == 0 && got,
                          "%s", err);
            ck_assert_int_eq(j->id, r.id);   /* the announced job, at once */
            ck_assert_msg(pgq_complete(c, j->id, j->lease_token, NULL, &lost, err,
                                       sizeof err) == 0, "%s", err);
            pgq_job_free(j);
        }
    }
    ck_assert_int_eq(claimed, 30);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE state = 'done' AND attempts = 1",
                            0, NULL), 31);
    pgq_hints_free(h);
    pgq_disconnect(c);
}
END_TEST

/* A job of a better priority than the hint's that nobody announced (a
 * scheduled job coming due) is found by a claim that looks at better
 * priorities; the claims after it take the rest of that priority first,
 * without waiting for the next such look. */
START_TEST(hinted_claims_go_back_to_a_better_priority)
{
    pgq_conn *c = tu_connect();
    char err[512];
    const char *q[] = { "default" };
    pgq_hints *h = pgq_hints_new(q, 1, 300, 3600000);
    pgq_add_result r;
    pgq_add_opts low = PGQ_ADD_OPTS_INIT;
    low.priority = 5;
    for (int i = 0; i < 6; i++)
        ck_assert_msg(pgq_add(c, "t", "{}", &low, &r, err, sizeof err) == 0, "%s", err);
    pgq_job *j;
    size_t got;
    bool lost;
    int64_t order[12];
    int n = 0;
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(pgq_complete_claim_hinted(c, h, NULL, 0, NULL, q, 1, "w", 30000, 1, &j,
                                                &got, err, sizeof err) == 0 && got, "%s", err);
        order[n++] = j->id;
        ck_assert_msg(pgq_complete(c, j->id, j->lease_token, NULL, &lost, err, sizeof err) == 0,
                      "%s", err);
        pgq_job_free(j);
    }
    /* three jobs of priority 0 appear behind the hint, unannounced */
    tu_exec("INSERT INTO pgq.jobs (queue, type, priority, run_at)"
            " SELECT 'default', 't', 0, now() - interval '1 minute' FROM generate_series(1, 3)",
            0, NULL);
    nanosleep(&(struct timespec){ 0, 350 * 1000 * 1000 }, NULL);   /* the next claim looks */
    for (;;) {
        j = NULL;
        ck_assert_msg(pgq_complete_claim_hinted(c, h, NULL, 0, NULL, q, 1, "w", 30000, 1, &j,
                                                &got, err, sizeof err) == 0, "%s", err);
        if (!got)
            break;
        ck_assert_int_lt(n, 12);
        order[n++] = j->id;
        ck_assert_msg(pgq_complete(c, j->id, j->lease_token, NULL, &lost, err, sizeof err) == 0,
                      "%s", err);
        pgq_job_free(j);
    }
    ck_assert_int_eq(n, 9);
    /* 1, 2 (priority 5), then 7, 8, 9 (priority 0), then 3..6 */
    static const int64_t want[] = { 1, 2, 7, 8, 9, 3, 4, 5, 6 };
    for (int i = 0; i < 9; i++)
        ck_assert_msg(order[i] == want[i], "claim %d took job %lld, want %lld", i + 1,
                      (long long)order[i], (long long)want[i]);
    pgq_hints_free(h);
    pgq_disconnect(c);
}
END_TEST

/* A session that holds a transaction open (with an xid) pins the xmin
 * horizon; every claimed job then leaves an index entry nothing may
 * remove. A claim from the start of the index walks them all (its cost
 * grows with every job done: quadratic overall); a hinted claim starts
 * after its last job and does not. Buffers touched, not time. */
static PGconn *pinner;

static long long claim_buffers(const char *hint_prio, const char *hint_run_at,
                               const char *hint_id)
{
    const char *params[] = { hint_prio, hint_run_at, hint_id };
    tu_exec("BEGIN", 0, NULL);
    char *plan = tu_text("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT * FROM pgq.complete_claim("
                         " NULL, NULL, NULL, NULL, NULL, NULL, '{default}', 'probe', 30000, 1,"
                         " ARRAY[$1::int], ARRAY[$2::bigint], ARRAY[$3::bigint], false)",
                         3, params);
    tu_exec("ROLLBACK", 0, NULL);
    const char *p = strstr(plan, "\"Shared Hit Blocks\": ");
    ck_assert_ptr_nonnull(p);
    long long hit = strtoll(p + strlen("\"Shared Hit Blocks\": "), NULL, 10);
    p = strstr(plan, "\"Shared Read Blocks\": ");
    long long read = p ? strtoll(p + strlen("\"Shared Read Blocks\": "), NULL, 10) : 0;
    free(plan);
    return hit + read;
}

/* Claim and complete n jobs in the test's session, each claim hinted by
 * the one before (as a pool does); leaves the last position in hint_*. */
static void drain_hinted(int n, char *hp, char *hr, char *hi, size_t len)
{
    for (int i = 0; i < n; i++) {
        const char *params[] = { *hp ? hp : NULL, *hr ? hr : NULL, *hi ? hi : NULL };
        PGresult *r = PQexecParams(tu_pg(),
            "WITH c AS (SELECT * FROM pgq.complete_claim(NULL, NULL, NULL, NULL, NULL, NULL,"
            "  '{default}', 'w', 30000, 1, ARRAY[$1::int], ARRAY[$2::bigint],"
            "  ARRAY[$3::bigint], false))"
            " SELECT c.priority, c.run_at, c.id, (SELECT count(*) FROM pgq.end_attempts('done',"
            "  ARRAY[c.id], ARRAY[c.lease_token::uuid])) FROM c", 3, NULL, params, NULL, NULL, 0);
        ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1,
                      "hinted claim %d: %s", i, PQresultErrorMessage(r));
        snprintf(hp, len, "%s", PQgetvalue(r, 0, 0));
        snprintf(hr, len, "%s", PQgetvalue(r, 0, 1));
        snprintf(hi, len, "%s", PQgetvalue(r, 0, 2));
        PQclear(r);
    }
}

START_TEST(claim_stays_flat_under_a_pinned_xmin)
{
    pinner = PQconnectdb(tu_db_url());
    ck_assert(PQstatus(pinner) == CONNECTION_OK);
    PQclear(PQexec(pinner, "BEGIN"));
    PGresult *x = PQexec(pinner, "SELECT txid_current()");
    ck_assert_int_eq(PQresultStatus(x), PGRES_TUPLES_OK);
    PQclear(x);

    pgq_conn *c = tu_connect();
    char err[512];
    enum { JOBS = 4000 };
    pgq_add_item items[500];
    pgq_add_result res[500];
    for (int i = 0; i < 500; i++)
        items[i] = (pgq_add_item){ "t", "{}", PGQ_ADD_OPTS_INIT };
    for (int b = 0; b < JOBS / 500; b++)
        ck_assert_msg(pgq_add_batch(c, items, 500, res, err, sizeof err) == 0, "%s", err);

    char hp[64] = "", hr[64] = "", hi[64] = "";
    drain_hinted(200, hp, hr, hi, sizeof hp);
    claim_buffers(hp, hr, hi);   /* plans made: not counted */
    long long hinted1 = claim_buffers(hp, hr, hi), bare1 = claim_buffers(NULL, NULL, NULL);
    drain_hinted(3000, hp, hr, hi, sizeof hp);
    long long hinted2 = claim_buffers(hp, hr, hi), bare2 = claim_buffers(NULL, NULL, NULL);
    fprintf(stderr, "state_test: claim buffers under a pinned xmin after 200 / 3200 jobs:"
            " hinted %lld / %lld, from the start %lld / %lld\n", hinted1, hinted2, bare1, bare2);
    /* The pin worked: a claim from the start walks the dead entries. */
    ck_assert_msg(bare2 >= bare1 + 40, "the unhinted claim did not slow down (%lld -> %lld): "
                  "is the xmin really pinned?", bare1, bare2);
    ck_assert_msg(hinted2 <= hinted1 + 6, "the hinted claim touched %lld buffers after 3,200 "
                  "jobs, %lld after 200: it walks the dead entries", hinted2, hinted1);
    PQclear(PQexec(pinner, "COMMIT"));
    PQfinish(pinner);
    pgq_disconnect(c);
}
END_TEST

/* ---- jobs that could lie behind a hint (from a review of the change) ------- */

static pgq_job *hclaim(pgq_conn *c, pgq_hints *h, const char *const *q, size_t nq)
{
    char err[512];
    pgq_job *j = NULL;
    size_t got = 0;
    ck_assert_msg(pgq_complete_claim_hinted(c, h, NULL, 0, NULL, q, nq, "w", 30000, 1, &j, &got,
                                            err, sizeof err) == 0, "%s", err);
    return got ? j : NULL;
}

static void hdone(pgq_conn *c, pgq_job *j)
{
    char err[512];
    bool lost;
    ck_assert_msg(pgq_complete(c, j->id, j->lease_token, NULL, &lost, err, sizeof err) == 0,
                  "%s", err);
    pgq_job_free(j);
}

/* n jobs of type t, due now. */
static void add_n(pgq_conn *c, int n)
{
    char err[512];
    pgq_add_result a;
    for (int i = 0; i < n; i++)
        ck_assert_msg(pgq_add(c, "t", "{}", NULL, &a, err, sizeof err) == 0, "%s", err);
}

/* A connection that listens as a pool's listener does. */
static PGconn *listener(void)
{
    PGconn *l = PQconnectdb(tu_db_url());
    ck_assert(PQstatus(l) == CONNECTION_OK);
    PGresult *r = PQexec(l, "LISTEN pgq_ready; LISTEN pgq_jobs; LISTEN pgq_test_sentinel");
    ck_assert_int_eq(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    return l;
}

/* Hand h every notification committed so far, in order, as the listener
 * thread does (a sentinel of our own marks the end). */
static void feed(PGconn *l, pgq_hints *h)
{
    PQclear(PQexec(l, "NOTIFY pgq_test_sentinel"));
    for (int tries = 0; tries < 500; tries++) {
        PGnotify *n;
        while ((n = PQnotifies(l)) != NULL) {
            bool end = strcmp(n->relname, "pgq_test_sentinel") == 0;
            if (!end)
                (void)pgq_hints_note(h, n->relname, n->extra);
            PQfreemem(n);
            if (end)
                return;
        }
        nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
        ck_assert(PQconsumeInput(l));
    }
    ck_abort_msg("the sentinel notification never came");
}

/* A claim of several queues used to lock one due row per queue and take
 * one: a concurrent claim skipped the other, its hint moved past it, and
 * the row was ready behind the hint once the first claim committed. Now a
 * claim locks only what it takes. */
START_TEST(multi_queue_claims_lock_only_what_they_take)
{
    tu_type("ta", "qa", "", 2, 1000);
    tu_type("tb", "qb", "", 2, 1000);
    tu_exec("INSERT INTO pgq.jobs (queue, type, run_at) VALUES"
            " ('qa', 'ta', now() - interval '3 s'),"               /* 1: A1, first */
            " ('qb', 'tb', now() - interval '2 s'),"               /* 2: B1 */
            " ('qb', 'tb', now() - interval '1 s')", 0, NULL);     /* 3: B2 */
    const char *q[] = { "qa", "qb" };
    pgq_hints *h = pgq_hints_new(q, 2, 3600000, 3600000);
    pgq_conn *c = tu_connect();
    /* worker 1, mid-claim (its statement done, not yet committed) */
    PGconn *w1 = PQconnectdb(tu_db_url());
    ck_assert(PQstatus(w1) == CONNECTION_OK);
    PQclear(PQexec(w1, "BEGIN"));
    PGresult *r = PQexec(w1, "SELECT id FROM pgq.complete_claim(NULL, NULL, NULL, NULL, NULL,"
                             " NULL, '{qa,qb}', 'w1', 30000, 1, NULL, NULL, NULL, false)");
    ck_assert_int_eq(PQntuples(r), 1);
    ck_assert_str_eq(PQgetvalue(r, 0, 0), "1");
    PQclear(r);
    /* worker 2 of the same pool: B1 is not locked by worker 1 */
    pgq_job *j = hclaim(c, h, q, 2);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(j->id, 2);
    hdone(c, j);
    PQclear(PQexec(w1, "COMMIT"));
    PQfinish(w1);
    j = hclaim(c, h, q, 2);
    ck_assert_msg(j != NULL, "job 3 is ready and due, but the hinted claim finds nothing");
    ck_assert_int_eq(j->id, 3);
    hdone(c, j);
    ck_assert_ptr_null(hclaim(c, h, q, 2));
    tu_exec("UPDATE pgq.jobs SET state = 'done', finished_at = now(), lease_token = NULL,"
            " lease_expires_at = NULL WHERE id = 1", 0, NULL);
    pgq_hints_free(h);
    pgq_disconnect(c);
}
END_TEST

/* A job not due when its transaction added it (a delay shorter than the
 * transaction: a slow commit, an add inside the caller's transaction) is
 * due when it commits: its position is announced all the same. */
START_TEST(a_job_due_by_its_commit_is_announced)
{
    const char *q[] = { "default" };
    pgq_hints *h = pgq_hints_new(q, 1, 3600000, 3600000);
    pgq_conn *c = tu_connect();
    PGconn *l = listener();
    char err[512];
    PGconn *prod = PQconnectdb(tu_db_url());
    ck_assert(PQstatus(prod) == CONNECTION_OK);
    PQclear(PQexec(prod, "BEGIN"));
    PGresult *r = PQexec(prod, "SELECT id FROM pgq.add('t', '{}', delay_ms => 100)");
    ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    long long delayed = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    nanosleep(&(struct timespec){ 0, 300 * 1000 * 1000 }, NULL);
    pgq_add_result a;
    ck_assert_msg(pgq_add(c, "t", "{}", NULL, &a, err, sizeof err) == 0, "%s", err);
    feed(l, h);
    pgq_job *j = hclaim(c, h, q, 1);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(j->id, a.id);   /* the hint is now past the delayed job */
    hdone(c, j);
    PQclear(PQexec(prod, "COMMIT"));
    PQfinish(prod);
    feed(l, h);
    j = hclaim(c, h, q, 1);
    ck_assert_msg(j != NULL, "the delayed job is ready and due, but the hinted claim finds "
                  "nothing");
    ck_assert_int_eq(j->id, delayed);
    hdone(c, j);
    pgq_hints_free(h);
    PQfinish(l);
    pgq_disconnect(c);
}
END_TEST

/* Anyone who can connect may NOTIFY pgq_ready: a malformed note is
 * ignored, and a well-formed one from anywhere only makes claims search
 * more; neither makes a claim fail. */
START_TEST(notes_from_anyone_cannot_break_claims)
{
    const char *q[] = { "default" };
    pgq_hints *h = pgq_hints_new(q, 1, 3600000, 3600000);
    pgq_conn *c = tu_connect();
    PGconn *l = listener();
    add_n(c, 3);
    pgq_job *j = hclaim(c, h, q, 1);   /* sets the hint */
    ck_assert_ptr_nonnull(j);
    hdone(c, j);
    tu_exec("NOTIFY pgq_ready, 'default 0 0 5'", 0, NULL);
    tu_exec("NOTIFY pgq_ready, 'default -2147483648 -9223372036854775808 1 1'", 0, NULL);
    tu_exec("NOTIFY pgq_ready, 'default 0 x 1 1'", 0, NULL);
    feed(l, h);
    for (int i = 0; i < 2; i++) {
        j = hclaim(c, h, q, 1);
        ck_assert_ptr_nonnull(j);
        hdone(c, j);
    }
    pgq_hints_free(h);
    PQfinish(l);
    pgq_disconnect(c);
}
END_TEST

/* A pool of the previous release (still running during a rolling upgrade)
 * releases its job with its own statement (schema 3's STMT_RELEASE, as
 * tests/upgrade_test.c has it): the job keeps its early run_at and is
 * announced on pgq_jobs alone, with no position. It lies behind the hint
 * until the periodic search from the start finds it. */
START_TEST(an_old_writers_job_is_found_by_the_periodic_full_search)
{
    const char *q[] = { "default" };
    pgq_hints *h = pgq_hints_new(q, 1, 3600000, 300);
    pgq_conn *c = tu_connect();
    PGconn *l = listener();
    add_n(c, 3);
    char *tok = tu_text("SELECT lease_token FROM pgq.claim('{default}', 'old', 30000)", 0, NULL);
    pgq_job *j = hclaim(c, h, q, 1);   /* job 2; the hint is at job 2 */
    ck_assert_int_eq(j->id, 2);
    hdone(c, j);
    feed(l, h);
    const char *p[] = { tok };
    tu_exec("WITH upd AS ("
            "  UPDATE pgq.jobs SET state = 'ready', attempts = attempts - 1,"
            "    lease_token = NULL, lease_expires_at = NULL"
            "   WHERE id = 1 AND lease_token = $1::uuid AND (state = 'running') IS TRUE"
            "  RETURNING id, queue, attempts + 1 AS attempt, lease_owner, started_at),"
            " hist AS ("
            "  INSERT INTO pgq.job_attempts (job_id, attempt, outcome, worker, error, started_at,"
            "    duration_ms)"
            "  SELECT id, attempt, 'released', lease_owner, 'released (not counted)', started_at,"
            "    extract(epoch FROM clock_timestamp() - started_at) * 1000 FROM upd)"
            " SELECT id, pg_notify('pgq_jobs', queue) FROM upd", 1, p);
    free(tok);
    feed(l, h);
    /* Claims from the hint take job 3 and then find nothing; within the
     * interval one searches from the start and finds job 1. */
    bool found = false;
    for (int i = 0; i < 200 && !found; i++) {
        j = hclaim(c, h, q, 1);
        if (j) {
            found = j->id == 1;
            hdone(c, j);
        } else {
            nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
        }
    }
    ck_assert_msg(found, "job 1, released by an old pool, was not found by the periodic "
                  "search from the start");
    pgq_hints_free(h);
    PQfinish(l);
    pgq_disconnect(c);
}
END_TEST

/* ---- writes per job (issue 10, item 3) ------------------------------------ */

/* A lease renewal changes no indexed column of pgq.jobs (migration 5), so
 * it is a heap-only update and writes no index entry. With the reaper's
 * index keyed on lease_expires_at (schema 4) none of them was. */
START_TEST(lease_renewals_are_hot_updates)
{
    pgq_conn *c = tu_connect();
    add_n(c, 20);
    for (int i = 0; i < 20; i++) {
        pgq_job *j = hclaim(c, NULL, (const char *const[]){ "default" }, 1);
        ck_assert_msg(j, "claim %d found no job", i + 1);
        pgq_job_free(j);
    }
    PGconn *pg = PQconnectdb(tu_db_url());
    ck_assert(PQstatus(pg) == CONNECTION_OK);
    PQclear(PQexec(pg, "BEGIN"));
    PGresult *r = PQexec(pg,
        "WITH h AS (SELECT array_agg(id) AS ids, array_agg(lease_token) AS toks"
        "             FROM pgq.jobs WHERE state = 'running')"
        "SELECT (SELECT count(*) FROM h, pgq.renew(h.ids, h.toks, 30000)),"
        "       pg_stat_get_xact_tuples_updated('pgq.jobs'::regclass),"
        "       pg_stat_get_xact_tuples_hot_updated('pgq.jobs'::regclass)");
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQerrorMessage(pg));
    long renewed = atol(PQgetvalue(r, 0, 0)), upd = atol(PQgetvalue(r, 0, 1)),
         hot = atol(PQgetvalue(r, 0, 2));
    PQclear(r);
    PQclear(PQexec(pg, "COMMIT"));
    PQfinish(pg);
    fprintf(stderr, "state_test: 20 lease renewals: %ld updates, %ld HOT\n", upd, hot);
    ck_assert_int_eq(renewed, 20);
    ck_assert_int_eq(upd, 20);
    ck_assert_msg(hot >= 15, "only %ld of 20 lease renewals were HOT updates", hot);
    pgq_disconnect(c);
}
END_TEST

Suite *state_suite(void)
{
    Suite *s = suite_create("state");
    TCase *tc = tcase_create("state");
    tcase_set_timeout(tc, TU_TIMEOUT);
    tcase_add_checked_fixture(tc, setup, tu_check_invariants);
    tcase_add_test(tc, scanner_finds_job_row_writes);
    tcase_add_test(tc, no_c_file_writes_job_rows);
    tcase_add_test(tc, readme_state_table_functions_exist);
    tcase_add_test(tc, check_invariants_reports_each_violation);
    tcase_add_test(tc, hints_ignore_bad_notes_and_other_queues);
    tcase_add_test(tc, hinted_claims_take_each_job_once_and_follow_notes);
    tcase_add_test(tc, hinted_claims_go_back_to_a_better_priority);
    tcase_add_test(tc, claim_stays_flat_under_a_pinned_xmin);
    tcase_add_test(tc, multi_queue_claims_lock_only_what_they_take);
    tcase_add_test(tc, a_job_due_by_its_commit_is_announced);
    tcase_add_test(tc, notes_from_anyone_cannot_break_claims);
    tcase_add_test(tc, an_old_writers_job_is_found_by_the_periodic_full_search);
    tcase_add_test(tc, lease_renewals_are_hot_updates);
    suite_add_tcase(s, tc);
    return s;
}
