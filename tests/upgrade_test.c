/* Upgrades keep everything (issue 10, item 5). A database left at schema
 * version 3 by an older pgq, holding jobs in every state, is migrated by
 * this pgq to its newest version while a pool of the older release holds
 * leases and heartbeats. Then:
 *   - every public column (DESIGN.md) of every row of pgq.jobs,
 *     job_attempts, effects, effects_in_doubt, workers, actions, job_types
 *     and the old pgq.migrations rows is what it was, compared column by
 *     column; the one change allowed is a later lease expiry (and pool
 *     heartbeat), since the old pool keeps renewing during the migration;
 *   - the old pool carries on with its own statements, all prepared before
 *     the migration and run after it: it renews its leases, completes,
 *     fails and releases them by token, finishes its run_once effects
 *     (done, forgotten, an earlier done one skipped), adds, claims and
 *     reaps;
 *   - this library works on the upgraded data: renews, completes, fails and
 *     releases the old pool's leases by token (a stale token still changes
 *     nothing), claims every due job, sees the in-doubt effect, requeues
 *     the dead, shows their history, finds the idempotency key;
 *   - pgq.check_invariants() finds nothing after the migration and after
 *     the old pool finished.
 *
 * The old pool is emulated. Its statements below are schema 3's, copied
 * from core/db.c, admin.c, registry.c and types.c as release 0.1.0 had
 * them: they stand for what a pool (and a `pgq` CLI) of the previous
 * release sends, and must NOT be updated to follow the library. The pool is
 * a heartbeat thread with its own connection (renewing its leases every
 * 20 ms and refreshing its pgq.workers row, as pool/heartbeat.c does) plus
 * a worker connection the test drives. The test runs in a database of its
 * own, created and dropped by the fixture, built to version 3 with
 * pgq_migrate_to() exactly as an older `pgq migrate` applied the embedded
 * migrations. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "migrations.h"
#include "testutil.h"

#define OLD_VERSION 3
#define LEASE_MS "30000"
#define OLD_POOL "oldhost:4242:1700000000"
#define OLD_WORKER "oldhost:4242:w0"
#define MAX_LEASES 16

/* ---- the previous release's statements (schema 3) -------------------------- */

enum old_stmt {
    OLD_ADD, OLD_HEARTBEAT, OLD_COMPLETE_CLAIM, OLD_FAIL, OLD_RELEASE, OLD_REAP,
    OLD_ONCE_BEGIN, OLD_ONCE_DONE, OLD_ONCE_FORGET, OLD_ADD_ONE, OLD_CLAIM,
    OLD_POOL_REGISTER, OLD_POOL_BEAT, OLD_POOL_DEREGISTER, OLD_TYPE_UPSERT, OLD_CANCEL,
    OLD_REQUEUE, OLD__COUNT
};

