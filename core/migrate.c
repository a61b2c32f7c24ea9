/* Schema migrations. The SQL files of migrations/ are compiled in (see
 * scripts/embed-sql.sh). Each step takes an advisory lock for its
 * transaction (MIGRATE_LOCK), so two migrates at once serialize: the second
 * finds nothing left to do. Each
 * pending migration runs in its own transaction together with its row in
 * pgq.migrations, so a failure leaves the schema at the last good version.
 * pgq_migrate_to stops at a given version (the upgrade test builds a
 * database as an older pgq left it); migrations never go back.
 *
 * After the numbered migrations, a migrate to this library's version
 * applies the state machine's one home (migrations/state_machine.sql, every
 * job transition as CREATE OR REPLACE) when the MD5 recorded in
 * pgq.state_machine is not that of the text compiled in, in one transaction
 * with the new MD5. pgq_schema_check refuses a database whose state machine
 * is not this build's, as it refuses an older schema.
 *
 * Then, at every migrate to this version, the roles and grants
 * (migrations/grants.sql), in that same transaction: CREATE OR REPLACE
 * resets a function's SECURITY DEFINER and search_path and a new function
 * starts with PUBLIC EXECUTE, so no other transaction may see the state
 * machine without them. Applied every time, not by MD5, so that roles a
 * superuser created after the last migrate get their grants from the next
 * one. */
#include "db.h"
#include "migrations.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Arbitrary but fixed: "pgq" in ASCII, the advisory lock of migrate. Every
 * step of a migrate is one transaction that takes it first (at transaction
 * level: a session lock would not stay with us through a transaction
 * pooler) and then looks again at what is applied, so concurrent migrates
 * serialize step by step and the later ones find nothing left to do. */
#define MIGRATE_LOCK "7366513"

int pgq_schema_version(void)
{
    return pgq_nmigrations ? pgq_migrations[pgq_nmigrations - 1].version : 0;
}

/* The highest applied version, 0 when pgq was never migrated here. */
static int applied_version(pgq_conn *c, int *version, char *err, size_t errlen)
{
    PGresult *r = db_query(c, "SELECT to_regclass('pgq.migrations') IS NOT NULL", 0, NULL,
                           PGRES_TUPLES_OK, "schema version", err, errlen);
    if (!r)
        return -1;
    bool exists = db_bool(r, 0, 0);
    PQclear(r);
    *version = 0;
    if (!exists)
        return 0;
    r = db_query(c, "SELECT coalesce(max(version), 0) FROM pgq.migrations", 0, NULL,
                 PGRES_TUPLES_OK, "schema version", err, errlen);
    if (!r)
        return -1;
    *version = (int)db_int64(r, 0, 0, 0);
    PQclear(r);
    return 0;
}

static int refuse_newer(int have, char *err, size_t errlen)
{
    return seterr(err, errlen,
                  "database schema is at version %d, newer than this pgq %s knows (%d): "
                  "upgrade pgq; refusing to touch it", have, PGQ_VERSION, pgq_schema_version());
}

/* Whether the database's state machine is the one compiled in: *current
 * false when another text (or none) was applied. applied_at (may be NULL,
 * 40 bytes) gets when it was applied, "" if never. */
