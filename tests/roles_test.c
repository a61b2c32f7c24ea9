/* Least privilege (migrations/grants.sql, README "Roles and grants"): one
 * login user per group role, each connected and made to try what its role
 * may and may not do, through SQL, the real CLI and, for the worker, a
 * whole pool. A refusal is asserted as PostgreSQL's insufficient_privilege
 * (42501), so a test cannot pass because a statement was malformed. Also:
 * no pgq function is callable by PUBLIC, every SECURITY DEFINER function
 * has a fixed search_path, and a function missing from the grant list gets
 * no grant at all.
 *
 * Needs a superuser (to create the users); skipped otherwise. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "model.h"
#include "testutil.h"

#define DENIED "42501"

static bool superuser(void)
{
    return tu_int("SELECT rolsuper::int FROM pg_roles WHERE rolname = current_user", 0, NULL) == 1;
}

/* Login user NAME, a member of ROLE only (users are cluster-wide: made
 * once, kept). */
static void login_user(const char *name, const char *role)
{
    const char *p[] = { name };
    if (tu_int("SELECT count(*) FROM pg_roles WHERE rolname = $1", 1, p) == 0)
        tu_exec(tu_fmt("CREATE ROLE %s LOGIN", name), 0, NULL);
    const char *q[] = { name, role };
    if (tu_int("SELECT pg_has_role($1, $2, 'MEMBER')::int", 2, q) == 0)
        tu_exec(tu_fmt("GRANT %s TO %s", role, name), 0, NULL);
}

static void setup(void)
{
    tu_reset();
    if (!superuser())
        return;
    login_user("pgq_t_producer", "pgq_producer");
    login_user("pgq_t_worker", "pgq_worker");
    login_user("pgq_t_operator", "pgq_operator");
    login_user("pgq_t_viewer", "pgq_viewer");
    login_user("pgq_t_handler", "pgq_handler");
    tu_type("t", "default", "", 0, 0);
}

static void teardown(void)
{
    tu_check_invariants();
}

/* The test database as USER (a conninfo string; the later user= wins). */
static const char *url_as(const char *user)
{
    char *base = tu_db_url_for(PQdb(tu_pg()));
    const char *u = tu_fmt("%s user='%s'", base, user);
    free(base);
    return u;
}

/* The same as a short URL (pool.ini lines are limited to 199 bytes). */
static const char *short_url_as(const char *user)
{
    PGconn *pg = tu_pg();
    return tu_fmt("postgresql://%s@/%s?host=%s&port=%s", user, PQdb(pg), PQhost(pg), PQport(pg));
}

static PGconn *pg_as(const char *user)
{
    PGconn *pg = PQconnectdb(url_as(user));
    ck_assert_msg(PQstatus(pg) == CONNECTION_OK, "connect as %s: %s", user, PQerrorMessage(pg));
    return pg;
}

/* "" when sql ran, else its SQLSTATE. */
static const char *try_sql(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    const char *state = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK
                            ? "" : tu_fmt("%s", PQresultErrorField(r, PG_DIAG_SQLSTATE));
    PQclear(r);
    return state;
}

#define ALLOWED(pg, sql)                                                                     \
    ck_assert_msg(strcmp(try_sql(pg, sql), "") == 0, "%s: refused: %s", sql, PQerrorMessage(pg))
#define REFUSED(pg, sql)                                                                     \
    do {                                                                                     \
        const char *st_ = try_sql(pg, sql);                                                  \
        ck_assert_msg(strcmp(st_, DENIED) == 0, "%s: want permission denied, got %s (%s)",   \
                      sql, *st_ ? st_ : "success", PQerrorMessage(pg));                      \
    } while (0)

/* pgq ARGS... --db (as user); stdout/stderr captured. */
static tu_run pgq_as(const char *user, const char *const *args)
{
    const char *argv[16] = { tu_fmt("%s/pgq", tu_bin_dir()) };
    int n = 1;
    for (; args[n - 1]; n++)
        argv[n] = args[n - 1];
    argv[n++] = "--db";
    argv[n++] = url_as(user);
    argv[n] = NULL;
    return tu_run_cmd(NULL, NULL, NULL, argv[0], argv, 120);
}