static const struct {
    const char *name, *sql;
} old_stmts[OLD__COUNT] = {
    [OLD_ADD] = { "old_add",
        "SELECT ord, id, duplicate FROM pgq.enqueue($1::text[], $2::text[], $3::text[], "
        "$4::int[], $5::timestamptz[], $6::bigint[], $7::int[], $8::text[])" },
    [OLD_HEARTBEAT] = { "old_heartbeat",
        "UPDATE pgq.jobs j SET lease_expires_at = now() + $3::bigint * interval '1 millisecond'"
        "  FROM unnest($1::bigint[], $2::uuid[]) AS h(id, token)"
        " WHERE j.id = h.id AND j.lease_token = h.token AND (j.state = 'running') IS TRUE"
        " RETURNING j.id, j.lease_token::text" },
    [OLD_COMPLETE_CLAIM] = { "old_complete_claim",
        "SELECT acked, id, queue, type, payload, attempts, max_retries, priority, lease_token,"
        "  timeout_ms, ord"
        " FROM pgq.complete_claim($1::bigint[], $2::uuid[], $3::int[], $4::int[],"
        "  $5::bigint[], $6::bigint[], $7::text[], $8, $9::bigint, $10::int)" },
    [OLD_FAIL] = { "old_fail",
        "SELECT state, extract(epoch FROM run_at - now()) FROM pgq.fail($1, $2::uuid, $3,"
        " 'failed', $4, $5, $6, $7)" },
    [OLD_RELEASE] = { "old_release",
        "WITH upd AS ("
        "  UPDATE pgq.jobs SET state = 'ready', attempts = attempts - 1,"
        "    lease_token = NULL, lease_expires_at = NULL"
        "   WHERE id = $1 AND lease_token = $2::uuid AND (state = 'running') IS TRUE"
        "  RETURNING id, queue, attempts + 1 AS attempt, lease_owner, started_at),"
        " hist AS ("
        "  INSERT INTO pgq.job_attempts (job_id, attempt, outcome, worker, error, started_at,"
        "    duration_ms)"
        "  SELECT id, attempt, 'released', lease_owner, 'released (not counted)', started_at,"
        "    extract(epoch FROM clock_timestamp() - started_at) * 1000 FROM upd)"
        " SELECT id, pg_notify('pgq_jobs', queue) FROM upd" },
    [OLD_REAP] = { "old_reap",
        "SELECT x.id, f.state FROM ("
        "  SELECT id, lease_token FROM pgq.jobs"
        "   WHERE state = 'running' AND lease_expires_at < now()"
        "   ORDER BY lease_expires_at LIMIT $1 FOR UPDATE SKIP LOCKED) x"
        " CROSS JOIN LATERAL pgq.fail(x.id, x.lease_token, 'lease expired', 'lease_expired',"
        "   NULL, NULL, NULL, NULL) f" },
    [OLD_ONCE_BEGIN] = { "old_once_begin",
        "WITH lease AS ("
        "  SELECT id, attempts, lease_owner FROM pgq.jobs"
        "   WHERE id = $1 AND lease_token = $2::uuid AND (state = 'running') IS TRUE"
        "     AND lease_expires_at > now() FOR SHARE),"
        " ins AS ("
        "  INSERT INTO pgq.effects (job_id, key, state, attempt, lease_token, worker)"
        "  SELECT id, $3, 'started', attempts, $2::uuid, lease_owner FROM lease"
        "  ON CONFLICT (job_id, key) DO NOTHING RETURNING job_id)"
        " SELECT (SELECT count(*) FROM lease) AS held, (SELECT count(*) FROM ins) AS inserted,"
        "  (SELECT state FROM pgq.effects WHERE job_id = $1 AND key = $3) AS existing" },
    [OLD_ONCE_DONE] = { "old_once_done",
        "UPDATE pgq.effects SET state = 'done', finished_at = now()"
        " WHERE job_id = $1 AND key = $3 AND lease_token = $2::uuid AND state = 'started'"
        " RETURNING job_id" },
    [OLD_ONCE_FORGET] = { "old_once_forget",
        "DELETE FROM pgq.effects"
        " WHERE job_id = $1 AND key = $3 AND lease_token = $2::uuid AND state = 'started'"
        " RETURNING job_id" },
    [OLD_ADD_ONE] = { "old_add_one",
        "WITH t AS (SELECT queue, priority, max_retries, required FROM pgq.job_types"
        "            WHERE type = $1)"
        " INSERT INTO pgq.jobs AS j (queue, type, payload, priority, run_at, max_retries,"
        "   idempotency_key)"
        " SELECT coalesce($3, t.queue), $1, i.payload, coalesce($4::int, t.priority), i.run_at,"
        "   coalesce($7::int, t.max_retries), $8"
        "  FROM (SELECT $2::jsonb AS payload, coalesce($5::timestamptz,"
        "          now() + coalesce($6::bigint, 0) * interval '1 millisecond') AS run_at"
        "        OFFSET 0) i"
        "  LEFT JOIN t ON true"
        " WHERE (t.required = '{}' AND isfinite(i.run_at))"
        "    OR pgq.check_item(1, $1, i.payload, i.run_at, t.required)"
        " ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
        " RETURNING j.id, CASE WHEN j.run_at <= now() THEN pg_notify('pgq_jobs', j.queue) END" },
    /* Schema 3's one-job claim function, called as an SQL producer would. */
    [OLD_CLAIM] = { "old_claim",
        "SELECT id, lease_token::text FROM pgq.claim($1::text[], $2, $3::bigint)" },
    [OLD_POOL_REGISTER] = { "old_pool_register",
        "INSERT INTO pgq.workers (name, host, pid, workers, queues, version)"
        " VALUES ($1, $2, $3, $4, $5::text[], $6)"
        " ON CONFLICT (name) DO UPDATE SET last_heartbeat = now()" },
    [OLD_POOL_BEAT] = { "old_pool_beat",
        "WITH beat AS (UPDATE pgq.workers SET last_heartbeat = now(), in_flight = $2"
        "   WHERE name = $1 RETURNING id),"
        " gone AS (DELETE FROM pgq.workers"
        "   WHERE last_heartbeat < now() - interval '1 hour' AND name <> $1)"
        " SELECT count(*) FROM beat" },
    [OLD_POOL_DEREGISTER] = { "old_pool_deregister",
        "DELETE FROM pgq.workers WHERE name = $1" },
    [OLD_TYPE_UPSERT] = { "old_type_upsert",
        "INSERT INTO pgq.job_types AS t (type, queue, required, max_retries, priority,"
        "  timeout_ms, backoff_base_ms, backoff_max_ms)"
        " VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8)"
        " ON CONFLICT (type) DO UPDATE SET queue = EXCLUDED.queue, required = EXCLUDED.required,"
        "  max_retries = EXCLUDED.max_retries, priority = EXCLUDED.priority,"
        "  timeout_ms = EXCLUDED.timeout_ms, backoff_base_ms = EXCLUDED.backoff_base_ms,"
        "  backoff_max_ms = EXCLUDED.backoff_max_ms, updated_at = now()" },
    [OLD_CANCEL] = { "old_cancel",
        "WITH upd AS (UPDATE pgq.jobs SET state = 'cancelled', finished_at = now()"
        "   WHERE id = ANY($1::bigint[]) AND state = 'ready' RETURNING id),"
        " act AS (INSERT INTO pgq.actions (action, job_count, job_ids, detail)"
        "   SELECT 'cancel', count(*), array_agg(id), $2 FROM upd HAVING count(*) > 0)"
        " SELECT id FROM upd" },
    [OLD_REQUEUE] = { "old_requeue",
        "WITH upd AS (UPDATE pgq.jobs "
        "SET state = 'ready', run_at = now(), attempts = 0, finished_at = NULL, "
        "lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL"
        "   WHERE id = ANY($1::bigint[]) AND state IN ('dead', 'cancelled')"
        "   RETURNING id, queue),"
        " act AS (INSERT INTO pgq.actions (action, job_count, job_ids, detail)"
        "   SELECT 'requeue', count(*), array_agg(id), $2 FROM upd HAVING count(*) > 0)"
        " SELECT id, pg_notify('pgq_jobs', queue) FROM upd" },
};

static PGconn *raw_connect(const char *url)
{
    PGconn *pg = PQconnectdb(url);
    ck_assert_msg(PQstatus(pg) == CONNECTION_OK, "connect: %s", PQerrorMessage(pg));
    return pg;
}

/* Prepare every old statement on pg, as a long-running old pool has them. */
static void old_prepare(PGconn *pg)
{
    for (int s = 0; s < OLD__COUNT; s++) {
        PGresult *r = PQprepare(pg, old_stmts[s].name, old_stmts[s].sql, 0, NULL);
        ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "prepare %s: %s",
                      old_stmts[s].name, PQresultErrorMessage(r));
        PQclear(r);
    }
}

static PGresult *old_exec(PGconn *pg, enum old_stmt s, int n, const char *const *params)
{
    return PQexecPrepared(pg, old_stmts[s].name, n, params, NULL, NULL, 0);
}

/* Run an old statement from the test's thread; assert it worked. */
static PGresult *old_run(PGconn *pg, enum old_stmt s, int n, const char *const *params)
{
    PGresult *r = old_exec(pg, s, n, params);
    ExecStatusType st = PQresultStatus(r);
    ck_assert_msg(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK,
                  "the old pool's %s failed: %s", old_stmts[s].name, PQresultErrorMessage(r));
    return r;
}

/* ---- small helpers ---------------------------------------------------------- */

static PGconn *W;   /* the old pool's worker connection (driven by the test's thread) */
static PGconn *K;   /* checks and dumps */


