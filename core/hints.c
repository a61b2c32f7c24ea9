/* Claim hints: where a pool's next claim of each queue may start.
 *
 * While any session pins the xmin horizon (pg_dump, a forgotten psql, a
 * long report), vacuum can remove nothing, and the claim index keeps an
 * entry for every job claimed since the pin began. A claim that walks the
 * index from its start visits all of them: every claim gets slower by the
 * number of jobs done so far, and a queue that drained 2,800 jobs/s fell to
 * 300. The claim instead starts after the position (priority, run_at, id)
 * of the last job this pool claimed from the queue (pgq.complete_claim in
 * migrations/state_machine.sql), which keeps it at a few index pages
 * whatever the pin left behind.
 *
 * A hint promises that no ready job of its priority lies before it. Jobs
 * can appear behind it (a producer whose transaction began before the
 * claimed job's, a release at shutdown, an explicit run_at in the past):
 * the state machine announces every job made ready on the channel pgq_ready
 * with its position, and pgq_hints_note() moves the hint back to it. A
 * claim in flight cannot undo a note that arrived meanwhile: every claim
 * registers while it runs, each note caps the registered claims of its
 * queue, and a claim moves its hint no further than its cap.
 *
 * What no announcement covers (a claim rolled back, a lost notification, a
 * writer of the previous release, which announces nothing, a job of a
 * better priority whose run_at came) is caught by one claim in every
 * `better_ms` that also looks at better priorities, and one claim in every
 * `forget_ms` that searches from the start while the others keep their
 * hints: one full search per interval, not one per worker, since under a
 * pin a full search is the very walk the hints avoid. A claim error or a
 * reconnect of the listener drops the hints outright. */
#include "db.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A claim position; run_at in microseconds since the epoch
 * (pgq.position_us). */
struct pos {
    bool set;
    int prio;
    int64_t run_at;
    int64_t id;
};

struct hint {
    char *queue;
    struct pos at;
};

/* What a claim starts from: the hints as array literals, per queue in the
 * caller's order; while it runs it is registered, and notes lower its cap
 * (per queue of the hints, the earliest job announced since it began). */
struct hints_snapshot {
    char *prio, *run_at, *id;
    bool better, full;
    uint64_t forgets;
    struct pos *cap;               /* per h->q entry */
    struct hints_snapshot *next;   /* registered claims */
};