#define CLI_OK(user, ...)                                                                    \
    do {                                                                                     \
        tu_run r_ = pgq_as(user, (const char *const[]){ __VA_ARGS__, NULL });                \
        ck_assert_msg(r_.code == 0, "pgq as %s: exit %d: %s", user, r_.code, r_.err);        \
        tu_run_free(&r_);                                                                    \
    } while (0)
#define CLI_REFUSED(user, ...)                                                               \
    do {                                                                                     \
        tu_run r_ = pgq_as(user, (const char *const[]){ __VA_ARGS__, NULL });                \
        ck_assert_msg(r_.code != 0 && strstr(r_.err, "permission denied"),                   \
                      "pgq as %s: want permission denied, got exit %d: %s", user, r_.code,    \
                      r_.err);                                                               \
        tu_run_free(&r_);                                                                    \
    } while (0)

/* A job claimed (as the superuser); its id and token. */
static void claimed(const char **id, const char **token)
{
    tu_exec("SELECT pgq.add('t', '{\"n\": 1}')", 0, NULL);
    PGresult *r = tu_query(tu_pg(), "SELECT id, lease_token FROM pgq.claim('{default}', 'test', 60000)",
                           0, NULL);
    ck_assert_int_eq(PQntuples(r), 1);
    *id = tu_fmt("%s", PQgetvalue(r, 0, 0));
    *token = tu_fmt("%s", PQgetvalue(r, 0, 1));
    PQclear(r);
}

START_TEST(functions_fail_closed)
{
    /* No pgq function may be run by PUBLIC (a NULL ACL is the default,
     * which grants EXECUTE to PUBLIC). */
    const char *public_exec =
        "SELECT coalesce(string_agg(p.oid::regprocedure::text, ', '), '') FROM pg_proc p"
        " WHERE p.pronamespace = 'pgq'::regnamespace AND (p.proacl IS NULL OR EXISTS ("
        "  SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'))";
    const char *loose_definer =
        "SELECT coalesce(string_agg(p.oid::regprocedure::text, ', '), '') FROM pg_proc p"
        " WHERE p.pronamespace = 'pgq'::regnamespace AND p.prosecdef AND NOT EXISTS ("
        "  SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search\\_path=%')";
    char *s = tu_text(public_exec, 0, NULL);
    ck_assert_msg(strcmp(s, "") == 0, "PUBLIC may execute: %s", s);
    free(s);
    s = tu_text(loose_definer, 0, NULL);
    ck_assert_msg(strcmp(s, "") == 0, "SECURITY DEFINER without a fixed search_path: %s", s);
    free(s);
    /* Every function a pgq_ role may call and that is SECURITY DEFINER. */
    ck_assert_int_ge(tu_int("SELECT count(*) FROM pg_proc WHERE pronamespace = 'pgq'::regnamespace"
                            " AND prosecdef", 0, NULL), 15);

    /* A function added without a line in the grant list: PUBLIC may run it
     * until the next migrate, which takes that away and grants it to no
     * role (fails closed). */
    if (!superuser())
        return;
    tu_exec("CREATE FUNCTION pgq.roles_probe() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'",
            0, NULL);
    s = tu_text(public_exec, 0, NULL);
    ck_assert_msg(strstr(s, "roles_probe()") && !strchr(s, ','), "PUBLIC may execute: %s", s);
    free(s);
    s = tu_text(loose_definer, 0, NULL);
    ck_assert_msg(strstr(s, "roles_probe()") && !strchr(s, ','), "loose definers: %s", s);
    free(s);
    char err[512];
    pgq_conn *c = tu_connect();
    ck_assert_msg(pgq_migrate(c, NULL, err, sizeof err) == 0, "migrate: %s", err);
    pgq_disconnect(c);
    s = tu_text(public_exec, 0, NULL);
    ck_assert_msg(strcmp(s, "") == 0, "PUBLIC may still execute: %s", s);
    free(s);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pg_proc p, aclexplode(p.proacl) a"
                            " WHERE p.oid = 'pgq.roles_probe()'::regprocedure"
                            "   AND a.grantee <> p.proowner", 0, NULL), 0);
    ck_assert_int_eq(tu_int("SELECT prosecdef::int FROM pg_proc"
                            " WHERE oid = 'pgq.roles_probe()'::regprocedure", 0, NULL), 0);
    PGconn *w = pg_as("pgq_t_worker");
    REFUSED(w, "SELECT pgq.roles_probe()");
    PQfinish(w);
    tu_exec("DROP FUNCTION pgq.roles_probe()", 0, NULL);
}
END_TEST