/* First column of the only row, as text kept in the ring ("" for NULL). */
static const char *one(PGconn *pg, const char *sql, int n, const char *const *params)
{
    PGresult *r = tu_query(pg, sql, n, params);
    ck_assert_msg(PQntuples(r) == 1, "expected one row, got %d: %s", PQntuples(r), sql);
    const char *v = tu_fmt("%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

/* Wait until job id's lease has run out (bounded: 60 s). */
static void wait_lease_expired(int64_t id)
{
    char ids[24];
    snprintf(ids, sizeof ids, "%lld", (long long)id);
    const char *p[] = { ids };
    for (int i = 0; i < 6000; i++) {
        if (strcmp(one(K, "SELECT lease_expires_at < now() FROM pgq.jobs WHERE id = $1", 1, p),
                   "t") == 0)
            return;
        tu_sleep_ms(10);
    }
    ck_abort_msg("job %lld's lease did not expire", (long long)id);
}

struct lease {
    int64_t id;
    char token[PGQ_TOKEN_LEN + 1];
};

/* ---- the old pool's heartbeat thread ----------------------------------------- */

struct old_pool {
    PGconn *pg;                      /* the thread's own connection */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct lease held[MAX_LEASES];   /* (mu) the leases it renews */
    size_t nheld;                    /* (mu) */
    long beats;                      /* (mu) heartbeats done */
    long lost;                       /* (mu) leases a heartbeat did not renew */
    char err[512];                   /* (mu) the first failure, "" if none */
    bool stop;                       /* (mu) */
};

/* One heartbeat: renew every held lease, refresh the pool's row. Called
 * with mu held, so that a lease the test takes away is never in flight. */
static void beat(struct old_pool *p)
{
    char ids[MAX_LEASES * 21 + 3], toks[MAX_LEASES * (PGQ_TOKEN_LEN + 1) + 3];
    char *a = ids, *b = toks;
    *a++ = '{';
    *b++ = '{';
    for (size_t i = 0; i < p->nheld; i++) {
        a += sprintf(a, "%s%lld", i ? "," : "", (long long)p->held[i].id);
        b += sprintf(b, "%s%s", i ? "," : "", p->held[i].token);
    }
    strcpy(a, "}");
    strcpy(b, "}");
    /* Not the old pool's own: the test watching that none of its leases
     * ran out between two beats (a migration that cut them short would be
     * healed by the very next beat, unseen). */
    const char *xp[] = { ids };
    PGresult *r = PQexecParams(p->pg, "SELECT count(*) FROM pgq.jobs WHERE id = ANY($1::bigint[])"
                               " AND NOT lease_expires_at > now()", 1, NULL, xp, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || strcmp(PQgetvalue(r, 0, 0), "0") != 0) {
        if (!*p->err)
            snprintf(p->err, sizeof p->err, "%s%s lease(s) ran out between two heartbeats",
                     PQresultErrorMessage(r),
                     PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : "");
    }
    PQclear(r);
    const char *hp[] = { ids, toks, LEASE_MS };
    r = old_exec(p->pg, OLD_HEARTBEAT, 3, hp);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        if (!*p->err)
            snprintf(p->err, sizeof p->err, "heartbeat: %s", PQresultErrorMessage(r));
    } else {
        p->lost += (long)p->nheld - PQntuples(r);
    }
    PQclear(r);
    const char *bp[] = { OLD_POOL, "6" };
    r = old_exec(p->pg, OLD_POOL_BEAT, 2, bp);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || strcmp(PQgetvalue(r, 0, 0), "1") != 0) {
        if (!*p->err)
            snprintf(p->err, sizeof p->err, "pool heartbeat: %s%s", PQresultErrorMessage(r),
                     PQresultStatus(r) == PGRES_TUPLES_OK ? "the row is gone" : "");
    }
    PQclear(r);
    p->beats++;
}

static void *old_pool_main(void *arg)
{
    struct old_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        beat(p);
        pthread_cond_broadcast(&p->cond);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 20 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->cond, &p->mu, &until);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void old_pool_start(struct old_pool *p, const char *url)
{
    memset(p, 0, sizeof *p);
    p->pg = raw_connect(url);
    old_prepare(p->pg);
    const char *rp[] = { OLD_POOL, "oldhost", "4242", "6", "{default,old}", "0.1.0" };
    PQclear(old_run(p->pg, OLD_POOL_REGISTER, 6, rp));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cond, NULL);
    ck_assert_int_eq(pthread_create(&p->thread, NULL, old_pool_main, p), 0);
}

static void old_pool_hold(struct old_pool *p, const struct lease *l)
{
    pthread_mutex_lock(&p->mu);
    ck_assert(p->nheld < MAX_LEASES);
    p->held[p->nheld++] = *l;
    pthread_mutex_unlock(&p->mu);
}

/* Stop renewing a lease (its job is about to end). */
static void old_pool_forget(struct old_pool *p, int64_t id)
{
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->nheld; i++)
        if (p->held[i].id == id)
            p->held[i--] = p->held[--p->nheld];
    pthread_mutex_unlock(&p->mu);
}

/* Wait for n more heartbeats (bounded: 60 s); assert none failed or lost a lease. */
static void old_pool_wait_beats(struct old_pool *p, long n)
{
    pthread_mutex_lock(&p->mu);
    long want = p->beats + n;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 60;
    while (p->beats < want && !*p->err)
        if (pthread_cond_timedwait(&p->cond, &p->mu, &until) == ETIMEDOUT)
            break;
    long beats = p->beats, lost = p->lost;
    char err[sizeof p->err];
    snprintf(err, sizeof err, "%s", p->err);
    pthread_mutex_unlock(&p->mu);
    ck_assert_msg(!*err, "the old pool: %s", err);
    ck_assert_msg(lost == 0, "the old pool's heartbeats lost %ld lease(s)", lost);
    ck_assert_msg(beats >= want, "the old pool's heartbeats stalled (%ld of %ld)", beats, want);
}

static void old_pool_stop(struct old_pool *p)
{
    old_pool_wait_beats(p, 1);
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    const char *dp[] = { OLD_POOL };
    PQclear(old_run(p->pg, OLD_POOL_DEREGISTER, 1, dp));
    PQfinish(p->pg);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->mu);
}

/* ---- the old pool's worker (driven by the test) ------------------------------ */


