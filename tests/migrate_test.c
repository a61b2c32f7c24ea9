/* Migrations: concurrent migrates are safe (one applies, the others find
 * nothing left), status lists them, and a schema newer than this binary is
 * refused. Each test works in a database of its own. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migrations.h"
#include "testutil.h"

static char dbname[64];
static char *dburl;

static void setup(void)
{
    snprintf(dbname, sizeof dbname, "pgq_migrate_%d", (int)getpid());
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", dbname);
    tu_exec(sql, 0, NULL);
    dburl = tu_db_url_for(dbname);
}

static void teardown(void)
{
    char sql[128];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
    tu_exec(sql, 0, NULL);
    free(dburl);
    tu_check_invariants();
}

#define MIGRATORS 6

struct mig {
    tu_barrier *start;
    int applied, rc;
    char err[512];
};

static void *migrate(void *arg)
{
    struct mig *m = arg;
    pgq_conn *c = NULL;
    m->rc = pgq_connect(dburl, &c, m->err, sizeof m->err);
    tu_barrier_wait(m->start);
    if (m->rc == 0)
        m->rc = pgq_migrate(c, &m->applied, m->err, sizeof m->err);
    pgq_disconnect(c);
    return NULL;
}

START_TEST(concurrent_migrates_apply_once)
{
    struct mig ms[MIGRATORS];
    pthread_t th[MIGRATORS];
    tu_barrier *b = tu_barrier_new(MIGRATORS);
    for (int i = 0; i < MIGRATORS; i++) {
        ms[i] = (struct mig){ .start = b };
        pthread_create(&th[i], NULL, migrate, &ms[i]);
    }
    int total = 0;
    for (int i = 0; i < MIGRATORS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(ms[i].rc == 0, "migrator %d: %s", i, ms[i].err);
        total += ms[i].applied;
    }
    ck_assert_int_eq(total, tu_nmigrations());
    tu_barrier_free(b);

    char err[512];
    pgq_conn *c = NULL;
    ck_assert(pgq_connect(dburl, &c, err, sizeof err) == 0);
    ck_assert_msg(pgq_schema_check(c, err, sizeof err) == 0, "%s", err);
    pgq_migration_status *s;
    size_t n;
    ck_assert(pgq_migrate_status(c, &s, &n, err, sizeof err) == 0);
    ck_assert_int_eq((int)n, tu_nmigrations());
    ck_assert(s[0].applied);
    ck_assert_str_eq(s[0].name, "001_schema.sql");
    free(s);
    pgq_disconnect(c);
}
END_TEST

START_TEST(unmigrated_database_is_refused_until_migrated)
{
    char err[512];
    pgq_conn *c = NULL;
    ck_assert(pgq_connect(dburl, &c, err, sizeof err) == 0);
    ck_assert_int_eq(pgq_schema_check(c, err, sizeof err), -1);
    char want[128];
    snprintf(want, sizeof want, "database schema is at version 0, this pgq needs %d: "
             "run `pgq migrate`", pgq_schema_version());
    ck_assert_str_eq(err, want);
    pgq_migration_status *s;
    size_t n;
    ck_assert(pgq_migrate_status(c, &s, &n, err, sizeof err) == 0);
    ck_assert(!s[0].applied);
    free(s);
    pgq_disconnect(c);
}
END_TEST

START_TEST(newer_schema_is_refused)
{
    char err[512];
    pgq_conn *c = NULL;
    ck_assert(pgq_connect(dburl, &c, err, sizeof err) == 0);
    ck_assert(pgq_migrate(c, NULL, err, sizeof err) == 0);
    PGresult *r = PQexec(pgq_conn_pg(c),
                         "INSERT INTO pgq.migrations (version, name) VALUES (999, '999_future.sql')");
    ck_assert_int_eq(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    int applied = -1;
    ck_assert_int_eq(pgq_migrate(c, &applied, err, sizeof err), -1);
    ck_assert_int_eq(applied, 0);
    char want[256];
    snprintf(want, sizeof want, "database schema is at version 999, newer than this pgq %s "
             "knows (%d): upgrade pgq; refusing to touch it", PGQ_VERSION, pgq_schema_version());
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(pgq_schema_check(c, err, sizeof err), -1);
    ck_assert_str_eq(err, want);
    pgq_disconnect(c);
}
END_TEST

static void sql_ok(pgq_conn *c, const char *sql)
{
    PGresult *r = PQexec(pgq_conn_pg(c), sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
                  "%s: %s", sql, PQerrorMessage(pgq_conn_pg(c)));
    PQclear(r);
}

/* migrations/state_machine.sql is applied by a migrate to this version,
 * again whenever the applied text is not this build's (a function lost or
 * changed by hand comes back), and never by a migrate to an older version;
 * until it is applied the schema check refuses the database. */