START_TEST(roles_are_nologin_groups)
{
    if (!superuser())
        return;
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pg_roles WHERE rolname IN ('pgq_producer',"
                            " 'pgq_worker', 'pgq_operator', 'pgq_viewer', 'pgq_handler')"
                            " AND NOT rolcanlogin AND NOT rolsuper", 0, NULL), 5);
    ck_assert_int_eq(tu_int("SELECT pg_has_role('pgq_operator', 'pgq_viewer', 'MEMBER')::int",
                            0, NULL), 1);
}
END_TEST

START_TEST(producer_adds_and_reads_nothing)
{
    if (!superuser())
        return;
    const char *id, *token;
    claimed(&id, &token);
    PGconn *pg = pg_as("pgq_t_producer");
    ALLOWED(pg, "SELECT id FROM pgq.add('t', '{\"to\": \"a\"}')");
    ALLOWED(pg, "SELECT id FROM pgq.enqueue(ARRAY['t', 't'], ARRAY['{}', '{}'],"
                " NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)");
    REFUSED(pg, "SELECT count(*) FROM pgq.jobs");
    REFUSED(pg, "SELECT payload FROM pgq.jobs");
    REFUSED(pg, "SELECT lease_token FROM pgq.jobs");
    REFUSED(pg, "SELECT * FROM pgq.job_attempts");
    REFUSED(pg, "SELECT * FROM pgq.effects");
    REFUSED(pg, "UPDATE pgq.jobs SET state = 'done'");
    REFUSED(pg, "INSERT INTO pgq.jobs (queue, type) VALUES ('default', 't')");
    REFUSED(pg, "SELECT * FROM pgq.claim('{default}', 'p', 30000)");
    REFUSED(pg, tu_fmt("SELECT pgq.complete(%s::bigint, '%s'::uuid)", id, token));
    REFUSED(pg, tu_fmt("SELECT * FROM pgq.effect_begin(%s, '%s', 'k')", id, token));
    REFUSED(pg, "SELECT * FROM pgq.cancel('{1}', 'p')");
    REFUSED(pg, "SELECT * FROM pgq.requeue('{1}', 'p')");
    REFUSED(pg, "SELECT * FROM pgq.pause('{default}', 'p')");
    REFUSED(pg, "SELECT pgq.result(1)");
    REFUSED(pg, "SELECT * FROM pgq.job_results");
    PQfinish(pg);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs", 0, NULL), 4);

    /* The CLI: pgq add works, reading does not. */
    tu_run r = pgq_as("pgq_t_producer", (const char *const[]){ "add", "t", "{\"x\": 1}", NULL });
    ck_assert_msg(r.code == 0, "pgq add as producer: exit %d: %s", r.code, r.err);
    ck_assert_int_eq(strtoll(r.out, NULL, 10), 5);
    tu_run_free(&r);
    CLI_REFUSED("pgq_t_producer", "stats");
    CLI_REFUSED("pgq_t_producer", "show", "1");
    CLI_REFUSED("pgq_t_producer", "result", "1");
    CLI_REFUSED("pgq_t_producer", "cancel", "2");
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE state = 'cancelled'", 0, NULL), 0);
    tu_exec(tu_fmt("SELECT pgq.complete(%s::bigint, '%s'::uuid)", id, token),
            0, NULL);
}
END_TEST