static int64_t old_add_one(const char *type, const char *payload, const char *queue,
                           int priority, long long delay_ms, const char *run_at,
                           const char *key)
{
    const char *p[] = { type, payload, queue, tu_lld(priority), run_at, tu_lld(delay_ms), NULL,
                        key };
    PGresult *r = old_run(W, OLD_ADD_ONE, 8, p);
    ck_assert_int_eq(PQntuples(r), 1);
    int64_t id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return id;
}

/* pgq.claim() of schema 3: one job of `queue` or false. */
static bool old_claim(const char *queue, const char *owner, const char *ttl_ms, struct lease *l)
{
    const char *p[] = { tu_fmt("{%s}", queue), owner, ttl_ms };
    PGresult *r = old_run(W, OLD_CLAIM, 3, p);
    bool got = PQntuples(r) == 1;
    if (got) {
        l->id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        snprintf(l->token, sizeof l->token, "%s", PQgetvalue(r, 0, 1));
    }
    PQclear(r);
    return got;
}

/* pgq.complete_claim() of schema 3: ack n leases (no execution figures) and
 * claim up to `limit` jobs of `queue` into out. Returns how many were acked. */
static int old_complete_claim(const struct lease *acks, size_t n, const char *queue, int limit,
                              struct lease *out, size_t *nout)
{
    char ids[MAX_LEASES * 21 + 3] = "{", toks[MAX_LEASES * (PGQ_TOKEN_LEN + 1) + 3] = "{",
         nulls[MAX_LEASES * 5 + 3] = "{";
    ck_assert(n <= MAX_LEASES);
    for (size_t i = 0; i < n; i++) {
        sprintf(ids + strlen(ids), "%s%lld", i ? "," : "", (long long)acks[i].id);
        sprintf(toks + strlen(toks), "%s%s", i ? "," : "", acks[i].token);
        strcat(nulls, i ? ",NULL" : "NULL");
    }
    strcat(ids, "}");
    strcat(toks, "}");
    strcat(nulls, "}");
    const char *p[] = { ids, toks, nulls, nulls, nulls, nulls, tu_fmt("{%s}", queue), OLD_WORKER,
                        LEASE_MS, tu_lld(limit) };
    PGresult *r = old_run(W, OLD_COMPLETE_CLAIM, 10, p);
    int acked = 0;
    *nout = 0;
    for (int row = 0; row < PQntuples(r); row++) {
        if (!PQgetisnull(r, row, 0)) {
            acked++;
        } else {
            ck_assert((int)*nout < limit);
            out[*nout].id = strtoll(PQgetvalue(r, row, 1), NULL, 10);
            snprintf(out[*nout].token, sizeof out[0].token, "%s", PQgetvalue(r, row, 8));
            (*nout)++;
        }
    }
    PQclear(r);
    return acked;
}

static struct lease old_claim_one_cc(const char *queue)
{
    struct lease l;
    size_t n;
    ck_assert_int_eq(old_complete_claim(NULL, 0, queue, 1, &l, &n), 0);
    ck_assert_int_eq((int)n, 1);
    return l;
}

static void old_complete(const struct lease *l)
{
    size_t n;
    ck_assert_int_eq(old_complete_claim(l, 1, "default", 0, NULL, &n), 1);
}

/* pgq.fail() of schema 3; returns the new state. */
static const char *old_fail(const struct lease *l, const char *error)
{
    const char *p[] = { tu_lld(l->id), l->token, error, NULL, NULL, NULL, NULL };
    PGresult *r = old_run(W, OLD_FAIL, 7, p);
    ck_assert_msg(PQntuples(r) == 1, "the old pool lost job %lld's lease", (long long)l->id);
    const char *state = tu_fmt("%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return state;
}

/* once begin: "held inserted existing", e.g. "1 1 ". */
static const char *old_once_begin(const struct lease *l, const char *key)
{
    const char *p[] = { tu_lld(l->id), l->token, key };
    PGresult *r = old_run(W, OLD_ONCE_BEGIN, 3, p);
    const char *v = tu_fmt("%s %s %s", PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1),
                        PQgetvalue(r, 0, 2));
    PQclear(r);
    return v;
}

/* once done / forget: how many records it changed. */
static int old_once_end(enum old_stmt s, const struct lease *l, const char *key)
{
    const char *p[] = { tu_lld(l->id), l->token, key };
    PGresult *r = old_run(W, s, 3, p);
    int n = PQntuples(r);
    PQclear(r);
    return n;
}

static void old_type(const char *type, const char *queue, const char *required, int retries,
                     const char *base_ms)
{
    const char *p[] = { type, queue, required, tu_lld(retries), "0", "60000", base_ms, base_ms };
    PQclear(old_run(W, OLD_TYPE_UPSERT, 8, p));
}

/* ---- dumps of the public columns ------------------------------------------- */

struct dump_spec {
    const char *rel;
    const char *cols[20];   /* NULL-terminated; the first one names the row in messages */
    const char *where;      /* or NULL */
    const char *order;
    const char *renewed;    /* a column heartbeats move later during the test, or NULL */
};

static const struct dump_spec dumps[] = {
    { "pgq.jobs",
      { "id", "queue", "type", "payload", "priority", "run_at", "state", "attempts",
        "max_retries", "idempotency_key", "lease_owner", "lease_token", "lease_expires_at",
        "last_error", "created_at", "started_at", "finished_at", NULL },
      NULL, "id", "lease_expires_at" },
    { "pgq.job_attempts",
      { "id", "job_id", "attempt", "outcome", "worker", "error", "exit_code", "term_signal",
        "cpu_ms", "max_rss_kb", "started_at", "finished_at", "duration_ms", NULL },
      NULL, "id", NULL },
    { "pgq.effects",
      { "job_id", "key", "state", "attempt", "lease_token", "worker", "started_at",
        "finished_at", NULL },
      NULL, "job_id, key", NULL },
    { "pgq.effects_in_doubt",
      { "job_id", "key", "state", "attempt", "lease_token", "worker", "started_at",
        "finished_at", NULL },
      NULL, "job_id, key", NULL },
    { "pgq.workers",
      { "id", "name", "host", "pid", "workers", "in_flight", "queues", "version", "started_at",
        "last_heartbeat", NULL },
      NULL, "id", "last_heartbeat" },
    { "pgq.actions",
      { "id", "action", "db_user", "client_addr", "app", "at", "job_count", "job_ids",
        "detail", NULL },
      NULL, "id", NULL },
    { "pgq.job_types",
      { "type", "queue", "required", "max_retries", "priority", "timeout_ms",
        "backoff_base_ms", "backoff_max_ms", "updated_at", NULL },
      NULL, "type", NULL },
    { "pgq.migrations", { "version", "name", "applied_at", NULL }, "version <= 3", "version",
      NULL },
};
#define NDUMPS (sizeof dumps / sizeof dumps[0])

