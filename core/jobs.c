/* The job state machine as seen by a worker holding a job: heartbeat, fail
 * and release, and the reaper of expired leases (enqueue is in enqueue.c;
 * complete and claim, one statement, in claim.c).
 *
 * Each transition is one statement (see db.c's table), and every transition
 * of a running job names the job's lease token in its WHERE clause: a
 * statement that matches no row means the lease was lost, and then nothing
 * changed. Retry backoff and dead-lettering are decided inside PostgreSQL
 * (pgq.end_attempts), never by sleeping workers.
 *
 * Every transition is a function of the state machine's one home,
 * migrations/state_machine.sql. */
#include "db.h"
#include "utf8.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int pgq_heartbeat(pgq_conn *c, const int64_t *ids, const char *const *tokens, size_t n,
                  int64_t lease_ttl_ms, bool *lost, char *err, size_t errlen)
{
    char ttl[24];
    if (n == 0)
        return 0;
    char *idarr = db_int64_array(ids, n), *tokarr = db_text_array(tokens, n);
    if (!idarr || !tokarr) {
        free(idarr);
        free(tokarr);
        return seterr(err, errlen, "heartbeat: out of memory");
    }
    snprintf(ttl, sizeof ttl, "%" PRId64, lease_ttl_ms);
    const char *params[] = { idarr, tokarr, ttl };
    PGresult *r = db_run(c, STMT_HEARTBEAT, 3, params, PGRES_TUPLES_OK, "heartbeat", err, errlen);
    free(idarr);
    free(tokarr);
    if (!r)
        return -1;
    /* Match on id and token: the same job may be listed under a stale
     * token and a live one (a lease lost and the job claimed again). */
    for (size_t i = 0; i < n; i++) {
        lost[i] = true;
        for (int row = 0; row < PQntuples(r); row++)
            if (db_int64(r, row, 0, 0) == ids[i] &&
                strcasecmp(PQgetvalue(r, row, 1), tokens[i]) == 0)
                lost[i] = false;
    }
    PQclear(r);
    return 0;
}

/* Text params for the attempt info columns; NULL where unknown. */
struct info_params {
    char buf[4][24];
    const char *v[4];
};

static void info_params(const pgq_attempt_info *info, struct info_params *p)
{
    memset(p->v, 0, sizeof p->v);
    if (!info)
        return;
    if (info->exit_code >= 0) {
        snprintf(p->buf[0], sizeof p->buf[0], "%d", info->exit_code);
        p->v[0] = p->buf[0];
    }
    if (info->term_signal > 0) {
        snprintf(p->buf[1], sizeof p->buf[1], "%d", info->term_signal);
        p->v[1] = p->buf[1];
    }
    if (info->cpu_ms >= 0) {
        snprintf(p->buf[2], sizeof p->buf[2], "%" PRId64, info->cpu_ms);
        p->v[2] = p->buf[2];
    }
    if (info->max_rss_kb >= 0) {
        snprintf(p->buf[3], sizeof p->buf[3], "%" PRId64, info->max_rss_kb);
        p->v[3] = p->buf[3];
    }
}

/* Error text comes from handlers (a stderr tail may be cut mid-character,
 * or not be UTF-8 at all) and PostgreSQL rejects invalid UTF-8: replace
 * each bad byte with '?' rather than lose the failure. Caller frees. */
static char *valid_utf8(const char *in)
{
    size_t n = strlen(in);
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (const unsigned char *s = (const unsigned char *)in, *e = s + n; s < e;) {
        size_t k = utf8_char_len(s, (size_t)(e - s));
        if (k == 0) {
            *o++ = '?';
            s++;
        } else {
            memcpy(o, s, k);
            o += k;
            s += k;
        }
    }
    *o = '\0';
    return out;
}

int pgq_fail(pgq_conn *c, int64_t id, const char *token, const char *error,
             const pgq_attempt_info *info, pgq_fail_result *res, char *err, size_t errlen)
{
    char ids[24];
    struct info_params ip;
    char *text = valid_utf8(error && *error ? error : "failed");
    if (!text)
        return seterr(err, errlen, "fail: out of memory");
    snprintf(ids, sizeof ids, "%" PRId64, id);
    info_params(info, &ip);
    const char *params[] = { ids, token, text, ip.v[0], ip.v[1], ip.v[2], ip.v[3] };
    PGresult *r = db_run(c, STMT_FAIL, 7, params, PGRES_TUPLES_OK, "fail", err, errlen);
    free(text);
    if (!r)
        return -1;
    memset(res, 0, sizeof *res);
    if (PQntuples(r) == 0) {
        res->lease_lost = true;
    } else {
        res->dead = strcmp(PQgetvalue(r, 0, 0), "dead") == 0;
        res->retry_in_s = res->dead ? 0 : db_double(r, 0, 1, 0);
    }
    PQclear(r);
    return 0;
}

int pgq_release(pgq_conn *c, int64_t id, const char *token, bool *lease_lost,
                char *err, size_t errlen)
{
    char ids[24];
    snprintf(ids, sizeof ids, "%" PRId64, id);
    const char *params[] = { ids, token };
    PGresult *r = db_run(c, STMT_RELEASE, 2, params, PGRES_TUPLES_OK, "release", err, errlen);
    if (!r)
        return -1;
    *lease_lost = PQntuples(r) == 0;
    PQclear(r);
    return 0;
}

int pgq_reap(pgq_conn *c, int limit, int *reaped, char *err, size_t errlen)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit > 0 ? limit : 1000);
    const char *params[] = { lim };
    PGresult *r = db_run(c, STMT_REAP, 1, params, PGRES_TUPLES_OK, "reap", err, errlen);
    if (!r)
        return -1;
    if (reaped)
        *reaped = PQntuples(r);
    PQclear(r);
    return 0;
}