START_TEST(worker_claims_and_completes_only)
{
    if (!superuser())
        return;
    tu_exec("SELECT pgq.add('t', '{}') FROM generate_series(1, 3)", 0, NULL);
    PGconn *pg = pg_as("pgq_t_worker");
    PGresult *r = PQexec(pg, "SELECT id, lease_token FROM pgq.claim('{default}', 'w', 30000)");
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "claim as worker: %s",
                  PQerrorMessage(pg));
    const char *id = tu_fmt("%s", PQgetvalue(r, 0, 0)), *tok1 = tu_fmt("%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    ALLOWED(pg, tu_fmt("SELECT pgq.renew(ARRAY[%s]::bigint[], ARRAY['%s']::uuid[], 30000)", id, tok1));
    ALLOWED(pg, tu_fmt("SELECT pgq.complete(%s::bigint, '%s'::uuid)", id, tok1));
    ck_assert_int_eq(tu_int(tu_fmt("SELECT count(*) FROM pgq.jobs WHERE id = %s AND state = 'done'", id),
                            0, NULL), 1);
    ALLOWED(pg, "SELECT * FROM pgq.reap(10)");
    /* the SQL consumer interface's heartbeat, by token */
    r = PQexec(pg, "SELECT id, lease_token FROM pgq.claim('{default}', 'w', 30000)");
    ck_assert_int_eq(PQntuples(r), 1);
    const char *id2 = tu_fmt("%s", PQgetvalue(r, 0, 0)), *tok2 = tu_fmt("%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    ck_assert_str_eq(tu_fmt("%s", PQgetvalue(r = PQexec(pg, tu_fmt("SELECT pgq.heartbeat(%s, '%s')",
                                                                   id2, tok2)), 0, 0)), "t");
    PQclear(r);
    /* a pool reads what a viewer reads (its metrics and events do), not tokens */
    ALLOWED(pg, "SELECT count(*), min(payload::text) FROM pgq.jobs");
    ALLOWED(pg, "SELECT outcome, error FROM pgq.job_attempts");
    REFUSED(pg, "SELECT lease_token FROM pgq.jobs");
    ALLOWED(pg, "SELECT * FROM pgq.prune(86400000, 86400000, 100, NULL)");
    REFUSED(pg, "UPDATE pgq.jobs SET state = 'ready'");
    REFUSED(pg, "DELETE FROM pgq.jobs");
    REFUSED(pg, "SELECT * FROM pgq.requeue('{1}', 'w')");
    REFUSED(pg, "SELECT pgq.requeue_matching('dead', NULL, NULL, 'w')");
    REFUSED(pg, "SELECT * FROM pgq.cancel('{2}', 'w')");
    REFUSED(pg, "SELECT * FROM pgq.pause('{default}', 'w')");
    REFUSED(pg, "SELECT * FROM pgq.resume('{default}', 'w')");
    REFUSED(pg, "SELECT pgq.add('t', '{}')");
    PQfinish(pg);
    CLI_OK("pgq_t_worker", "stats");
    CLI_REFUSED("pgq_t_worker", "cancel", "3");
    CLI_REFUSED("pgq_t_worker", "pause", "default");
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE state = 'cancelled'", 0, NULL), 0);
    /* leave nothing running for the invariants */
    tu_exec("SELECT pgq.release(id, lease_token) FROM pgq.jobs WHERE state = 'running'", 0, NULL);
}
END_TEST

START_TEST(operator_acts_and_reads_no_tokens)
{
    if (!superuser())
        return;
    tu_exec("SELECT pgq.add('t', '{}') FROM generate_series(1, 3)", 0, NULL);
    CLI_OK("pgq_t_operator", "cancel", "1");
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE id = 1 AND state = 'cancelled'",
                            0, NULL), 1);
    /* recorded as the user who logged in, not as the functions' owner */
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.actions WHERE action = 'cancel'"
                            " AND db_user = 'pgq_t_operator'", 0, NULL), 1);
    CLI_OK("pgq_t_operator", "requeue", "1");
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE id = 1 AND state = 'ready'",
                            0, NULL), 1);
    CLI_OK("pgq_t_operator", "pause", "default");
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.queues WHERE queue = 'default' AND paused",
                            0, NULL), 1);
    CLI_OK("pgq_t_operator", "resume", "default");
    CLI_OK("pgq_t_operator", "stats");
    CLI_OK("pgq_t_operator", "show", "2");
    PGconn *pg = pg_as("pgq_t_operator");
    ALLOWED(pg, "SELECT pgq.requeue_matching('dead', NULL, NULL, 'op')");
    ALLOWED(pg, "SELECT id, payload FROM pgq.jobs");
    REFUSED(pg, "SELECT lease_token FROM pgq.jobs");
    REFUSED(pg, "SELECT * FROM pgq.jobs");
    REFUSED(pg, "UPDATE pgq.jobs SET priority = 1");
    REFUSED(pg, "SELECT * FROM pgq.claim('{default}', 'op', 30000)");
    REFUSED(pg, "SELECT pgq.add('t', '{}')");
    PQfinish(pg);
}
END_TEST