/* Every row of the relation, its columns as text (a renewed timestamp as
 * epoch seconds, to compare). The SQL is built from the constants above. */
static PGresult *dump(const struct dump_spec *d)
{
    char *sql = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&sql, &len);
    ck_assert_ptr_nonnull(f);
    fputs("SELECT ", f);
    for (int i = 0; d->cols[i]; i++) {
        const char *c = d->cols[i];
        if (d->renewed && strcmp(c, d->renewed) == 0)
            fprintf(f, "%sextract(epoch FROM \"%s\")::text", i ? ", " : "", c);
        else
            fprintf(f, "%s\"%s\"::text", i ? ", " : "", c);
    }
    fprintf(f, " FROM %s%s%s ORDER BY %s", d->rel, d->where ? " WHERE " : "",
            d->where ? d->where : "", d->order);
    fclose(f);
    PGresult *r = tu_query(K, sql, 0, NULL);
    free(sql);
    return r;
}

static void compare(const struct dump_spec *d, const PGresult *was, const PGresult *is)
{
    ck_assert_msg(PQntuples(was) == PQntuples(is), "%s: %d rows before the migration, %d after",
                  d->rel, PQntuples(was), PQntuples(is));
    for (int row = 0; row < PQntuples(was); row++) {
        for (int col = 0; d->cols[col]; col++) {
            const char *c = d->cols[col];
            bool wn = PQgetisnull(was, row, col), in = PQgetisnull(is, row, col);
            const char *wv = wn ? "NULL" : PQgetvalue(was, row, col),
                       *iv = in ? "NULL" : PQgetvalue(is, row, col);
            bool same = wn == in && strcmp(wv, iv) == 0;
            if (d->renewed && strcmp(c, d->renewed) == 0 && !wn && !in)
                same = strtod(iv, NULL) > strtod(wv, NULL);   /* renewed, not cut short */
            ck_assert_msg(same, "%s %s=%s: column %s was [%s] before the migration, [%s] after",
                          d->rel, d->cols[0], PQgetvalue(was, row, 0), c, wv, iv);
        }
    }
}

