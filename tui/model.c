/* The dashboard's model: everything the dashboard knows comes from here.
 * This file is its thread; snapshot.c holds the snapshots and fetch.c
 * builds one.
 *
 * The design is simple: one thread owns one connection. Every refresh
 * interval (or at once when the UI changes what it looks at, or queues an
 * action) it runs the queries for the parts on screen, each a parameterized
 * autocommit statement (no transaction or snapshot is held open between
 * refreshes), and builds a heap struct snapshot whose rows point into the
 * query results it keeps. The finished snapshot is published by swapping a
 * pointer under the mutex; readers take a reference, so the UI draws one
 * consistent snapshot while the model builds the next, and the old one is
 * freed by whoever drops the last reference.
 *
 * Database trouble never reaches the UI as a stall: a failed refresh leaves
 * the last good snapshot in place and records the error and its time in the
 * status, a lost connection is re-established with backoff (250 ms doubling
 * to 5 s), and statement_timeout bounds every query. Actions (requeue,
 * cancel) queue here and run on the model's connection through the library,
 * which records them in pgq.actions; their outcome comes back as the next
 * snapshot's msg. */
#include "model.h"
#include "fetch.h"
#include "snapshot.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double model_count_every_s(double count_s, double interval_s)
{
    double every = count_s * MODEL_COUNT_FACTOR;
    if (every > MODEL_COUNT_MAX_S)
        every = MODEL_COUNT_MAX_S;
    return every > interval_s ? every : interval_s;
}

/* ---- the model thread ------------------------------------------------------ */

struct action_node {
    struct model_action a;
    struct action_node *next;
};

struct model {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    /* under mu */
    bool stop, dirty, orphaned, leaving;
    bool recount;       /* count at the next refresh (forced, or after an action) */
    struct model_query q;
    struct snapshot *cur;
    struct model_status st;
    struct action_node *actions, **actions_tail;
    char msg[512];
    uint64_t msg_seq, gen;
    /* fixed at start */
    char *url, *who;
    int64_t interval_ms;
};

static void model_free(struct model *m)
{
    struct action_node *a = m->actions;
    while (a) {
        struct action_node *next = a->next;
        free(a->a.ids);
        free(a);
        a = next;
    }
    snapshot_release(m->cur);
    pthread_cond_destroy(&m->cond);
    pthread_mutex_destroy(&m->mu);
    free(m->url);
    free(m->who);
    free(m);
}

/* Sleep until ms have passed, or until stopped, or (with work) until
 * there is something to fetch or do. Called locked. */
static void wait_locked(struct model *m, int64_t ms, bool work)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    while (!m->stop && !(work && (m->dirty || m->actions)))
        if (pthread_cond_timedwait(&m->cond, &m->mu, &until) == ETIMEDOUT)
            break;
}