static int state_current(pgq_conn *c, bool *current, char *applied_at, char *err, size_t errlen)
{
    const char *params[] = { pgq_state_md5 };
    PGresult *r = db_query(c,
        "SELECT coalesce((SELECT s.md5 = $1 FROM pgq.state_machine s), false),"
        "       coalesce((SELECT s.applied_at::text FROM pgq.state_machine s), '')",
        1, params, PGRES_TUPLES_OK, "state machine version", err, errlen);
    if (!r)
        return -1;
    *current = db_bool(r, 0, 0);
    if (applied_at)
        snprintf(applied_at, 40, "%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    return 0;
}

/* BEGIN and the migrate lock. */
static int step_begin(pgq_conn *c, const char *what, char *err, size_t errlen)
{
    if (db_command(c, "BEGIN", what, err, errlen) < 0)
        return -1;
    PGresult *r = db_query(c, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK ")", 0, NULL,
                           PGRES_TUPLES_OK, what, err, errlen);
    if (!r) {
        PQclear(PQexec(c->pg, "ROLLBACK"));
        return -1;
    }
    PQclear(r);
    return 0;
}

/* (Re)define every transition, recording the text's MD5 with it, unless a
 * concurrent migrate just did; then the roles and grants, in the same
 * transaction. */
static int apply_state(pgq_conn *c, char *err, size_t errlen)
{
    const char *what = "state machine (migrations/state_machine.sql)";
    const char *params[] = { pgq_state_md5 };
    bool current;
    PGresult *r;

    if (step_begin(c, what, err, errlen) < 0)
        return -1;
    if (state_current(c, &current, NULL, err, errlen) < 0)
        goto fail;
    if (!current) {
        r = PQexec(c->pg, pgq_state_sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
            db_error(c, r, what, err, errlen);
            PQclear(r);
            goto fail;
        }
        PQclear(r);
        r = db_query(c, "INSERT INTO pgq.state_machine (md5) VALUES ($1)"
                        " ON CONFLICT (one) DO UPDATE SET md5 = excluded.md5, applied_at = now()",
                     1, params, PGRES_COMMAND_OK, what, err, errlen);
        if (!r)
            goto fail;
        PQclear(r);
    }
    what = "roles and grants (migrations/grants.sql)";
    r = PQexec(c->pg, pgq_grants_sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        db_error(c, r, what, err, errlen);
        PQclear(r);
        goto fail;
    }
    PQclear(r);
    return db_command(c, "COMMIT", what, err, errlen);
fail:
    PQclear(PQexec(c->pg, "ROLLBACK"));
    return -1;
}

int pgq_schema_check(pgq_conn *c, char *err, size_t errlen)
{
    int have;
    if (applied_version(c, &have, err, errlen) < 0)
        return -1;
    if (have > pgq_schema_version())
        return refuse_newer(have, err, errlen);
    if (have < pgq_schema_version())
        return seterr(err, errlen, "database schema is at version %d, this pgq needs %d: "
                      "run `pgq migrate`", have, pgq_schema_version());
    bool current;
    if (state_current(c, &current, NULL, err, errlen) < 0)
        return -1;
    if (!current)
        return seterr(err, errlen, "the database's job state machine is not this pgq's "
                      "(migrations/state_machine.sql changed): run `pgq migrate`");
    return 0;
}

int pgq_state_machine_status(pgq_conn *c, bool *current, char applied_at[40],
                             char *err, size_t errlen)
{
    int have;
    *current = false;
    applied_at[0] = '\0';
    if (applied_version(c, &have, err, errlen) < 0)
        return -1;
    if (have < pgq_schema_version())
        return 0;   /* no pgq.state_machine yet, or an older one: pending */
    return state_current(c, current, applied_at, err, errlen);
}

/* Apply migration m unless a concurrent migrate already did (*did says). */
static int apply_one(pgq_conn *c, const struct pgq_migration *m, bool *did, char *err,
                     size_t errlen)
{
    char what[128], ver[16];
    snprintf(what, sizeof what, "migration %s", m->name);
    snprintf(ver, sizeof ver, "%d", m->version);
    const char *params[] = { ver, m->name };

    *did = false;
    if (step_begin(c, what, err, errlen) < 0)
        return -1;
    PGresult *r = db_query(c, "SELECT count(*) FROM pgq.migrations WHERE version = $1", 1, params,
                           PGRES_TUPLES_OK, what, err, errlen);
    if (!r)
        goto fail;
    bool done = db_int64(r, 0, 0, 0) > 0;
    PQclear(r);
    if (done)
        return db_command(c, "COMMIT", what, err, errlen);
    r = PQexec(c->pg, m->sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        db_error(c, r, what, err, errlen);
        PQclear(r);
        goto fail;
    }
    PQclear(r);
    r = db_query(c, "INSERT INTO pgq.migrations (version, name) VALUES ($1, $2)", 2, params,
                 PGRES_COMMAND_OK, what, err, errlen);
    if (!r)
        goto fail;
    PQclear(r);
    if (db_command(c, "COMMIT", what, err, errlen) < 0)
        return -1;
    *did = true;
    return 0;
fail:
    PQclear(PQexec(c->pg, "ROLLBACK"));
    return -1;
}

int pgq_migrate(pgq_conn *c, int *applied, char *err, size_t errlen)
{
    return pgq_migrate_to(c, pgq_schema_version(), applied, err, errlen);
}

/* A schema named pgq that pgq did not create is refused before anything is
 * written: Skytools PgQ's extension (`CREATE EXTENSION pgq`) lives in one,
 * and pgq's tables written into it would be dropped with the extension
 * (DROP EXTENSION pgq CASCADE deletes every job). pgq's own schema has
 * pgq.migrations; an empty schema (made beforehand, say for its grants) is
 * taken. */
static int foreign_schema(pgq_conn *c, char *err, size_t errlen)
{
    PGresult *r = db_query(c,
        "SELECT (SELECT e.extname FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid"
        "         WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid"
        "           AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' LIMIT 1),"
        "       (SELECT count(*) FROM pg_class k WHERE k.relnamespace = n.oid)"
        "     + (SELECT count(*) FROM pg_proc f WHERE f.pronamespace = n.oid)"
        "     + (SELECT count(*) FROM pg_type t WHERE t.typnamespace = n.oid"
        "          AND t.typrelid = 0 AND t.typelem = 0),"
        "       to_regclass('pgq.migrations') IS NOT NULL"
        "  FROM pg_namespace n WHERE n.nspname = 'pgq'",
        0, NULL, PGRES_TUPLES_OK, "migrate: schema pgq", err, errlen);
    if (!r)
        return -1;
    int rc = 0;
    if (PQntuples(r) == 1 && !db_bool(r, 0, 2)) {
        if (!PQgetisnull(r, 0, 0))
            rc = seterr(err, errlen, "schema \"pgq\" belongs to the extension \"%s\" (Skytools "
                        "PgQ?), not to this pgq: refusing to write into it. Use a database "
                        "without it, or drop the extension there", PQgetvalue(r, 0, 0));
        else if (db_int64(r, 0, 1, 0) > 0)
            rc = seterr(err, errlen, "schema \"pgq\" exists and holds %s object%s that pgq did "
                        "not create (it has no pgq.migrations): refusing to write into it. Use "
                        "a database without it, or move them away", PQgetvalue(r, 0, 1),
                        db_int64(r, 0, 1, 0) == 1 ? "" : "s");
    }
    PQclear(r);
    return rc;
}

int pgq_migrate_to(pgq_conn *c, int target, int *applied, char *err, size_t errlen)
{
    int have, n = 0, rc = -1;

    if (applied)
        *applied = 0;
    bool known = false;
    for (size_t i = 0; i < pgq_nmigrations; i++)
        known |= pgq_migrations[i].version == target;
    if (!known)
        return seterr(err, errlen, "no migration %d (this pgq %s knows 1 to %d)",
                      target, PGQ_VERSION, pgq_schema_version());
    if (step_begin(c, "migrate: bootstrap", err, errlen) < 0)
        return -1;
    if (foreign_schema(c, err, errlen) < 0 ||
        db_command(c, "CREATE SCHEMA IF NOT EXISTS pgq; "
                      "CREATE TABLE IF NOT EXISTS pgq.migrations ("
                      " version int PRIMARY KEY, name text NOT NULL,"
                      " applied_at timestamptz NOT NULL DEFAULT now())",
                   "migrate: bootstrap", err, errlen) < 0) {
        PQclear(PQexec(c->pg, "ROLLBACK"));
        return -1;
    }
    if (db_command(c, "COMMIT", "migrate: bootstrap", err, errlen) < 0)
        return -1;
    if (applied_version(c, &have, err, errlen) < 0)
        goto out;
    if (have > pgq_schema_version()) {
        refuse_newer(have, err, errlen);
        goto out;
    }
    if (have > target) {
        seterr(err, errlen, "database schema is at version %d, past %d: "
               "migrations only go forward", have, target);
        goto out;
    }
    for (size_t i = 0; i < pgq_nmigrations; i++) {
        if (pgq_migrations[i].version <= have || pgq_migrations[i].version > target)
            continue;
        bool did;
        if (apply_one(c, &pgq_migrations[i], &did, err, errlen) < 0)
            goto out;
        n += did;
    }
    if (target == pgq_schema_version() && apply_state(c, err, errlen) < 0)
        goto out;
    rc = 0;
out:
    if (applied)
        *applied = n;
    return rc;
}

int pgq_migrate_status(pgq_conn *c, pgq_migration_status **out, size_t *n,
                       char *err, size_t errlen)
{
    PGresult *r = NULL;
    int have;

    *out = NULL;
    *n = 0;
    if (applied_version(c, &have, err, errlen) < 0)
        return -1;
    if (have > 0) {
        r = db_query(c, "SELECT version, name, applied_at::text FROM pgq.migrations ORDER BY version",
                     0, NULL, PGRES_TUPLES_OK, "migrate status", err, errlen);
        if (!r)
            return -1;
    }
    int rows = r ? PQntuples(r) : 0;
    pgq_migration_status *s = calloc(pgq_nmigrations + (size_t)rows + 1, sizeof *s);
    if (!s) {
        PQclear(r);
        return seterr(err, errlen, "migrate status: out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < pgq_nmigrations; i++) {
        s[k].version = pgq_migrations[i].version;
        s[k].name = pgq_migrations[i].name;
        for (int row = 0; row < rows; row++) {
            if (db_int64(r, row, 0, -1) == s[k].version) {
                s[k].applied = true;
                snprintf(s[k].applied_at, sizeof s[k].applied_at, "%s", PQgetvalue(r, row, 2));
            }
        }
        k++;
    }
    /* Versions applied by a newer pgq: listed so the operator sees why. */
    for (int row = 0; row < rows; row++) {
        if (db_int64(r, row, 0, 0) > pgq_schema_version()) {
            s[k].version = (int)db_int64(r, row, 0, 0);
            s[k].name = "(unknown to this pgq)";
            s[k].applied = true;
            snprintf(s[k].applied_at, sizeof s[k].applied_at, "%s", PQgetvalue(r, row, 2));
            k++;
        }
    }
    PQclear(r);
    *out = s;
    *n = k;
    return 0;
}
