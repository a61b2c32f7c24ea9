/* Claim hints: where a pool's next claim of each queue may start.
 *
 * While any session pins the xmin horizon (pg_dump, a forgotten psql, a
 * long report), vacuum can remove nothing, and the claim index keeps an
 * entry for every job claimed since the pin began. A claim that walks the
 * index from its start visits all of them: every claim gets slower by the
 * number of jobs done so far, and a queue that drained 2,800 jobs/s fell to
 * 300. The claim instead starts after the position (priority, run_at, id)
 * of the last job this pool claimed from the queue (pgq.complete_claim in
 * migrations/004_state_machine.sql), which keeps it at a few index pages
 * whatever the pin left behind.
 *
 * A hint promises that no ready job of its priority lies before it. Jobs
 * can appear behind it (a producer whose transaction began before the
 * claimed job's, a release at shutdown, an explicit run_at in the past):
 * the state machine announces every job made ready on the channel pgq_ready
 * with its position, and pgq_hints_note() moves the hint back to it. A
 * writer of an earlier version announces nothing but pgq_jobs: a pgq_jobs
 * note that no pgq_ready note of the same queue came before (new writers
 * send that one first) drops the queue's hint. What no announcement covers
 * (a claim rolled back, a lost notification, a job of a better priority
 * whose run_at came) is caught by asking for better priorities once every
 * `better_ms` and by forgetting all hints once every `forget_ms`, on any
 * claim error, and whenever the listener reconnects. A claim in flight cannot undo a note that arrived
 * meanwhile: it moves its hint no further than the jobs announced since it
 * began (a count of notes per queue and the last few notes). */
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

/* The position before every other: a hint there searches everything. */
static const struct pos FIRST = { true, INT32_MIN, INT64_MIN, 0 };

/* The last notes of a queue, so that a claim that started before them
 * does not move its hint past one (its snapshot may not have seen the
 * announced job). */
#define NOTES 32

struct hint {
    char *queue;
    struct pos at;
    uint64_t gen;                  /* notes received */
    struct pos notes[NOTES];       /* note k at notes[k % NOTES] (k = gen - 1) */
    bool announced;                /* a pgq_ready note with due jobs, no pgq_jobs yet */
};