/* Run one action on c; the message says what happened, in one line. */
static void run_action(struct model *m, pgq_conn *c, const struct model_action *a)
{
    char err[512], msg[512];
    int64_t count = 0;
    int rc;
    switch (a->kind) {
    case MODEL_REQUEUE_IDS:
        rc = pgq_requeue(c, a->ids, a->nids, m->who, NULL, &count, err, sizeof err);
        if (rc == 0)
            snprintf(msg, sizeof msg, "requeued %" PRId64 " of %zu job%s%s", count, a->nids,
                     a->nids == 1 ? "" : "s",
                     (size_t)count < a->nids ? " (the others were no longer dead or cancelled)" : "");
        break;
    case MODEL_REQUEUE_MATCHING:
        rc = pgq_requeue_matching(c, "dead", filter_param(a->queue), filter_param(a->type), m->who,
                                  &count, err, sizeof err);
        if (rc == 0)
            snprintf(msg, sizeof msg, "requeued %" PRId64 " dead job%s", count,
                     count == 1 ? "" : "s");
        break;
    case MODEL_CANCEL_IDS:
        rc = pgq_cancel(c, a->ids, a->nids, m->who, NULL, &count, err, sizeof err);
        if (rc == 0)
            snprintf(msg, sizeof msg, "cancelled %" PRId64 " of %zu job%s%s", count, a->nids,
                     a->nids == 1 ? "" : "s",
                     (size_t)count < a->nids ? " (the others had finished)" : "");
        break;
    case MODEL_PAUSE:
    case MODEL_RESUME: {
        const char *q[] = { a->queue };
        bool changed = false;
        bool pause = a->kind == MODEL_PAUSE;
        rc = pgq_pause(c, q, 1, pause, m->who, &changed, err, sizeof err);
        if (rc == 0)
            snprintf(msg, sizeof msg, "queue %s %s", a->queue,
                     changed ? (pause ? "paused: no pool claims from it" : "resumed")
                             : (pause ? "was paused already" : "was not paused"));
        break;
    }
    default:
        rc = -1;
        snprintf(err, sizeof err, "unknown action");
    }
    if (rc < 0) {
        size_t n = strcspn(err, "\n");
        if (strstr(err, "permission denied"))
            snprintf(msg, sizeof msg, "refused: this database role may not change jobs (%.*s)",
                     (int)n, err);
        else
            snprintf(msg, sizeof msg, "action failed: %.*s", (int)n, err);
    }
    pthread_mutex_lock(&m->mu);
    snprintf(m->msg, sizeof m->msg, "%s", msg);
    m->msg_seq++;
    pthread_mutex_unlock(&m->mu);
}

static void *model_main(void *arg)
{
    struct model *m = arg;
    pgq_conn *c = NULL;
    bool ready = false;   /* connected and the session set up */
    int64_t backoff = 250;
    char err[512];

    pthread_mutex_lock(&m->mu);
    while (!m->stop) {
        pthread_mutex_unlock(&m->mu);
        if (ready && !pgq_connected(c))
            ready = false;
        if (!ready) {
            int rc = c ? pgq_reconnect(c, err, sizeof err)
                       : pgq_connect(m->url, &c, err, sizeof err);
            if (rc == 0)
                rc = fetch_session_setup(c, err, sizeof err);
            if (rc == 0) {
                ready = true;
                backoff = 250;
            } else if (c && pgq_connected(c)) {
                /* set up failed on a live connection: start afresh */
                pgq_disconnect(c);
                c = NULL;
            }
        }
        bool ok = ready;
        if (ok) {
            /* Actions first, so the snapshot right after shows their effect. */
            for (;;) {
                pthread_mutex_lock(&m->mu);
                struct action_node *a = m->stop ? NULL : m->actions;
                if (a) {
                    m->actions = a->next;
                    if (!m->actions)
                        m->actions_tail = &m->actions;
                }
                pthread_mutex_unlock(&m->mu);
                if (!a)
                    break;
                run_action(m, c, &a->a);
                free(a->a.ids);
                free(a);
                pthread_mutex_lock(&m->mu);
                m->recount = true;   /* show the action's effect on the counts */
                pthread_mutex_unlock(&m->mu);
            }
            pthread_mutex_lock(&m->mu);
            struct model_query q = m->q;
            m->dirty = false;
            /* The counts cost what the table's size and state make them
             * (capped ranges that visit the heap until vacuum has run):
             * counted again only when the last count is old enough for
             * its cost, or when asked to (a forced refresh, an action),
             * and reused meanwhile; the view shows their age. */
            struct snapshot *prev = NULL;
            if (!m->recount && m->cur &&
                snapshot_clock() - m->cur->counts_taken <
                    model_count_every_s(m->cur->counts_s, (double)m->interval_ms / 1000.0))
                prev = snapshot_ref(m->cur);
            m->recount = false;
            pthread_mutex_unlock(&m->mu);
            struct snapshot *s = NULL;
            if (model_refresh_reusing(c, &q, prev, &s, err, sizeof err) < 0)
                ok = false;
            snapshot_release(prev);
            pthread_mutex_lock(&m->mu);
            if (s) {
                s->gen = ++m->gen;
                snprintf(s->msg, sizeof s->msg, "%s", m->msg);
                s->msg_seq = m->msg_seq;
                snapshot_release(m->cur);
                m->cur = s;
                m->st.have_snapshot = true;
                m->st.last_ok = s->taken;
                m->st.error[0] = '\0';
                m->st.error_since = 0;
            }
            m->st.connected = pgq_connected(c);
            pthread_mutex_unlock(&m->mu);
        }
        pthread_mutex_lock(&m->mu);
        if (!ok) {
            snprintf(m->st.error, sizeof m->st.error, "%s", err);
            if (m->st.error_since == 0)
                m->st.error_since = snapshot_clock();
            m->st.connected = c && pgq_connected(c);
            /* A broken connection is retried with backoff (queued actions
             * wait for it); a failed query (a timeout) at the next interval. */
            if (!m->st.connected) {
                wait_locked(m, backoff, false);
                backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
                continue;
            }
        }
        wait_locked(m, m->interval_ms, true);
    }
    m->leaving = true;
    bool orphaned = m->orphaned;
    pthread_mutex_unlock(&m->mu);
    pgq_disconnect(c);
    if (orphaned)
        model_free(m);
    return NULL;
}

