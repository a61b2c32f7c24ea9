/* The listener thread, with its own connection: LISTEN pgq_jobs (every add,
 * release, retry and requeue of a due job sends the queue's name) and wake
 * one idle worker per notification for one of our queues, so a new job
 * starts within milliseconds without busy polling; LISTEN pgq_ready (the
 * position of every job made ready, sent just before) and move the
 * queue's claim hint back to it (core/hints.c). After a reconnect, when
 * notifications may have been missed, the hints are forgotten. When
 * nothing arrives for `poll`, it wakes one worker anyway: that catches
 * scheduled jobs and retries coming due, which nobody wakes a pool for. It sleeps in poll(2) on the socket and a
 * stop pipe, so an idle pool uses no CPU.
 *
 * LISTEN does not work through a transaction pooler (the registration
 * stays on a server connection other clients get): with [database] pooler
 * = transaction it listens on listen_url, a direct URL, when given, and
 * otherwise not at all: then it only wakes a worker every `poll`. */
#include "pool_int.h"

#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static int listen_on(pgq_pool *p, pgq_conn **c)
{
    int rc = p->cfg->listen_url
                 ? pool_connect_retry_to(p, p->cfg->listen_url, PGQ_POOLER_NONE, c, "listener")
                 : pool_connect_retry(p, c, "listener");
    if (rc < 0)
        return -1;
    PGresult *r = PQexec(pgq_conn_pg(*c), "LISTEN pgq_ready; LISTEN pgq_jobs; LISTEN pgq_cancel");
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        pool_log(PGQ_LOG_WARN, "listener", "LISTEN failed: %s", PQresultErrorMessage(r));
    PQclear(r);
    return ok ? 0 : -1;
}

void *listener_main(void *arg)
{
    pgq_pool *p = arg;
    pgq_conn *c = NULL;
    bool listening = false;

    while (!p->listens && !atomic_load(&p->stopping)) {
        struct pollfd stop = { p->stop_pipe[0], POLLIN, 0 };
        int n = poll(&stop, 1, (int)p->cfg->poll_ms);
        if (n > 0)
            return NULL;
        if (n == 0)
            pool_wake_one(p);   /* the only wake-up there is */
    }
    while (!atomic_load(&p->stopping)) {
        if (!listening) {
            if (listen_on(p, &c) < 0) {
                pool_nap(p, 1000);
                continue;
            }
            listening = true;
            pgq_hints_forget(p->hints);
            pool_wake_one(p);   /* catch up on what was announced while away */
        }
        PGconn *pg = pgq_conn_pg(c);
        struct pollfd fds[2] = { { PQsocket(pg), POLLIN, 0 }, { p->stop_pipe[0], POLLIN, 0 } };
        int n = poll(fds, 2, (int)p->cfg->poll_ms);
        if (n < 0)
            continue;   /* EINTR */
        if (n == 0) {
            pool_wake_one(p);   /* the fallback poll */
            continue;
        }
        if (fds[1].revents)
            break;
        if (!PQconsumeInput(pg)) {
            pool_log(PGQ_LOG_WARN, "listener", "connection lost: %s", PQerrorMessage(pg));
            listening = false;   /* listen_on reconnects */
            continue;
        }
        PGnotify *note;
        while ((note = PQnotifies(pg)) != NULL) {
            /* pgq_jobs: due now, wake a worker; pgq_ready: where it is;
             * pgq_cancel: a running job was cancelled, perhaps one of ours:
             * the heartbeat renews now and finds which lease is gone. */
            if (strcmp(note->relname, "pgq_cancel") == 0) {
                pthread_mutex_lock(&p->mu);
                p->hb_now = true;
                pthread_cond_broadcast(&p->state_cv);
                pthread_mutex_unlock(&p->mu);
            } else if (pgq_hints_note(p->hints, note->relname, note->extra) &&
                       strcmp(note->relname, "pgq_jobs") == 0) {
                pool_wake_one(p);
            }
            PQfreemem(note);
        }
    }
    pgq_disconnect(c);
    return NULL;
}
