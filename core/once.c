/* run_once: at-most-once side effects (DESIGN.md promise 7).
 *
 * The design is simple: before the effect runs, a row (job, key, 'started')
 * is committed in its own transaction, and only while this worker's lease
 * token still holds the job. After the effect the row becomes 'done'; if the
 * effect failed cleanly the row is deleted so that a retry may try again.
 * A worker that dies between the two leaves 'started' behind, and the next
 * attempt reads that as "in doubt": it does not run the effect again, it
 * tells the handler. Nothing here ever re-runs an effect whose outcome is
 * unknown; that is the honest price of at-most-once. */
#include "db.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

const char *pgq_once_result_name(pgq_once_result r)
{
    switch (r) {
    case PGQ_ONCE_RAN: return "ran";
    case PGQ_ONCE_SKIPPED: return "skipped";
    case PGQ_ONCE_IN_DOUBT: return "in doubt";
    case PGQ_ONCE_FAILED: return "failed";
    case PGQ_ONCE_LEASE_LOST: return "lease lost";
    case PGQ_ONCE_ERROR: return "error";
    }
    return "?";
}

static bool valid_key(const char *key)
{
    return key && *key && strlen(key) <= 1000;
}

pgq_once_result pgq_once_begin(pgq_conn *c, int64_t job_id, const char *token, const char *key,
                               char *err, size_t errlen)
{
    char ids[24];
    if (!valid_key(key)) {
        seterr(err, errlen, "run_once: key must be 1 to 1000 characters");
        return PGQ_ONCE_ERROR;
    }
    snprintf(ids, sizeof ids, "%" PRId64, job_id);
    const char *params[] = { ids, token, key };
    PGresult *r = db_run(c, STMT_ONCE_BEGIN, 3, params, PGRES_TUPLES_OK, "run_once", err, errlen);
    if (!r)
        return PGQ_ONCE_ERROR;
    bool held = db_int64(r, 0, 0, 0) > 0, inserted = db_int64(r, 0, 1, 0) > 0;
    const char *existing = PQgetisnull(r, 0, 2) ? NULL : PQgetvalue(r, 0, 2);
    pgq_once_result res;
    if (!held)
        res = PGQ_ONCE_LEASE_LOST;
    else if (inserted)
        res = PGQ_ONCE_RAN;
    else if (existing && strcmp(existing, "done") == 0)
        res = PGQ_ONCE_SKIPPED;
    else
        res = PGQ_ONCE_IN_DOUBT;   /* 'started' and not ours to finish */
    PQclear(r);
    if (res == PGQ_ONCE_LEASE_LOST)
        seterr(err, errlen, "run_once %s: job %" PRId64 " is no longer held by this lease",
               key, job_id);
    return res;
}

int pgq_once_end(pgq_conn *c, int64_t job_id, const char *token, const char *key,
                 bool succeeded, char *err, size_t errlen)
{
    char ids[24];
    snprintf(ids, sizeof ids, "%" PRId64, job_id);
    const char *params[] = { ids, token, key };
    /* Only while this lease still holds the job (pgq.effect_done and
     * effect_forget check the job row): once another attempt has taken the
     * job it may have found the record in doubt and acted on that, so a
     * zombie's late "done" or "forget" would rewrite what it saw (a forget
     * then left a done job with no trace of its effect). Refused, the
     * record stays 'started': in doubt, visible to operators. */
    PGresult *r = db_run(c, succeeded ? STMT_ONCE_DONE : STMT_ONCE_FORGET, 3, params,
                         PGRES_TUPLES_OK, "run_once: record outcome", err, errlen);
    if (!r)
        return -1;
    int rows = PQntuples(r);
    PQclear(r);
    if (rows != 1)
        return seterr(err, errlen, "run_once %s: no started record of job %" PRId64
                      " for this lease", key, job_id);
    return 0;
}

pgq_once_result pgq_run_once(pgq_conn *c, int64_t job_id, const char *token, const char *key,
                             pgq_once_fn fn, void *arg, char *err, size_t errlen)
{
    pgq_once_result res = pgq_once_begin(c, job_id, token, key, err, errlen);
    if (res != PGQ_ONCE_RAN)
        return res;

    char fnerr[512] = "";
    bool ok = fn(arg, fnerr, sizeof fnerr) == 0;
    if (pgq_once_end(c, job_id, token, key, ok, err, errlen) < 0) {
        /* The outcome could not be recorded (connection lost?): the row
         * stays 'started' and later attempts will see the effect in doubt. */
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%s", err && errlen ? err : "");
        seterr(err, errlen, "run_once %s: effect %s, but its outcome was not recorded "
               "(it will count as in doubt): %s", key, ok ? "succeeded" : "failed", tmp);
        return PGQ_ONCE_ERROR;
    }
    if (!ok) {
        seterr(err, errlen, "run_once %s: %s", key, *fnerr ? fnerr : "failed");
        return PGQ_ONCE_FAILED;
    }
    return PGQ_ONCE_RAN;
}