int model_start(const char *url, const char *who, int64_t interval_ms, struct model **out,
                char *err, size_t errlen)
{
    struct model *m = calloc(1, sizeof *m);
    *out = NULL;
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cond, NULL);
    m->actions_tail = &m->actions;
    m->url = strdup(url ? url : "");
    m->who = strdup(who ? who : "pgq top");
    m->interval_ms = interval_ms > 0 ? interval_ms : 1000;
    m->q.parts = MODEL_OVERVIEW;
    if (!m->url || !m->who) {
        model_free(m);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = pthread_create(&m->thread, NULL, model_main, m);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the model thread: %s", strerror(rc));
        model_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

void model_stop(struct model *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->stop = true;
    pthread_cond_signal(&m->cond);
    pthread_mutex_unlock(&m->mu);

    /* A thread inside a slow query (bounded by statement_timeout) or stuck
     * connecting to an unreachable host cannot be interrupted; do not let
     * it hold up quitting: it frees the model itself when it gets out. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 1;
    if (pthread_timedjoin_np(m->thread, NULL, &until) == 0) {
        model_free(m);
        return;
    }
    pthread_mutex_lock(&m->mu);
    if (m->leaving) {
        /* it got out just now and will not free the model: join it */
        pthread_mutex_unlock(&m->mu);
        pthread_join(m->thread, NULL);
        model_free(m);
        return;
    }
    m->orphaned = true;
    pthread_mutex_unlock(&m->mu);
    pthread_detach(m->thread);
}

struct snapshot *model_acquire(struct model *m)
{
    pthread_mutex_lock(&m->mu);
    struct snapshot *s = snapshot_ref(m->cur);
    pthread_mutex_unlock(&m->mu);
    return s;
}

void model_status(struct model *m, struct model_status *st)
{
    pthread_mutex_lock(&m->mu);
    *st = m->st;
    pthread_mutex_unlock(&m->mu);
}

void model_set_query(struct model *m, const struct model_query *q, bool force)
{
    pthread_mutex_lock(&m->mu);
    if (force || memcmp(&m->q, q, sizeof *q) != 0) {
        m->q = *q;
        m->dirty = true;
        m->recount |= force;
        pthread_cond_signal(&m->cond);
    }
    pthread_mutex_unlock(&m->mu);
}

int model_request(struct model *m, struct model_action *a)
{
    struct action_node *n = calloc(1, sizeof *n);
    if (!n) {
        free(a->ids);
        a->ids = NULL;
        return -1;
    }
    n->a = *a;
    a->ids = NULL;
    pthread_mutex_lock(&m->mu);
    *m->actions_tail = n;
    m->actions_tail = &n->next;
    pthread_cond_signal(&m->cond);
    pthread_mutex_unlock(&m->mu);
    return 0;
}