START_TEST(viewer_reads_dashboard_only)
{
    if (!superuser())
        return;
    const char *id, *token;
    claimed(&id, &token);
    tu_exec("SELECT pgq.add('t', '{\"secret\": \"visible\"}')", 0, NULL);
    tu_exec(tu_fmt("SELECT * FROM pgq.effect_begin(%s, '%s', 'mail')", id, token), 0, NULL);

    tu_run r = pgq_as("pgq_t_viewer", (const char *const[]){ "stats", NULL });
    ck_assert_msg(r.code == 0 && strstr(r.out, "default"), "pgq stats as viewer: exit %d: %s%s",
                  r.code, r.out, r.err);
    tu_run_free(&r);
    r = pgq_as("pgq_t_viewer", (const char *const[]){ "show", id, NULL });
    ck_assert_msg(r.code == 0 && strstr(r.out, "mail") && !strstr(r.out, token),
                  "pgq show as viewer: exit %d: %s%s", r.code, r.out, r.err);
    tu_run_free(&r);
    CLI_REFUSED("pgq_t_viewer", "cancel", "2");
    CLI_REFUSED("pgq_t_viewer", "add", "t", "{}");

    /* The dashboard's model: a whole snapshot, marked read-only. */
    char err[512];
    pgq_conn *c = NULL;
    ck_assert_msg(pgq_connect(url_as("pgq_t_viewer"), &c, err, sizeof err) == 0, "%s", err);
    struct model_query q = { .parts = MODEL_ALL };
    struct snapshot *snap = NULL;
    ck_assert_msg(model_refresh_once(c, &q, &snap, err, sizeof err) == 0, "dashboard as viewer: %s",
                  err);
    ck_assert(snap->read_only);
    ck_assert_str_eq(snap->user, "pgq_t_viewer");
    ck_assert_int_eq(snap->nrunning, 1);
    snapshot_release(snap);
    pgq_disconnect(c);
    /* an operator's dashboard may act */
    ck_assert_msg(pgq_connect(url_as("pgq_t_operator"), &c, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(model_refresh_once(c, &q, &snap, err, sizeof err) == 0, "dashboard as operator: %s",
                  err);
    ck_assert(!snap->read_only);
    snapshot_release(snap);
    pgq_disconnect(c);

    PGconn *pg = pg_as("pgq_t_viewer");
    ALLOWED(pg, "SELECT id, state, payload, lease_owner, lease_expires_at FROM pgq.jobs");
    ALLOWED(pg, "SELECT job_id, key, state FROM pgq.effects");
    ALLOWED(pg, "SELECT * FROM pgq.job_attempts");
    ALLOWED(pg, "SELECT * FROM pgq.workers");
    REFUSED(pg, "SELECT lease_token FROM pgq.jobs");
    REFUSED(pg, "SELECT lease_token FROM pgq.effects");
    REFUSED(pg, "SELECT * FROM pgq.jobs");
    REFUSED(pg, "UPDATE pgq.jobs SET priority = 1");
    REFUSED(pg, "DELETE FROM pgq.workers");
    REFUSED(pg, "SELECT * FROM pgq.claim('{default}', 'v', 30000)");
    REFUSED(pg, "SELECT * FROM pgq.cancel('{2}', 'v')");
    REFUSED(pg, "SELECT * FROM pgq.requeue('{2}', 'v')");
    REFUSED(pg, "SELECT * FROM pgq.pause('{default}', 'v')");
    REFUSED(pg, tu_fmt("SELECT * FROM pgq.effect_done(%s, '%s', 'mail')", id, token));
    REFUSED(pg, "SELECT * FROM pgq.check_invariants()");
    PQfinish(pg);
    tu_exec(tu_fmt("SELECT pgq.effect_done(%s, '%s', 'mail')", id, token), 0, NULL);
    ck_assert_int_eq(tu_int(tu_fmt("SELECT pgq.complete(%s, '%s', '{\"sent\": 1}')::int", id, token),
                            0, NULL), 1);
    r = pgq_as("pgq_t_viewer", (const char *const[]){ "result", id, NULL });
    ck_assert_msg(r.code == 0 && strstr(r.out, "sent"), "pgq result as viewer: exit %d: %s%s",
                  r.code, r.out, r.err);
    tu_run_free(&r);
}
END_TEST

/* pgq once KEY -- true, as an exec handler runs it: job id and token in the
 * environment, DATABASE_URL the handler role's. */
static int once_as(const char *user, const char *id, const char *token, const char *key)
{
    const char *env[] = { tu_fmt("PGQ_JOB_ID=%s", id), tu_fmt("PGQ_LEASE_TOKEN=%s", token),
                          tu_fmt("DATABASE_URL=%s", url_as(user)), NULL };
    const char *argv[] = { tu_fmt("%s/pgq", tu_bin_dir()), "once", key, "--", "true", NULL };
    tu_run r = tu_run_cmd(NULL, env, NULL, argv[0], argv, 120);
    int code = r.code;
    if (code != 0)
        fprintf(stderr, "pgq once as %s (job %s): exit %d: %s", user, id, code, r.err);
    tu_run_free(&r);
    return code;
}

START_TEST(handler_acts_on_its_own_job_by_token)
{
    if (!superuser())
        return;
    const char *id, *token, *other, *other_token;
    claimed(&id, &token);
    claimed(&other, &other_token);
    const char *wrong = "00000000-0000-4000-8000-000000000000";

    ck_assert_int_eq(once_as("pgq_t_handler", id, token, "charge"), 0);
    ck_assert_int_eq(tu_int(tu_fmt("SELECT count(*) FROM pgq.effects WHERE job_id = %s"
                                   " AND key = 'charge' AND state = 'done'", id), 0, NULL), 1);
    /* again: skipped, already done */
    ck_assert_int_eq(once_as("pgq_t_handler", id, token, "charge"), 0);
    /* a wrong token, or its own token on another job: lease lost, nothing */
    ck_assert_int_eq(once_as("pgq_t_handler", id, wrong, "refund"), 5);
    ck_assert_int_eq(once_as("pgq_t_handler", other, token, "refund"), 5);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.effects WHERE key = 'refund'", 0, NULL), 0);

    PGconn *pg = pg_as("pgq_t_handler");
    /* snooze, by token: a wrong one holds nothing */
    PGresult *sr = PQexec(pg, tu_fmt("SELECT held FROM pgq.snooze(%s, '%s', 1000)", id, wrong));
    ck_assert_msg(PQresultStatus(sr) == PGRES_TUPLES_OK, "snooze as handler: %s", PQerrorMessage(pg));
    ck_assert_str_eq(PQgetvalue(sr, 0, 0), "f");
    PQclear(sr);
    REFUSED(pg, "SELECT count(*) FROM pgq.jobs");
    REFUSED(pg, "SELECT lease_token FROM pgq.jobs");
    REFUSED(pg, "SELECT * FROM pgq.effects");
    REFUSED(pg, "SELECT * FROM pgq.job_attempts");
    REFUSED(pg, "SELECT * FROM pgq.claim('{default}', 'h', 30000)");
    REFUSED(pg, tu_fmt("SELECT pgq.complete(%s::bigint, '%s'::uuid)", id, token));
    REFUSED(pg, tu_fmt("SELECT pgq.fail(%s, '%s', 'x')", id, token));
    REFUSED(pg, tu_fmt("SELECT pgq.release(%s, '%s')", id, token));
    REFUSED(pg, "SELECT * FROM pgq.cancel('{1}', 'h')");
    REFUSED(pg, "SELECT pgq.add('t', '{}')");
    PQfinish(pg);
    tu_exec(tu_fmt("SELECT pgq.complete(%s::bigint, '%s'::uuid)", id, token), 0, NULL);
    tu_exec(tu_fmt("SELECT pgq.complete(%s::bigint, '%s'::uuid)", other, other_token), 0, NULL);
}
END_TEST

static bool pool_exited(pid_t pid, int *status)
{
    return waitpid(pid, status, WNOHANG) == pid;
}

/* A pool logged in as a pgq_worker member runs jobs to done; its exec
 * handler gets handler_url (a pgq_handler member) as DATABASE_URL and
 * runs `pgq once` with it. */
START_TEST(pool_as_worker_with_handler_url)
{
    if (!superuser())
        return;
    enum { JOBS = 20 };
    char dir[] = "/tmp/pgq-roles-test.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    const char *script = tu_fmt("%s/handler.sh", dir);
    tu_write_file(script, tu_fmt("#!/bin/sh\n"
                                 "'%s/pgq' once sent -- true || exit 1\n"
                                 "printf '%%s\\n' \"$DATABASE_URL\" > '%s/url.'\"$PGQ_JOB_ID\"\n",
                                 tu_bin_dir(), dir));
    ck_assert_int_eq(chmod(script, 0755), 0);
    const char *ini = tu_fmt("%s/pool.ini", dir);
    tu_write_file(ini, tu_fmt("[database]\nhandler_url = %s\n\n"
                              "[pool]\nworkers = 2\npoll = 100ms\n\n"
                              "[job roles]\nhandler = exec %s\n\n"
                              "[job tick]\nhandler = exec true\n\n"
                              "[cron tick]\nschedule = @every 1s\ntype = tick\n",
                              short_url_as("pgq_t_handler"), script));
    const char *log = tu_fmt("%s/pool.log", dir);
    const char *url = url_as("pgq_t_worker");
    const char *argv[] = { tu_fmt("%s/pgq-pool", tu_bin_dir()), "-c", ini, "--db", url, NULL };
    pid_t pid = tu_spawn_logged(log, NULL, argv[0], argv);
    /* the pool registers the type itself (as the worker role) */
    int status = 0, i;
    bool gone = false;
    for (i = 0; i < 1200 && !(gone = pool_exited(pid, &status)); i++) {
        if (tu_int("SELECT count(*) FROM pgq.job_types WHERE type = 'roles'", 0, NULL) == 1)
            break;
        usleep(50 * 1000);
    }
    ck_assert_msg(!gone && i < 1200, "pool did not register its type: %s", tu_slurp(log));
    PGconn *producer = pg_as("pgq_t_producer");
    ALLOWED(producer, tu_fmt("SELECT pgq.add('roles', '{}') FROM generate_series(1, %d)", JOBS));
    PQfinish(producer);
    /* all done, and a cron tick fired by the worker role (pgq.cron_fire) */
    for (i = 0; i < 1200 && !(gone = pool_exited(pid, &status)); i++) {
        if (tu_int("SELECT count(*) FROM pgq.jobs WHERE type = 'roles' AND state = 'done'", 0,
                   NULL) == JOBS &&
            tu_int("SELECT count(*) FROM pgq.jobs WHERE type = 'tick' AND state = 'done'", 0,
                   NULL) >= 1)
            break;
        usleep(50 * 1000);
    }
    ck_assert_msg(!gone && i < 1200, "%lld of %d jobs done, %lld ticks: %s",
                  tu_int("SELECT count(*) FROM pgq.jobs WHERE type = 'roles' AND state = 'done'",
                         0, NULL), JOBS,
                  tu_int("SELECT count(*) FROM pgq.jobs WHERE type = 'tick'", 0, NULL),
                  tu_slurp(log));
    ck_assert_int_eq(kill(pid, SIGTERM), 0);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "pool status 0x%x: %s", status,
                  tu_slurp(log));
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.effects WHERE key = 'sent' AND state = 'done'",
                            0, NULL), JOBS);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE lease_owner IS NOT NULL"
                            " AND state = 'running'", 0, NULL), 0);
    /* the handler saw the handler's URL, not the pool's */
    char *seen = tu_slurp(tu_fmt("%s/url.1", dir));
    ck_assert_msg(strstr(seen, "pgq_t_handler") && !strstr(seen, "pgq_t_worker"),
                  "handler's DATABASE_URL: %s", seen);
    free(seen);
    free(tu_sh(tu_fmt("rm -rf '%s'", dir), &status));
}
END_TEST