START_TEST(state_machine_is_applied_when_its_text_changed)
{
    char err[512], at[40];
    bool current = true;
    pgq_conn *c = NULL;
    ck_assert(pgq_connect(dburl, &c, err, sizeof err) == 0);
    if (pgq_schema_version() > 1) {
        ck_assert_msg(pgq_migrate_to(c, tu_prev_version(), NULL, err, sizeof err) == 0,
                      "%s", err);
        ck_assert(pgq_state_machine_status(c, &current, at, err, sizeof err) == 0);
        ck_assert(!current);
        ck_assert_str_eq(at, "");
    }
    ck_assert_msg(pgq_migrate(c, NULL, err, sizeof err) == 0, "%s", err);
    ck_assert(pgq_state_machine_status(c, &current, at, err, sizeof err) == 0);
    ck_assert(current);
    ck_assert_msg(at[0] >= '1' && at[0] <= '9', "applied at [%s]", at);
    ck_assert_msg(pgq_schema_check(c, err, sizeof err) == 0, "%s", err);

    /* Someone changed it by hand: a transition is gone and the MD5 is not ours. */
    sql_ok(c, "DROP FUNCTION pgq.renew(bigint[], uuid[], bigint)");
    sql_ok(c, "UPDATE pgq.state_machine SET md5 = 'edited'");
    ck_assert_int_eq(pgq_schema_check(c, err, sizeof err), -1);
    ck_assert_str_eq(err, "the database's job state machine is not this pgq's "
                          "(migrations/state_machine.sql changed): run `pgq migrate`");
    int applied = -1;
    ck_assert_msg(pgq_migrate(c, &applied, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(applied, 0);
    ck_assert_msg(pgq_schema_check(c, err, sizeof err) == 0, "%s", err);
    PGresult *r = PQexec(pgq_conn_pg(c),
                         "SELECT to_regprocedure('pgq.renew(bigint[], uuid[], bigint)') IS NOT NULL");
    ck_assert_str_eq(PQgetvalue(r, 0, 0), "t");
    PQclear(r);
    /* Applying the same text again changes nothing and is not repeated. */
    sql_ok(c, "UPDATE pgq.state_machine SET applied_at = '2000-01-01'");
    ck_assert(pgq_migrate(c, NULL, err, sizeof err) == 0);
    ck_assert(pgq_state_machine_status(c, &current, at, err, sizeof err) == 0);
    ck_assert(current);
    ck_assert_msg(strncmp(at, "2000-01-01", 10) == 0, "re-applied at %s", at);
    pgq_disconnect(c);
}
END_TEST

/* A pool of version 4 runs on while its database is migrated: its prepared
 * complete_claim (14 arguments, as core/db.c of version 4 sent it) still
 * completes and claims after migrations/state_machine.sql replaced the
 * 16-argument function with one that takes p_keep_done. */
START_TEST(a_version_4_pools_prepared_claim_survives_the_migration)
{
    char err[512];
    pgq_conn *c = NULL;
    ck_assert(pgq_connect(dburl, &c, err, sizeof err) == 0);
    if (pgq_schema_version() < 5) {
        pgq_disconnect(c);
        return;
    }
    ck_assert_msg(pgq_migrate_to(c, 4, NULL, err, sizeof err) == 0, "%s", err);
    sql_ok(c, "INSERT INTO pgq.job_types (type) VALUES ('t')");
    sql_ok(c, "SELECT pgq.add('t', '{}'), pgq.add('t', '{}')");
    PGconn *old = PQconnectdb(dburl);
    ck_assert(PQstatus(old) == CONNECTION_OK);
    PGresult *r = PQprepare(old, "v4_complete_claim",
        "SELECT acked, id, queue, type, payload, attempts, max_retries, priority, lease_token,"
        "  timeout_ms, ord, run_at"
        " FROM pgq.complete_claim($1::bigint[], $2::uuid[], $3::int[], $4::int[],"
        "  $5::bigint[], $6::bigint[], $7::text[], $8, $9::bigint, $10::int, $11::int[],"
        "  $12::bigint[], $13::bigint[], $14::boolean)", 14, NULL);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s", PQerrorMessage(old));
    PQclear(r);
    const char *claim[14] = { NULL, NULL, NULL, NULL, NULL, NULL, "{default}", "old", "30000",
                              "1", NULL, NULL, NULL, "false" };
    r = PQexecPrepared(old, "v4_complete_claim", 14, claim, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "%s",
                  PQerrorMessage(old));
    char id[32], tok[64], ids[40], toks[80];
    snprintf(id, sizeof id, "%s", PQgetvalue(r, 0, 1));
    snprintf(tok, sizeof tok, "%s", PQgetvalue(r, 0, 8));
    PQclear(r);

    ck_assert_msg(pgq_migrate(c, NULL, err, sizeof err) == 0, "%s", err);

    snprintf(ids, sizeof ids, "{%s}", id);
    snprintf(toks, sizeof toks, "{%s}", tok);
    const char *cc[14] = { ids, toks, NULL, NULL, NULL, NULL, "{default}", "old", "30000",
                           "1", NULL, NULL, NULL, "false" };
    r = PQexecPrepared(old, "v4_complete_claim", 14, cc, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "after the migration: %s",
                  PQerrorMessage(old));
    ck_assert_int_eq(PQntuples(r), 2);   /* the ack and the next job */
    PQclear(r);
    PQfinish(old);
    const char *p[] = { id };
    r = PQexecParams(pgq_conn_pg(c), "SELECT state FROM pgq.jobs WHERE id = $1", 1, NULL, p,
                     NULL, NULL, 0);
    ck_assert_str_eq(PQgetvalue(r, 0, 0), "done");
    PQclear(r);
    pgq_disconnect(c);
}
END_TEST

/* A pool of version 6 runs on while the state machine of version 9 is
 * applied (it drops and re-creates pgq.complete_claim, pgq.fail,
 * pgq.release and pgq.claim with new arguments and names): its prepared
 * statements, as core/db.c of version 6 sent them, still resolve and work
 * afterwards. The state machine is applied again here (the MD5 made
 * stale) while the statements are prepared. */
START_TEST(version_6_pools_statements_survive_the_state_machine)
{
    static const struct { const char *name, *sql; int n; } stmts[] = {
        { "v6_complete_claim",
          "SELECT acked, id, queue, type, payload, attempts, max_retries, priority, lease_token,"
          "  timeout_ms, ord, run_at"
          " FROM pgq.complete_claim($1::bigint[], $2::uuid[], $3::int[], $4::int[],"
          "  $5::bigint[], $6::bigint[], $7::text[], $8, $9::bigint, $10::int, $11::int[],"
          "  $12::bigint[], $13::bigint[], $14::boolean, p_keep_done => $15::boolean)", 15 },
        { "v6_fail", "SELECT state, extract(epoch FROM run_at - now()) FROM pgq.fail($1, $2::uuid,"
                     " $3, 'failed', $4, $5, $6, $7)", 7 },
        { "v6_release", "SELECT 1 WHERE pgq.release($1, $2::uuid)", 2 },
        { "v6_claim", "SELECT id, lease_token::text FROM pgq.claim($1::text[], $2, $3::bigint)", 3 },
    };
    char err[512];
    pgq_conn *c = NULL;
    ck_assert(pgq_connect(dburl, &c, err, sizeof err) == 0);
    ck_assert_msg(pgq_migrate(c, NULL, err, sizeof err) == 0, "%s", err);
    sql_ok(c, "INSERT INTO pgq.job_types (type) VALUES ('t')");
    sql_ok(c, "SELECT pgq.add('t', '{}'), pgq.add('t', '{}'), pgq.add('t', '{}'), "
              "pgq.add('t', '{}')");
    PGconn *old = PQconnectdb(dburl);
    ck_assert(PQstatus(old) == CONNECTION_OK);
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++) {
        PGresult *r = PQprepare(old, stmts[i].name, stmts[i].sql, stmts[i].n, NULL);
        ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s: %s", stmts[i].name,
                      PQerrorMessage(old));
        PQclear(r);
    }
    /* used once before, so that their plans are cached */
    const char *cl[] = { "{default}", "old", "30000" };
    PGresult *r = PQexecPrepared(old, "v6_claim", 3, cl, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "%s",
                  PQerrorMessage(old));
    char id1[32], tok1[64];
    snprintf(id1, sizeof id1, "%s", PQgetvalue(r, 0, 0));
    snprintf(tok1, sizeof tok1, "%s", PQgetvalue(r, 0, 1));
    PQclear(r);

    sql_ok(c, "UPDATE pgq.state_machine SET md5 = 'stale'");
    ck_assert_msg(pgq_migrate(c, NULL, err, sizeof err) == 0, "%s", err);

    /* complete job 1 with the old 15-argument call, claiming job 2 */
    char ids[40], toks[80];
    snprintf(ids, sizeof ids, "{%s}", id1);
    snprintf(toks, sizeof toks, "{%s}", tok1);
    const char *cc[15] = { ids, toks, NULL, NULL, NULL, NULL, "{default}", "old", "30000",
                           "1", NULL, NULL, NULL, "false", "true" };
    r = PQexecPrepared(old, "v6_complete_claim", 15, cc, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "complete_claim: %s", PQerrorMessage(old));
    ck_assert_int_eq(PQntuples(r), 2);   /* the ack and the next job */
    char id2[32] = "", tok2[64] = "";
    for (int i = 0; i < 2; i++)
        if (PQgetisnull(r, i, 0)) {
            snprintf(id2, sizeof id2, "%s", PQgetvalue(r, i, 1));
            snprintf(tok2, sizeof tok2, "%s", PQgetvalue(r, i, 8));
        }
    PQclear(r);
    const char *fp[] = { id2, tok2, "boom", NULL, NULL, NULL, NULL };
    r = PQexecPrepared(old, "v6_fail", 7, fp, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "fail: %s",
                  PQerrorMessage(old));
    ck_assert_str_eq(PQgetvalue(r, 0, 0), "ready");
    PQclear(r);
    r = PQexecPrepared(old, "v6_claim", 3, cl, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "claim: %s",
                  PQerrorMessage(old));
    const char *rp[] = { tu_fmt("%s", PQgetvalue(r, 0, 0)), tu_fmt("%s", PQgetvalue(r, 0, 1)) };
    PQclear(r);
    r = PQexecPrepared(old, "v6_release", 2, rp, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "release: %s",
                  PQerrorMessage(old));
    PQclear(r);
    PQfinish(old);
    const char *p[] = { id1 };
    r = PQexecParams(pgq_conn_pg(c), "SELECT state FROM pgq.jobs WHERE id = $1", 1, NULL, p,
                     NULL, NULL, 0);
    ck_assert_str_eq(PQgetvalue(r, 0, 0), "done");
    PQclear(r);
    pgq_disconnect(c);
}
END_TEST

