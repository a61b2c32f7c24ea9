/* How the pool's threads wait and wake (pool_int.h): monotonic time, the
 * wake tokens idle workers sleep for (pool.c explains the protocol), naps
 * that end early when the pool stops, and reconnecting with backoff. The
 * workers, the batch claimers, the listener and the heartbeat all use
 * these, and pool.c starts those threads, so the helpers live here rather
 * than in pool.c: no file of the pool depends on another in a circle. */
#include "pool_int.h"

#include <errno.h>
#include <time.h>

#include "log.h"

int64_t pool_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t pool_now_ms(void)
{
    return pool_now_us() / 1000;
}

void pool_deadline(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

void pool_wake_one(pgq_pool *p)
{
    pthread_mutex_lock(&p->mu);
    if (p->wakeups < p->idle) {
        p->wakeups++;
        pthread_cond_signal(&p->wake_cv);
    }
    pthread_mutex_unlock(&p->mu);
}

void pool_nap(pgq_pool *p, int64_t ms)
{
    struct timespec ts;
    pool_deadline(&ts, ms);
    pthread_mutex_lock(&p->mu);
    while (!atomic_load(&p->stopping))
        if (pthread_cond_timedwait(&p->state_cv, &p->mu, &ts) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&p->mu);
}

/* Sleep until woken (a token) or the pool stops. */
void pool_wait_for_work(pgq_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->idle++;
    while (p->wakeups == 0 && !atomic_load(&p->stopping))
        pthread_cond_wait(&p->wake_cv, &p->mu);
    if (p->wakeups > 0)
        p->wakeups--;
    p->idle--;
    pthread_mutex_unlock(&p->mu);
}

int pool_connect_retry(pgq_pool *p, pgq_conn **conn, const char *who)
{
    return pool_connect_retry_to(p, p->url, p->cfg->pooler, conn, who);
}

int pool_connect_retry_to(pgq_pool *p, const char *url, pgq_pooler pooler, pgq_conn **conn,
                          const char *who)
{
    char err[512];
    int64_t backoff = 100;
    /* A broken connection that comes back at the first try is still an
     * event worth its line: otherwise an idle worker's lost connection
     * would leave no trace in the log at all. */
    bool again = *conn != NULL;
    for (int tries = 0;; tries++) {
        if (*conn ? pgq_reconnect(*conn, err, sizeof err) == 0
                  : pgq_connect_via(url, pooler, conn, err, sizeof err) == 0) {
            /* keep_done = 0: a done job is deleted by its completion. */
            pgq_conn_set_keep_done(*conn, p->cfg->keep_done_ms > 0);
            if (again)   /* a connection we had came back (not a first connect) */
                atomic_fetch_add(&p->reconnects, 1);
            if (tries)
                pool_log(PGQ_LOG_INFO, who, "reconnected after %d attempt%s", tries,
                         tries == 1 ? "" : "s");
            else if (again)
                pool_log(PGQ_LOG_INFO, who, "connection lost; reconnected");
            return 0;
        }
        if (tries == 0)
            pool_log(PGQ_LOG_WARN, who, "connection lost, reconnecting: %s", err);
        if (atomic_load(&p->stopping))
            return -1;
        pool_nap(p, backoff);
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    }
}