struct pgq_hints {
    pthread_mutex_t mu;
    struct hint *q;
    size_t n;
    int64_t better_ms, forget_ms;
    int64_t last_better, last_full;   /* monotonic ms */
    uint64_t forgets;              /* a claim that started before one moves nothing */
    struct hints_snapshot *running;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int pos_cmp(const struct pos *a, const struct pos *b)
{
    if (a->prio != b->prio)
        return a->prio < b->prio ? -1 : 1;
    if (a->run_at != b->run_at)
        return a->run_at < b->run_at ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

pgq_hints *pgq_hints_new(const char *const *queues, size_t n, int64_t better_ms,
                         int64_t forget_ms)
{
    pgq_hints *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->q = calloc(n ? n : 1, sizeof *h->q);
    if (!h->q) {
        free(h);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        h->q[i].queue = strdup(queues[i]);
        if (!h->q[i].queue) {
            h->n = i;
            pgq_hints_free(h);
            return NULL;
        }
    }
    h->n = n;
    h->better_ms = better_ms;
    h->forget_ms = forget_ms;
    h->last_better = h->last_full = mono_ms();
    pthread_mutex_init(&h->mu, NULL);
    return h;
}

void pgq_hints_free(pgq_hints *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++)
        free(h->q[i].queue);
    free(h->q);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

/* The index of a queue in h->q, or -1. */
static ssize_t find(const pgq_hints *h, const char *queue, size_t len)
{
    for (size_t i = 0; i < h->n; i++)
        if (strlen(h->q[i].queue) == len && memcmp(h->q[i].queue, queue, len) == 0)
            return (ssize_t)i;
    return -1;
}

void pgq_hints_forget(pgq_hints *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < h->n; i++)
        h->q[i].at.set = false;
    h->forgets++;
    pthread_mutex_unlock(&h->mu);
}

/* A job made ready at `at` in queue qi: the hint goes back to it, and no
 * claim in flight may move the hint past it. mu held. */
static void lower_locked(pgq_hints *h, size_t qi, struct pos at)
{
    struct hint *q = &h->q[qi];
    if (q->at.set && pos_cmp(&at, &q->at) < 0)
        q->at = at;
    for (struct hints_snapshot *s = h->running; s; s = s->next)
        if (!s->cap[qi].set || pos_cmp(&at, &s->cap[qi]) < 0)
            s->cap[qi] = at;
}

/* A whole decimal integer in [lo, hi], or false. */
static bool parse_int(const char *s, const char *end, int64_t lo, int64_t hi, int64_t *out)
{
    if (s == end || end - s > 20)
        return false;
    char buf[24];
    memcpy(buf, s, (size_t)(end - s));
    buf[end - s] = '\0';
    for (const char *p = buf + (buf[0] == '-'); ; p++) {
        if (*p < '0' || *p > '9')
            return false;
        if (!p[1])
            break;
    }
    errno = 0;
    char *e;
    long long v = strtoll(buf, &e, 10);
    if (errno || *e || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* pgq_ready: "QUEUE PRIORITY RUN_AT_US ID DUE"; the last four fields are
 * split off from the right, so that the queue is whatever precedes them. */
static bool note_ready(pgq_hints *h, const char *payload)
{
    const char *sp[4];
    const char *end = payload + strlen(payload);
    int found = 0;
    for (const char *p = end; p > payload && found < 4;)
        if (*--p == ' ')
            sp[found++] = p;
    if (found < 4 || sp[3] == payload)
        return false;   /* not a position: ignore it */
    int64_t prio, run_at, id, due;
    if (!parse_int(sp[3] + 1, sp[2], INT32_MIN, INT32_MAX, &prio) ||
        !parse_int(sp[2] + 1, sp[1], INT64_MIN, INT64_MAX, &run_at) ||
        !parse_int(sp[1] + 1, sp[0], 1, INT64_MAX, &id) ||
        !parse_int(sp[0] + 1, end, 0, 1, &due))
        return false;
    /* The claim starts strictly after the hint: just before the job. */
    struct pos at = { true, (int)prio, run_at, id - 1 };
    pthread_mutex_lock(&h->mu);
    ssize_t qi = find(h, payload, (size_t)(sp[3] - payload));
    if (qi >= 0)
        lower_locked(h, (size_t)qi, at);
    pthread_mutex_unlock(&h->mu);
    return qi >= 0;
}

bool pgq_hints_note(pgq_hints *h, const char *channel, const char *payload)
{
    if (!h || !channel || !payload)
        return false;
    if (strcmp(channel, "pgq_ready") == 0)
        return note_ready(h, payload);
    if (strcmp(channel, "pgq_jobs") == 0) {   /* "QUEUE": only whether it is ours */
        pthread_mutex_lock(&h->mu);
        bool ours = find(h, payload, strlen(payload)) >= 0;
        pthread_mutex_unlock(&h->mu);
        return ours;
    }
    return false;
}

static void snapshot_free(struct hints_snapshot *s)
{
    free(s->prio);
    free(s->run_at);
    free(s->id);
    free(s->cap);
    free(s);
}

static struct hints_snapshot *snapshot(pgq_hints *h, const char *const *queues, size_t n)
{
    struct hints_snapshot *s = calloc(1, sizeof *s);
    int64_t *prio = calloc(n ? n : 1, sizeof *prio), *id = calloc(n ? n : 1, sizeof *id),
            *run_at = calloc(n ? n : 1, sizeof *run_at);
    bool *has = calloc(n ? n : 1, sizeof *has);
    if (s)
        s->cap = calloc(h->n ? h->n : 1, sizeof *s->cap);
    if (!s || !s->cap || !prio || !id || !has || !run_at)
        goto fail;

    pthread_mutex_lock(&h->mu);
    int64_t now = mono_ms();
    if (now - h->last_full >= h->forget_ms) {
        s->full = true;   /* this one searches from the start */
        h->last_full = now;
    }
    if (now - h->last_better >= h->better_ms) {
        s->better = true;
        h->last_better = now;
    }
    for (size_t i = 0; i < n && !s->full; i++) {
        ssize_t qi = find(h, queues[i], strlen(queues[i]));
        if (qi >= 0 && h->q[qi].at.set) {
            has[i] = true;
            prio[i] = h->q[qi].at.prio;
            id[i] = h->q[qi].at.id;
            run_at[i] = h->q[qi].at.run_at;
        }
    }
    s->forgets = h->forgets;
    s->next = h->running;
    h->running = s;
    pthread_mutex_unlock(&h->mu);

    s->prio = db_int64_array_nullable(prio, has, n);
    s->id = db_int64_array_nullable(id, has, n);
    s->run_at = db_int64_array_nullable(run_at, has, n);
    free(prio);
    free(id);
    free(has);
    free(run_at);
    if (!s->prio || !s->id || !s->run_at) {
        hints_params_free(&(struct hints_params){ .snap = s, .hints = h });
        return NULL;
    }
    return s;
fail:
    free(prio);
    free(id);
    free(has);
    free(run_at);
    if (s)
        snapshot_free(s);
    return NULL;
}

/* A claim that started from snapshot s took a job at `at` in queue qi:
 * move the hint forward to it, but not past a job announced since the
 * claim began (its cap), and not at all after a forget (whatever made us
 * forget may lie behind the job). A claim that searched further back than
 * the hint (better priorities, or from the start) and found a job behind
 * it moves the hint back there, as an announcement would. mu held. */
static void advance_locked(pgq_hints *h, const struct hints_snapshot *s, size_t qi,
                           struct pos at)
{
    struct hint *q = &h->q[qi];
    if (h->forgets != s->forgets)
        return;
    if (q->at.set && pos_cmp(&at, &q->at) < 0) {
        if (s->full || (s->better && at.prio < q->at.prio))
            lower_locked(h, qi, at);
        return;   /* else another claim went further */
    }
    if (s->cap[qi].set && pos_cmp(&s->cap[qi], &at) < 0)
        at = s->cap[qi];
    if (!q->at.set || pos_cmp(&q->at, &at) < 0)
        q->at = at;
}

int hints_claim_params(pgq_hints *h, const char *const *queues, size_t n,
                       struct hints_params *p)
{
    memset(p, 0, sizeof *p);
    if (!h)
        return 0;
    struct hints_snapshot *s = snapshot(h, queues, n);
    if (!s)
        return -1;
    p->snap = s;
    p->hints = h;
    p->prio = s->prio;
    p->run_at = s->run_at;
    p->id = s->id;
    p->better = s->better || s->full ? "true" : "false";
    return 0;
}

void hints_claimed(const struct hints_params *p, const char *queue, int prio, int64_t run_at,
                   int64_t id)
{
    pgq_hints *h = p->hints;
    if (!h || !p->snap)
        return;
    pthread_mutex_lock(&h->mu);
    ssize_t qi = find(h, queue, strlen(queue));
    if (qi >= 0)
        advance_locked(h, p->snap, (size_t)qi, (struct pos){ true, prio, run_at, id });
    pthread_mutex_unlock(&h->mu);
}

void hints_params_free(struct hints_params *p)
{
    struct hints_snapshot *s = p->snap;
    if (s && p->hints) {
        pgq_hints *h = p->hints;
        pthread_mutex_lock(&h->mu);
        for (struct hints_snapshot **pp = &h->running; *pp; pp = &(*pp)->next)
            if (*pp == s) {
                *pp = s->next;
                break;
            }
        pthread_mutex_unlock(&h->mu);
    }
    if (s)
        snapshot_free(s);
    memset(p, 0, sizeof *p);
}