/* pgq migrate by a database owner that is no superuser and may not create
 * roles: the schema is its own, its functions run as it, and a group role
 * that does not exist is skipped with a warning naming it. (pgq_handler is
 * dropped for this and made again by a superuser's migrate at the end.) */
START_TEST(migrate_as_owner_without_createrole)
{
    if (!superuser())
        return;
    const char *db = tu_fmt("pgq_roles_%d", (int)getpid());
    const char *pd[] = { db };
    if (tu_int("SELECT count(*) FROM pg_database WHERE datname = $1", 1, pd))
        tu_exec(tu_fmt("DROP DATABASE %s WITH (FORCE)", db), 0, NULL);
    if (tu_int("SELECT count(*) FROM pg_roles WHERE rolname = 'pgq_t_owner'", 0, NULL) == 0)
        tu_exec("CREATE ROLE pgq_t_owner LOGIN NOCREATEROLE", 0, NULL);
    tu_exec(tu_fmt("CREATE DATABASE %s OWNER pgq_t_owner", db), 0, NULL);
    tu_exec("DROP OWNED BY pgq_handler", 0, NULL);
    tu_exec("DROP ROLE pgq_handler", 0, NULL);

    char *base = tu_db_url_for(db);
    const char *owner_url = tu_fmt("%s user='pgq_t_owner'", base);
    const char *producer_url = tu_fmt("%s user='pgq_t_producer'", base);
    free(base);
    const char *argv[] = { tu_fmt("%s/pgq", tu_bin_dir()), "migrate", "--db", owner_url, NULL };
    tu_run r = tu_run_cmd(NULL, NULL, NULL, argv[0], argv, 120);
    int code = r.code;
    bool warned = strstr(r.err, "pgq migrate: warning: role pgq_handler does not exist and "
                                "pgq_t_owner may not create roles: skipped") != NULL;
    char *out = strdup(r.err);
    tu_run_free(&r);

    /* put pgq_handler back before asserting, so that a failure here leaves
     * the other tests their role */
    char err[512];
    pgq_conn *c = tu_connect();
    ck_assert_msg(pgq_migrate(c, NULL, err, sizeof err) == 0, "migrate: %s", err);
    pgq_disconnect(c);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pg_roles WHERE rolname = 'pgq_handler'", 0, NULL), 1);

    ck_assert_msg(code == 0 && warned, "pgq migrate as owner: exit %d: %s", code, out);
    free(out);
    PGconn *o = PQconnectdb(owner_url);
    ck_assert_msg(PQstatus(o) == CONNECTION_OK, "%s", PQerrorMessage(o));
    PGresult *q = PQexec(o, "SELECT count(*) FILTER (WHERE p.proowner <> 'pgq_t_owner'::regrole),"
                            " count(*) FILTER (WHERE p.prosecdef)"
                            " FROM pg_proc p WHERE p.pronamespace = 'pgq'::regnamespace");
    ck_assert_int_eq(PQresultStatus(q), PGRES_TUPLES_OK);
    ck_assert_str_eq(PQgetvalue(q, 0, 0), "0");
    ck_assert_int_ge(atoi(PQgetvalue(q, 0, 1)), 15);
    PQclear(q);
    PQfinish(o);
    PGconn *p = PQconnectdb(producer_url);
    ck_assert_msg(PQstatus(p) == CONNECTION_OK, "%s", PQerrorMessage(p));
    REFUSED(p, "SELECT count(*) FROM pgq.jobs");
    /* it may call pgq.add there: the function runs, and refuses the type */
    const char *st = try_sql(p, "SELECT pgq.add('nosuchtype', '{}')");
    ck_assert_msg(*st && strcmp(st, DENIED) != 0, "pgq.add as producer: %s", PQerrorMessage(p));
    PQfinish(p);
    tu_exec(tu_fmt("DROP DATABASE %s WITH (FORCE)", db), 0, NULL);
}
END_TEST

Suite *roles_suite(void)
{
    Suite *s = suite_create("roles");
    TCase *tc = tcase_create("roles");
    tcase_set_timeout(tc, TU_TIMEOUT);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, functions_fail_closed);
    tcase_add_test(tc, roles_are_nologin_groups);
    tcase_add_test(tc, producer_adds_and_reads_nothing);
    tcase_add_test(tc, worker_claims_and_completes_only);
    tcase_add_test(tc, operator_acts_and_reads_no_tokens);
    tcase_add_test(tc, viewer_reads_dashboard_only);
    tcase_add_test(tc, handler_acts_on_its_own_job_by_token);
    tcase_add_test(tc, pool_as_worker_with_handler_url);
    tcase_add_test(tc, migrate_as_owner_without_createrole);
    suite_add_tcase(s, tc);
    return s;
}