/* A schema "pgq" that pgq did not create is refused with a message that
 * says why, and nothing is written into it: Skytools PgQ's extension (the
 * Debian package postgresql-15-pgq3, which scripts/deps.sh installs), a
 * schema holding anything else. An empty schema made beforehand is taken. */
START_TEST(a_schema_pgq_of_someone_else_is_refused)
{
    char err[512];
    pgq_conn *c = NULL;
    ck_assert(pgq_connect(dburl, &c, err, sizeof err) == 0);
    PGresult *r = PQexec(pgq_conn_pg(c),
                         "SELECT count(*) FROM pg_available_extensions WHERE name = 'pgq'");
    bool skytools = strcmp(PQgetvalue(r, 0, 0), "1") == 0;
    PQclear(r);
    if (skytools) {
        sql_ok(c, "CREATE EXTENSION pgq");
        ck_assert_int_eq(pgq_migrate(c, NULL, err, sizeof err), -1);
        ck_assert_msg(strstr(err, "schema \"pgq\" belongs to the extension \"pgq\" (Skytools "
                                  "PgQ?), not to this pgq: refusing to write into it"), "%s", err);
        r = PQexec(pgq_conn_pg(c), "SELECT to_regclass('pgq.migrations') IS NULL"
                                   "   AND to_regclass('pgq.jobs') IS NULL");
        ck_assert_str_eq(PQgetvalue(r, 0, 0), "t");
        PQclear(r);
        sql_ok(c, "DROP EXTENSION pgq CASCADE");
    } else {
        fprintf(stderr, "migrate_test: Skytools PgQ (postgresql-15-pgq3) is not installed: "
                        "its extension case is not tried\n");
    }
    sql_ok(c, "CREATE SCHEMA IF NOT EXISTS pgq; CREATE TABLE pgq.queue (id int)");
    ck_assert_int_eq(pgq_migrate(c, NULL, err, sizeof err), -1);
    ck_assert_str_eq(err, "schema \"pgq\" exists and holds 1 object that pgq did not create (it "
                          "has no pgq.migrations): refusing to write into it. Use a database "
                          "without it, or move them away");
    sql_ok(c, "DROP TABLE pgq.queue");
    ck_assert_msg(pgq_migrate(c, NULL, err, sizeof err) == 0, "empty schema: %s", err);
    ck_assert_msg(pgq_schema_check(c, err, sizeof err) == 0, "%s", err);
    pgq_disconnect(c);
}
END_TEST

Suite *migrate_suite(void)
{
    Suite *s = suite_create("migrate");
    TCase *tc = tcase_create("migrate");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, TU_TIMEOUT);
    tcase_add_test(tc, concurrent_migrates_apply_once);
    tcase_add_test(tc, unmigrated_database_is_refused_until_migrated);
    tcase_add_test(tc, newer_schema_is_refused);
    tcase_add_test(tc, state_machine_is_applied_when_its_text_changed);
    tcase_add_test(tc, a_version_4_pools_prepared_claim_survives_the_migration);
    tcase_add_test(tc, version_6_pools_statements_survive_the_state_machine);
    tcase_add_test(tc, a_schema_pgq_of_someone_else_is_refused);
    suite_add_tcase(s, tc);
    return s;
}
