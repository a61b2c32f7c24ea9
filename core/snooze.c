/* Snooze (pgq_snooze): a handler asks that its job go back to ready
 * later without spending the attempt. The request is recorded on the
 * running job, fenced by the lease token (pgq.snooze in
 * migrations/state_machine.sql), and the completion applies it when the
 * attempt ends done; any other end drops it. So an exec handler's `pgq
 * snooze D` (another process) and an in-process handler's pgq_ctx_snooze()
 * take the same road, and a handler that fails after asking simply fails.
 * The bound (the type's max_snoozes) is checked when asking: a refusal is
 * the handler's to act on. */
#include "db.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

pgq_snooze_result pgq_snooze(pgq_conn *c, int64_t job_id, const char *token, int64_t delay_ms,
                             char *err, size_t errlen)
{
    char ids[24], ms[24];
    if (!token || strlen(token) != PGQ_TOKEN_LEN) {
        seterr(err, errlen, "snooze: job %" PRId64 ": malformed lease token", job_id);
        return PGQ_SNOOZE_ERROR;
    }
    snprintf(ids, sizeof ids, "%" PRId64, job_id);
    snprintf(ms, sizeof ms, "%" PRId64, delay_ms);
    const char *params[] = { ids, token, ms };
    PGresult *r = db_run(c, STMT_SNOOZE, 3, params, PGRES_TUPLES_OK, "snooze", err, errlen);
    if (!r)
        return PGQ_SNOOZE_ERROR;
    pgq_snooze_result res = PGQ_SNOOZE_ASKED;
    if (PQntuples(r) != 1 || !db_bool(r, 0, 0)) {
        seterr(err, errlen, "snooze: job %" PRId64 ": lease lost (the job is no longer this "
               "attempt's)", job_id);
        res = PGQ_SNOOZE_LEASE_LOST;
    } else if (!db_bool(r, 0, 1)) {
        seterr(err, errlen, "snooze refused: job %" PRId64 " has snoozed %s times, the most "
               "its type allows (max_snoozes = %s)", job_id, PQgetvalue(r, 0, 2),
               PQgetvalue(r, 0, 3));
        res = PGQ_SNOOZE_REFUSED;
    }
    PQclear(r);
    return res;
}