/* pgq.check_invariants() (migrations/state_machine.sql) on the upgraded database. */
static void assert_invariants(const char *when)
{
    PGresult *r = tu_query(K, "SELECT job_id, invariant, detail FROM pgq.check_invariants()",
                           0, NULL);
    char msg[2048] = "";
    for (int i = 0; i < PQntuples(r) && i < 10; i++)
        snprintf(msg + strlen(msg), sizeof msg - strlen(msg), "\n  job %s: %s (%s)",
                 PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
    int n = PQntuples(r);
    PQclear(r);
    ck_assert_msg(n == 0, "%s, pgq.check_invariants() found %d violation(s):%s", when, n, msg);
}

/* The job's "state attempts future-run_at leased history-rows", e.g.
 * "running 1 f t 0". */
static void expect_job(const char *name, int64_t id, const char *want)
{
    const char *p[] = { tu_lld(id) };
    const char *got = one(K, "SELECT concat_ws(' ', state, attempts, run_at > now(),"
                             " lease_token IS NOT NULL,"
                             " (SELECT count(*) FROM pgq.job_attempts a WHERE a.job_id = j.id))"
                             " FROM pgq.jobs j WHERE id = $1", 1, p);
    ck_assert_msg(strcmp(got, want) == 0, "job %s (%lld): [%s], expected [%s]", name,
                  (long long)id, got, want);
}

/* ---- the test ------------------------------------------------------------------ */

static char dbname[64];
static char *dburl;

static void setup(void)
{
    snprintf(dbname, sizeof dbname, "pgq_upgrade_%d", (int)getpid());
    const char *p[] = { dbname };
    if (tu_int("SELECT count(*) FROM pg_database WHERE datname = $1", 1, p))
        tu_exec(tu_fmt("DROP DATABASE %s WITH (FORCE)", dbname), 0, NULL);   /* a leftover */
    tu_exec(tu_fmt("CREATE DATABASE %s", dbname), 0, NULL);
    dburl = tu_db_url_for(dbname);
}

static void teardown(void)
{
    tu_exec(tu_fmt("DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname), 0, NULL);
    free(dburl);
}

static int runs;

static int count_run(void *arg, char *err, size_t errlen)
{
    (void)arg;
    (void)err;
    (void)errlen;
    runs++;
    return 0;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

START_TEST(schema3_upgrade_keeps_everything_and_the_old_pool_carries_on)
{
    char err[512];

    /* An older pgq migrate: the embedded migrations up to version 3. */
    pgq_conn *m = NULL;
    ck_assert_msg(pgq_connect(dburl, &m, err, sizeof err) == 0, "%s", err);
    int applied = -1;
    ck_assert_msg(pgq_migrate_to(m, OLD_VERSION, &applied, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(applied, OLD_VERSION);
    K = raw_connect(dburl);
    ck_assert_str_eq(one(K, "SELECT max(version) FROM pgq.migrations", 0, NULL), "3");

    W = raw_connect(dburl);
    old_prepare(W);
    struct old_pool pool;
    old_pool_start(&pool, dburl);

    old_type("t", "default", "{}", 3, "0");             /* retries due at once */
    old_type("slow", "default", "{}", 2, "3600000");    /* retries an hour later */
    old_type("fragile", "default", "{}", 0, "0");       /* dead at the first failure */
    old_type("mail", "default", "{\"to\": \"string\"}", 1, "0");

    /* Every fixture claim takes the one priority-0 job just made ready;
     * jobs meant to stay ready have priority 50. */

    /* In doubt: its holder started an effect, then its lease expired and
     * was reaped. */
    int64_t d1 = old_add_one("t", "{}", NULL, 50, 0, NULL, NULL);
    struct lease doomed;
    ck_assert(old_claim("default", "doomed:1:w0", "1000", &doomed));
    ck_assert_int_eq(doomed.id, d1);
    ck_assert_str_eq(old_once_begin(&doomed, "email"), "1 1 ");
    wait_lease_expired(d1);
    PGresult *r = old_run(W, OLD_REAP, 1, (const char *const[]){ "10" });
    ck_assert_int_eq(PQntuples(r), 1);
    ck_assert_str_eq(PQgetvalue(r, 0, 0), tu_lld(d1));
    ck_assert_str_eq(PQgetvalue(r, 0, 1), "ready");
    PQclear(r);

    /* Six live leases of the old pool, claimed through both of its claims;
     * on three of them run_once effects: done, started, started. */
    struct lease live[6];
    for (int i = 0; i < 6; i++) {
        int64_t id = old_add_one("t", tu_fmt("{\"n\": %d}", i), NULL, 0, 0, NULL, NULL);
        if (i % 2 == 0)
            ck_assert(old_claim("default", OLD_WORKER, LEASE_MS, &live[i]));
        else
            live[i] = old_claim_one_cc("default");
        ck_assert_int_eq(live[i].id, id);
        old_pool_hold(&pool, &live[i]);
    }
    ck_assert_str_eq(old_once_begin(&live[0], "email"), "1 1 ");
    ck_assert_int_eq(old_once_end(OLD_ONCE_DONE, &live[0], "email"), 1);
    ck_assert_str_eq(old_once_begin(&live[1], "charge"), "1 1 ");
    ck_assert_str_eq(old_once_begin(&live[2], "tmp"), "1 1 ");

    struct lease l;
    /* done at the first attempt */
    int64_t dn1 = old_add_one("t", "{}", NULL, 0, 0, NULL, NULL);
    l = old_claim_one_cc("default");
    ck_assert_int_eq(l.id, dn1);
    old_complete(&l);
    /* done after a failure: both attempts in the history */
    int64_t dn2 = old_add_one("t", "{}", NULL, 0, 0, NULL, NULL);
    ck_assert(old_claim("default", OLD_WORKER, LEASE_MS, &l) && l.id == dn2);
    ck_assert_str_eq(old_fail(&l, "flaky"), "ready");
    l = old_claim_one_cc("default");
    ck_assert_int_eq(l.id, dn2);
    old_complete(&l);
    /* dead at once, and dead after two failures */
    int64_t de1 = old_add_one("fragile", "{}", NULL, 0, 0, NULL, NULL);
    ck_assert(old_claim("default", OLD_WORKER, LEASE_MS, &l) && l.id == de1);
    ck_assert_str_eq(old_fail(&l, "fatal"), "dead");
    int64_t de2 = old_add_one("mail", "{\"to\": \"a@example.com\"}", NULL, 0, 0, NULL, NULL);
    for (int i = 1; i <= 2; i++) {
        ck_assert(old_claim("default", OLD_WORKER, LEASE_MS, &l) && l.id == de2);
        ck_assert_str_eq(old_fail(&l, tu_fmt("bounce %d", i)), i == 1 ? "ready" : "dead");
    }
    /* retrying: failed, next attempt an hour away */
    int64_t rt1 = old_add_one("slow", "{}", NULL, 0, 0, NULL, NULL);
    ck_assert(old_claim("default", OLD_WORKER, LEASE_MS, &l) && l.id == rt1);
    ck_assert_str_eq(old_fail(&l, "timeout"), "ready");
    /* cancelled by an operator */
    int64_t c1 = old_add_one("t", "{}", NULL, 50, 0, NULL, NULL);
    r = old_run(W, OLD_CANCEL, 2, (const char *const[]){ tu_fmt("{%lld}", (long long)c1), "ops" });
    ck_assert_int_eq(PQntuples(r), 1);
    PQclear(r);
    /* ready (one with an idempotency key), scheduled, and one for the old pool's queue */
    int64_t r1 = old_add_one("t", "{\"k\": [1, 2]}", NULL, 50, 0, NULL, NULL);
    const char *ep[] = { "{t,mail,t}", "{\"{}\",\"{\\\"to\\\": \\\"b@example.com\\\"}\",\"{}\"}",
                         "{NULL,NULL,NULL}", "{50,50,NULL}",
                         "{NULL,NULL,\"2100-01-01 00:00:00+00\"}", "{NULL,NULL,NULL}",
                         "{NULL,NULL,NULL}", "{\"upgrade:ready\",NULL,NULL}" };
    r = old_run(W, OLD_ADD, 8, ep);
    ck_assert_int_eq(PQntuples(r), 3);
    int64_t r2 = strtoll(PQgetvalue(r, 0, 1), NULL, 10), r3 = strtoll(PQgetvalue(r, 1, 1), NULL, 10),
            s2 = strtoll(PQgetvalue(r, 2, 1), NULL, 10);
    PQclear(r);
    int64_t s1 = old_add_one("t", "{}", NULL, 50, 3600000, NULL, NULL);
    int64_t o1 = old_add_one("t", "{}", "old", 0, 0, NULL, NULL);
    /* dead, then requeued by an operator: ready again with its history */
    int64_t q1 = old_add_one("fragile", "{}", NULL, 0, 0, NULL, NULL);
    ck_assert(old_claim("default", OLD_WORKER, LEASE_MS, &l) && l.id == q1);
    ck_assert_str_eq(old_fail(&l, "fatal"), "dead");
    r = old_run(W, OLD_REQUEUE, 2, (const char *const[]){ tu_fmt("{%lld}", (long long)q1), "ops" });
    ck_assert_int_eq(PQntuples(r), 1);
    PQclear(r);

    /* The fixture is what it says: "state attempts future leased history". */
    expect_job("in doubt", d1, "ready 1 f f 1");
    for (int i = 0; i < 6; i++)
        expect_job("live", live[i].id, "running 1 f t 0");
    expect_job("done", dn1, "done 1 f f 0");
    expect_job("done after a failure", dn2, "done 2 f f 2");
    expect_job("dead", de1, "dead 1 f f 1");
    expect_job("dead twice", de2, "dead 2 f f 2");
    expect_job("retrying", rt1, "ready 1 t f 1");
    expect_job("cancelled", c1, "cancelled 0 f f 0");
    expect_job("ready", r1, "ready 0 f f 0");
    expect_job("ready with a key", r2, "ready 0 f f 0");
    expect_job("ready (contract)", r3, "ready 0 f f 0");
    expect_job("scheduled", s1, "ready 0 t f 0");
    expect_job("scheduled (run_at)", s2, "ready 0 t f 0");
    expect_job("the old pool's next", o1, "ready 0 f f 0");
    expect_job("requeued", q1, "ready 0 f f 1");
    ck_assert_str_eq(one(K, "SELECT string_agg(job_id || ':' || key || ':' || state, ','"
                            " ORDER BY job_id, key) FROM pgq.effects", 0, NULL),
                     tu_fmt("%lld:email:started,%lld:email:done,%lld:charge:started,"
                         "%lld:tmp:started", (long long)d1, (long long)live[0].id,
                         (long long)live[1].id, (long long)live[2].id));
    ck_assert_str_eq(one(K, "SELECT string_agg(job_id || ':' || key, ',')"
                            " FROM pgq.effects_in_doubt", 0, NULL),
                     tu_fmt("%lld:email", (long long)d1));
    ck_assert_str_eq(one(K, "SELECT string_agg(action, ',' ORDER BY id) FROM pgq.actions",
                         0, NULL), "cancel,requeue");

    /* The migration, while the old pool heartbeats. */
    old_pool_wait_beats(&pool, 3);
    PGresult *before[NDUMPS];
    for (size_t i = 0; i < NDUMPS; i++)
        before[i] = dump(&dumps[i]);
    old_pool_wait_beats(&pool, 1);   /* so that every lease is renewed past the dump */
    ck_assert_msg(pgq_migrate(m, &applied, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(applied, tu_nmigrations_after(OLD_VERSION));
    ck_assert_msg(pgq_schema_check(m, err, sizeof err) == 0, "%s", err);
    old_pool_wait_beats(&pool, 3);
    for (size_t i = 0; i < NDUMPS; i++) {
        PGresult *after = dump(&dumps[i]);
        compare(&dumps[i], before[i], after);
        PQclear(after);
        PQclear(before[i]);
    }
    assert_invariants("after the migration");

    /* The old pool carries on with its own statements. */
    ck_assert_str_eq(old_once_begin(&live[0], "email"), "1 0 done");     /* skipped: done */
    struct lease got[2];
    size_t ngot;
    old_pool_forget(&pool, live[0].id);
    ck_assert_int_eq(old_complete_claim(&live[0], 1, "old", 1, got, &ngot), 1);
    ck_assert_int_eq((int)ngot, 1);
    ck_assert_int_eq(got[0].id, o1);
    struct lease o[4] = { got[0] };
    old_pool_hold(&pool, &o[0]);
    ck_assert_int_eq(old_once_end(OLD_ONCE_DONE, &live[1], "charge"), 1);
    old_pool_forget(&pool, live[1].id);
    ck_assert_str_eq(old_fail(&live[1], "old pool failed it"), "ready");
    ck_assert_int_eq(old_once_end(OLD_ONCE_FORGET, &live[2], "tmp"), 1);
    old_pool_forget(&pool, live[2].id);
    const char *relp[] = { tu_lld(live[2].id), live[2].token };
    r = old_run(W, OLD_RELEASE, 2, relp);
    ck_assert_int_eq(PQntuples(r), 1);
    PQclear(r);
    int64_t o2 = old_add_one("t", "{}", "old", 0, 0, NULL, NULL);
    const char *ap[] = { "{t}", "{\"{}\"}", "{old}", "{NULL}", "{NULL}", "{NULL}", "{NULL}",
                         "{NULL}" };
    r = old_run(W, OLD_ADD, 8, ap);
    ck_assert_int_eq(PQntuples(r), 1);
    ck_assert_str_eq(PQgetvalue(r, 0, 2), "f");
    int64_t o3 = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    ck_assert(old_claim("old", OLD_WORKER, LEASE_MS, &o[1]));
    ck_assert_int_eq(o[1].id, o2);
    old_pool_hold(&pool, &o[1]);
    old_pool_wait_beats(&pool, 2);   /* renews the leases taken after the migration */
    old_pool_forget(&pool, o[0].id);
    old_pool_forget(&pool, o[1].id);
    ck_assert_int_eq(old_complete_claim(o, 2, "old", 1, got, &ngot), 2);
    ck_assert_int_eq((int)ngot, 1);
    ck_assert_int_eq(got[0].id, o3);
    o[2] = got[0];
    /* its reaper: a lease left to expire is reaped and retried */
    int64_t o4 = old_add_one("t", "{}", "old", 0, 0, NULL, NULL);
    ck_assert(old_claim("old", "doomed:2:w0", "1", &l) && l.id == o4);
    wait_lease_expired(o4);
    r = old_run(W, OLD_REAP, 1, (const char *const[]){ "10" });
    ck_assert_int_eq(PQntuples(r), 1);
    ck_assert_str_eq(PQgetvalue(r, 0, 0), tu_lld(o4));
    ck_assert_str_eq(PQgetvalue(r, 0, 1), "ready");
    PQclear(r);
    ck_assert(old_claim("old", OLD_WORKER, LEASE_MS, &o[3]) && o[3].id == o4);

    /* This library on the upgraded data. */
    pgq_conn *c = NULL;
    ck_assert_msg(pgq_connect(dburl, &c, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(pgq_schema_check(c, err, sizeof err) == 0, "%s", err);
    /* The old pool lets go of these leases first: two holders renewing the
     * same rows at once (in different orders) can deadlock, which no real
     * fleet does -- a lease has one holder. (old_pool_forget waits for a
     * beat in flight.) */
    for (int i = 3; i < 6; i++)
        old_pool_forget(&pool, live[i].id);
    int64_t ids[3] = { live[3].id, live[4].id, live[5].id };
    const char *toks[3] = { live[3].token, live[4].token, live[5].token };
    bool lost[3] = { true, true, true };
    ck_assert_msg(pgq_heartbeat(c, ids, toks, 3, 30000, lost, err, sizeof err) == 0, "%s", err);
    ck_assert(!lost[0] && !lost[1] && !lost[2]);
    bool gone = true;
    ck_assert_msg(pgq_complete(c, live[3].id, live[3].token, NULL, &gone, err, sizeof err) == 0,
                  "%s", err);
    ck_assert(!gone);
    pgq_fail_result fr;
    ck_assert_msg(pgq_fail(c, live[4].id, live[4].token, "new library failed it", NULL, &fr, err,
                           sizeof err) == 0, "%s", err);
    ck_assert(!fr.lease_lost && !fr.dead);
    gone = true;
    ck_assert_msg(pgq_release(c, live[5].id, live[5].token, &gone, err, sizeof err) == 0, "%s",
                  err);
    ck_assert(!gone);
    gone = false;   /* a used token still changes nothing */
    ck_assert(pgq_complete(c, live[3].id, live[3].token, NULL, &gone, err, sizeof err) == 0);
    ck_assert(gone);
    pgq_add_result ar;
    pgq_add_opts ao = PGQ_ADD_OPTS_INIT;
    ao.idempotency_key = "upgrade:ready";
    ck_assert_msg(pgq_add(c, "t", "{}", &ao, &ar, err, sizeof err) == 0, "%s", err);
    ck_assert(ar.duplicate);
    ck_assert_int_eq(ar.id, r2);
    int64_t dead[2] = { de1, de2 };
    bool moved[2] = { false, false };
    int64_t count = 0;
    ck_assert_msg(pgq_requeue(c, dead, 2, "upgrade test", moved, &count, err, sizeof err) == 0,
                  "%s", err);
    ck_assert(moved[0] && moved[1] && count == 2);
    pgq_job_detail *d = NULL;
    ck_assert_msg(pgq_job_describe(c, de2, &d, err, sizeof err) == 0 && d, "%s", err);
    ck_assert_str_eq(d->state, "ready");
    ck_assert_int_eq((int)d->nattempts, 2);
    ck_assert_str_eq(d->attempts_v[0].error, "bounce 1");
    ck_assert_str_eq(d->attempts_v[1].error, "bounce 2");
    pgq_job_detail_free(d);

    /* It claims every due job of the default queue, and no other. */
    const char *want = one(K, "SELECT array_agg(id ORDER BY id) FROM pgq.jobs WHERE"
                              " queue = 'default' AND state = 'ready' AND run_at <= now()",
                           0, NULL);
    long long claimed[32];
    int nclaimed = 0;
    const char *const dq[] = { "default" };
    for (;;) {
        pgq_job *j = NULL;
        ck_assert_msg(pgq_claim(c, dq, 1, "newhost:1:w0", 30000, &j, err, sizeof err) == 0,
                      "%s", err);
        if (!j)
            break;
        ck_assert(nclaimed < 32);
        claimed[nclaimed++] = j->id;
        pgq_once_result want_once = PGQ_ONCE_RAN;
        const char *key = "fresh";
        if (j->id == d1) {
            key = "email";
            want_once = PGQ_ONCE_IN_DOUBT;
        } else if (j->id == live[1].id) {
            key = "charge";
            want_once = PGQ_ONCE_SKIPPED;
        } else if (j->id == live[2].id) {
            key = "tmp";   /* forgotten by the old pool: may run */
        }
        runs = 0;
        ck_assert_int_eq(pgq_run_once(c, j->id, j->lease_token, key, count_run, NULL, err,
                                      sizeof err), want_once);
        ck_assert_int_eq(runs, want_once == PGQ_ONCE_RAN);
        ck_assert_msg(pgq_complete(c, j->id, j->lease_token, NULL, &gone, err, sizeof err) == 0,
                      "%s", err);
        ck_assert(!gone);
        pgq_job_free(j);
    }
    qsort(claimed, (size_t)nclaimed, sizeof claimed[0], cmp_ll);
    char got_ids[32 * 21 + 3] = "{";
    for (int i = 0; i < nclaimed; i++)
        sprintf(got_ids + strlen(got_ids), "%s%lld", i ? "," : "", claimed[i]);
    strcat(got_ids, "}");
    ck_assert_str_eq(got_ids, want);
    /* in doubt, the old pool's failure and release, this library's, the ready, the requeued */
    ck_assert_int_eq(nclaimed, 11);
    ck_assert_msg(pgq_job_describe(c, d1, &d, err, sizeof err) == 0 && d, "%s", err);
    ck_assert_int_eq((int)d->neffects, 1);
    ck_assert_str_eq(d->effects[0].key, "email");
    ck_assert(d->effects[0].in_doubt);
    ck_assert_str_eq(d->attempts_v[0].outcome, "lease_expired");
    ck_assert_str_eq(d->attempts_v[0].worker, "doomed:1:w0");
    pgq_job_detail_free(d);
    pgq_queue_stats *st = NULL;
    size_t nst = 0;
    ck_assert_msg(pgq_stats(c, &st, &nst, err, sizeof err) == 0, "%s", err);
    bool saw_default = false;
    for (size_t i = 0; i < nst; i++) {
        if (strcmp(st[i].queue, "default") != 0)
            continue;
        saw_default = true;
        ck_assert_int_eq(st[i].scheduled, 2);   /* s1, s2 */
        ck_assert_int_eq(st[i].retrying, 1);    /* rt1 */
        ck_assert_int_eq(st[i].ready + st[i].running + st[i].dead, 0);
        ck_assert_int_eq(st[i].cancelled, 1);
    }
    free(st);
    ck_assert(saw_default);
    int64_t pruned = -1;
    ck_assert_msg(pgq_prune(c, 86400000, 30LL * 86400000, 1000, &pruned, err, sizeof err) == 0,
                  "%s", err);
    ck_assert_int_eq(pruned, 0);

    /* The old pool finishes its work and stops. */
    ck_assert_int_eq(old_complete_claim(&o[2], 2, "old", 0, got, &ngot), 2);
    old_pool_stop(&pool);
    ck_assert_str_eq(one(K, "SELECT count(*) FROM pgq.jobs WHERE state = 'running'", 0, NULL),
                     "0");
    assert_invariants("after the old pool finished");

    pgq_disconnect(c);
    pgq_disconnect(m);
    PQfinish(W);
    PQfinish(K);
}
END_TEST

Suite *upgrade_suite(void)
{
    Suite *s = suite_create("upgrade");
    TCase *tc = tcase_create("upgrade");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, TU_TIMEOUT);
    tcase_add_test(tc, schema3_upgrade_keeps_everything_and_the_old_pool_carries_on);
    suite_add_tcase(s, tc);
    return s;
}
