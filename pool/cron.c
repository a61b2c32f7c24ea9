/*
 * cron.c -- the pool's scheduler thread for periodic jobs ([cron NAME]).
 *
 * Every pool that has a [cron NAME] section runs this thread, with a
 * connection of its own; there is no leader. The design is simple: the
 * thread sleeps until the next tick of any of its schedules, then for each
 * schedule asks pgq.cron_fire to add the job of the latest tick at or
 * before now. The database lets exactly one caller of the fleet through
 * per tick (a conditional upsert of the schedule's row in the transaction
 * that adds the job), so three pools waking at the same tick make one job,
 * and the others hear "taken". The database's clock decides whether a tick
 * is due: a pool whose clock runs ahead hears "early" and asks again a
 * moment later.
 *
 * At start each schedule is registered: a new one begins after the
 * current tick. An existing one keeps the last tick the fleet added, so a
 * fleet that was down fires the latest missed tick once, at once, and
 * skips the ticks before it (a burst of stale runs after an outage is
 * what nobody wants from a schedule; one catch-up run is). The sections are
 * read once: SIGHUP reloads job types, a changed [cron] section needs a
 * restart (the log says so). The thread stops when the pool stops
 * claiming, so no job is added during a shutdown.
 */
#include "pool_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cron.h"
#include "log.h"
#include "tz.h"

#define EARLY_RETRY_MS 20
#define MAX_SLEEP_MS 60000      /* re-read the clock at least this often (it may be set) */

struct sched {
    const pgq_cfg_cron *cfg;
    pgq_cron_def def;
    int64_t handled_ms;         /* the latest tick known to have its job; -1: none yet */
    bool registered;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *fmt_utc(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms < 0 || !gmtime_r(&t, &tm)) {
        snprintf(buf, len, "-");
        return buf;
    }
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

static int do_register(pgq_pool *p, pgq_conn *c, struct sched *s, int64_t now)
{
    char err[512];
    int64_t last;
    if (pgq_cron_register(c, &s->def, pgq_cron_prev(s->cfg->cron, now),
                          pgq_cron_next(s->cfg->cron, now), p->name, &last, err, sizeof err) < 0) {
        pool_log(PGQ_LOG_WARN, "cron", "%s: %s", s->def.name, err);
        return -1;
    }
    s->handled_ms = last;
    s->registered = true;
    return 0;
}

/* Fire s's latest due tick if it has no job yet. Returns how soon (ms) to
 * look again for s's sake: 0 for its next tick, EARLY_RETRY_MS when the
 * database's clock has not reached the tick yet. */
static int64_t fire(pgq_pool *p, pgq_conn *c, struct sched *s, int64_t now)
{
    char err[512], a[32], b[32];
    int64_t tick = pgq_cron_prev(s->cfg->cron, now);
    if (tick < 0 || tick <= s->handled_ms)
        return 0;
    pgq_cron_outcome o;
    int64_t id;
    if (pgq_cron_fire(c, &s->def, tick, pgq_cron_next(s->cfg->cron, now), p->name, &o, &id, err,
                      sizeof err) < 0) {
        if (!pgq_connected(c))
            return 0;   /* the loop reconnects and tries the tick again */
        /* A refusal (the type's contract changed in the database, ...): said
         * once per tick, not retried until the next one. */
        pool_log(PGQ_LOG_ERROR, "cron", "%s: tick %s: %s", s->def.name, fmt_utc(tick, a, sizeof a),
                 err);
        s->handled_ms = tick;
        return 0;
    }
    switch (o) {
    case PGQ_CRON_EARLY:
        return EARLY_RETRY_MS;
    case PGQ_CRON_TAKEN:
        break;
    case PGQ_CRON_ADDED: {
        int64_t before = pgq_cron_prev(s->cfg->cron, tick - 1);
        if (s->handled_ms >= 0 && before > s->handled_ms)
            pool_log(PGQ_LOG_WARN, "cron", "%s: job=%" PRId64 " for tick %s, a catch-up run: "
                     "ticks since %s were missed and are skipped", s->def.name, id,
                     fmt_utc(tick, a, sizeof a), fmt_utc(s->handled_ms, b, sizeof b));
        else
            pool_log(PGQ_LOG_INFO, "cron", "%s: job=%" PRId64 " type=%s for tick %s", s->def.name,
                     id, s->def.type, fmt_utc(tick, a, sizeof a));
        break;
    }
    }
    s->handled_ms = tick;
    return 0;
}

void *cron_main(void *arg)
{
    pgq_pool *p = arg;
    const pgq_cfg *cfg = p->cfg;
    pgq_conn *c = NULL;
    struct sched *v = calloc(cfg->ncrons, sizeof *v);

    if (!v) {
        pool_log(PGQ_LOG_ERROR, "cron", "out of memory: periodic jobs are not scheduled");
        return NULL;
    }
    for (size_t i = 0; i < cfg->ncrons; i++) {
        const pgq_cfg_cron *cr = &cfg->crons[i];
        v[i].cfg = cr;
        v[i].def = (pgq_cron_def){ .name = cr->name, .schedule = cr->schedule,
                                   .timezone = tz_name(cr->zone), .type = cr->type,
                                   .queue = cr->queue, .payload = cr->payload,
                                   .priority = cr->priority_line ? cr->priority : PGQ_DEFAULT };
        v[i].handled_ms = -1;
    }
    while (!atomic_load(&p->stopping)) {
        if ((c == NULL || !pgq_connected(c)) && pool_connect_retry(p, &c, "cron") < 0)
            break;
        int64_t now = wall_ms(), sleep_ms = MAX_SLEEP_MS;
        bool trouble = false;
        for (size_t i = 0; i < cfg->ncrons && !atomic_load(&p->stopping); i++) {
            if (!v[i].registered && do_register(p, c, &v[i], now) < 0) {
                trouble = true;
                continue;
            }
            int64_t again = fire(p, c, &v[i], now);
            if (again > 0 && again < sleep_ms)
                sleep_ms = again;
            int64_t next = pgq_cron_next(v[i].cfg->cron, now);
            if (next >= 0 && next - now + 1 < sleep_ms)
                sleep_ms = next - now + 1;
        }
        if (trouble && sleep_ms > 1000)
            sleep_ms = 1000;
        if (!pgq_connected(c))
            continue;
        pool_nap(p, sleep_ms > 0 ? sleep_ms : 1);
    }
    pgq_disconnect(c);
    free(v);
    return NULL;
}

static bool same_text(const char *x, const char *y)
{
    return x == y || (x && y && strcmp(x, y) == 0);
}

bool cron_sections_differ(const pgq_cfg *a, const pgq_cfg *b)
{
    if (a->ncrons != b->ncrons)
        return true;
    for (size_t i = 0; i < a->ncrons; i++) {
        const pgq_cfg_cron *x = &a->crons[i], *y = &b->crons[i];
        int px = x->priority_line ? x->priority : PGQ_DEFAULT;
        int py = y->priority_line ? y->priority : PGQ_DEFAULT;
        if (!same_text(x->name, y->name) || !same_text(x->schedule, y->schedule) ||
            !same_text(x->type, y->type) || !same_text(x->payload, y->payload) ||
            !same_text(tz_name(x->zone), tz_name(y->zone)) || !same_text(x->queue, y->queue) ||
            px != py)
            return true;
    }
    return false;
}