struct pgq_hints {
    pthread_mutex_t mu;
    struct hint *q;
    size_t n;
    uint64_t forgets;              /* a claim that started before one moves nothing */
    int64_t better_ms, forget_ms;
    int64_t last_better, last_forget;   /* monotonic ms */
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
    h->last_better = h->last_forget = mono_ms();
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

static struct hint *find(pgq_hints *h, const char *queue, size_t len)
{
    for (size_t i = 0; i < h->n; i++)
        if (strlen(h->q[i].queue) == len && memcmp(h->q[i].queue, queue, len) == 0)
            return &h->q[i];
    return NULL;
}

static void forget_locked(pgq_hints *h)
{
    for (size_t i = 0; i < h->n; i++)
        h->q[i].at.set = false;
    h->forgets++;
    h->last_forget = mono_ms();
}

void pgq_hints_forget(pgq_hints *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    forget_locked(h);
    pthread_mutex_unlock(&h->mu);
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

/* Move a queue's hint back to `at` (a job made ready there): claims in
 * flight are capped by it too. */
static void lower_locked(struct hint *q, struct pos at)
{
    if (q->at.set && pos_cmp(&at, &q->at) < 0)
        q->at = at;
    q->notes[q->gen % NOTES] = at;
    q->gen++;
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
    struct hint *q = find(h, payload, (size_t)(sp[3] - payload));
    if (q) {
        lower_locked(q, at);
        if (due)
            q->announced = true;
    }
    pthread_mutex_unlock(&h->mu);
    return q != NULL;
}

/* pgq_jobs: "QUEUE", something is due. Unless a pgq_ready note announced
 * it, an earlier version wrote it, and it may lie anywhere. */
static bool note_jobs(pgq_hints *h, const char *queue)
{
    pthread_mutex_lock(&h->mu);
    struct hint *q = find(h, queue, strlen(queue));
    if (q) {
        if (q->announced)
            q->announced = false;
        else
            lower_locked(q, FIRST);
    }
    pthread_mutex_unlock(&h->mu);
    return q != NULL;
}

bool pgq_hints_note(pgq_hints *h, const char *channel, const char *payload)
{
    if (!h || !channel || !payload)
        return false;
    if (strcmp(channel, "pgq_ready") == 0)
        return note_ready(h, payload);
    if (strcmp(channel, "pgq_jobs") == 0)
        return note_jobs(h, payload);
    return false;
}

/* What a claim starts from: the hints as array literals, per queue in the
 * caller's order, and the generations they had. */
struct hints_snapshot {
    char *prio, *run_at, *id;
    uint64_t *gen;
    uint64_t forgets;
    bool better;
};

static void snapshot_free(struct hints_snapshot *s)
{
    free(s->prio);
    free(s->run_at);
    free(s->id);
    free(s->gen);
}

static int snapshot(pgq_hints *h, const char *const *queues, size_t n, struct hints_snapshot *s)
{
    memset(s, 0, sizeof *s);
    int64_t *prio = calloc(n ? n : 1, sizeof *prio), *id = calloc(n ? n : 1, sizeof *id),
            *run_at = calloc(n ? n : 1, sizeof *run_at);
    bool *has = calloc(n ? n : 1, sizeof *has);
    s->gen = calloc(n ? n : 1, sizeof *s->gen);
    if (!prio || !id || !has || !run_at || !s->gen)
        goto out;

    pthread_mutex_lock(&h->mu);
    int64_t now = mono_ms();
    if (now - h->last_forget >= h->forget_ms)
        forget_locked(h);
    if (now - h->last_better >= h->better_ms) {
        s->better = true;
        h->last_better = now;
    }
    for (size_t i = 0; i < n; i++) {
        struct hint *q = find(h, queues[i], strlen(queues[i]));
        if (q && q->at.set) {
            has[i] = true;
            prio[i] = q->at.prio;
            id[i] = q->at.id;
            run_at[i] = q->at.run_at;
        }
        s->gen[i] = q ? q->gen : 0;
    }
    s->forgets = h->forgets;
    pthread_mutex_unlock(&h->mu);

    s->prio = db_int64_array_nullable(prio, has, n);
    s->id = db_int64_array_nullable(id, has, n);
    s->run_at = db_int64_array_nullable(run_at, has, n);
out:
    free(prio);
    free(id);
    free(has);
    free(run_at);
    if (!s->prio || !s->id || !s->run_at || !s->gen) {
        snapshot_free(s);
        return -1;
    }
    return 0;
}

/* A claim that started from snapshot s took a job at (queue, prio, run_at,
 * id): move the queue's hint forward to it, but not past a job announced
 * since the snapshot, and not at all after a forget (whatever made us
 * forget may lie behind the job) or when more notes came than are kept. */
static void advance(pgq_hints *h, const char *const *queues, size_t n,
                    const struct hints_snapshot *s, const char *queue, int prio,
                    int64_t run_at, int64_t id)
{
    struct pos at = { true, prio, run_at, id };
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < n && h->forgets == s->forgets; i++) {
        if (strcmp(queues[i], queue) != 0)
            continue;
        struct hint *q = find(h, queue, strlen(queue));
        if (!q || q->gen - s->gen[i] > NOTES)
            break;
        if (q->at.set && at.prio < q->at.prio) {
            /* A better priority than the hint's (found by a claim that
             * looked at better priorities): the next claims must start
             * there, and claims in flight must not move past it, as if
             * it had been announced. */
            q->at = at;
            lower_locked(q, at);
            break;
        }
        if (q->at.set && pos_cmp(&at, &q->at) <= 0)
            break;   /* another claim went further */
        for (uint64_t k = s->gen[i]; k < q->gen; k++)
            if (pos_cmp(&q->notes[k % NOTES], &at) < 0)
                at = q->notes[k % NOTES];
        if (!q->at.set || pos_cmp(&q->at, &at) < 0)
            q->at = at;
        break;
    }
    pthread_mutex_unlock(&h->mu);
}

int hints_claim_params(pgq_hints *h, const char *const *queues, size_t n,
                       struct hints_params *p)
{
    memset(p, 0, sizeof *p);
    if (!h)
        return 0;
    struct hints_snapshot *s = malloc(sizeof *s);
    if (!s || snapshot(h, queues, n, s) < 0) {
        free(s);
        return -1;
    }
    p->snap = s;
    p->prio = s->prio;
    p->run_at = s->run_at;
    p->id = s->id;
    p->better = s->better ? "true" : "false";
    return 0;
}

void hints_claimed(pgq_hints *h, const char *const *queues, size_t n,
                   const struct hints_params *p, const char *queue, int prio, int64_t run_at,
                   int64_t id)
{
    if (h && p->snap)
        advance(h, queues, n, p->snap, queue, prio, run_at, id);
}

void hints_params_free(struct hints_params *p)
{
    if (p->snap) {
        snapshot_free(p->snap);
        free(p->snap);
    }
    memset(p, 0, sizeof *p);
}
