/* Embedding libpgq: a producer and an in-process worker pool in one C
 * program — the C counterpart of pg-node-queue's
 *
 *     const worker = new Worker(queue, {
 *       "send-email": async (payload, ctx) => {
 *         await ctx.runOnce("email", async () => mailer.send(payload));
 *       }
 *     });
 *
 * Usage: embed-demo POOL.INI N OUTBOX
 * Registers the callback "send_email" (pool.ini: `handler = callback
 * send_email`), adds N send-email jobs, runs the pool until all of them are
 * finished, and stops it gracefully. The "mail" is a line appended to
 * OUTBOX, under run_once, so it is written at most once per job.
 *
 * Producer and handler use the typed job map of examples/embed.ini
 * (embed_jobs.h, written by `pgq types header`; make regenerates it):
 * struct send_email has a member per key of the contract, so naming a key
 * the contract lacks (.subjet) does not compile. POOL.INI must declare the
 * same contract for send-email (the tests copy embed.ini's section). The
 * pool's events (pgq_pool_on_event) are counted per kind and printed at
 * the end: "embed-demo: outcomes: started 25, done 25, ...". */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pgq.h"
#include "pgq_pool.h"
#include "embed_jobs.h"

struct mail {
    const char *outbox;
    const pgq_job *job;
    const struct send_email *email;   /* the job's payload, typed */
};

/* The side effect: runs at most once per job, whatever happens. */
static int deliver(void *arg, char *err, size_t errlen)
{
    struct mail *m = arg;
    FILE *f = fopen(m->outbox, "a");
    if (!f) {
        snprintf(err, errlen, "cannot open %s", m->outbox);
        return -1;
    }
    fprintf(f, "job %lld: to %s, subject %s\n", (long long)m->job->id, m->email->to,
            m->email->subject);
    return fclose(f) == 0 ? 0 : -1;
}

/* The handler: 0 = done, -1 = failed (retried with backoff). */
static int send_email(pgq_ctx *ctx, void *arg, char *err, size_t errlen)
{
    struct send_email email;
    /* A payload that breaks the contract (it changed since the job was
     * added) fails the attempt, naming the key. */
    if (send_email_from_job(pgq_ctx_job(ctx), &email, err, errlen) < 0)
        return -1;
    struct mail m = { arg, pgq_ctx_job(ctx), &email };
    int rc;
    switch (pgq_ctx_run_once(ctx, "email", deliver, &m, err, errlen)) {
    case PGQ_ONCE_RAN:
    case PGQ_ONCE_SKIPPED:
        rc = 0;
        break;
    case PGQ_ONCE_IN_DOUBT:
        /* A worker died while sending: we cannot know if it went out. Do
         * not send twice; an operator sees it in `pgq show`. */
        rc = 0;
        break;
    default:
        rc = -1;
    }
    send_email_clear(&email);
    return rc;
}

/* Events per kind. The callback runs on the pool's threads, several at
 * once, after each outcome is committed: it only counts (atomics, no lock,
 * nothing that blocks). */
static atomic_long outcomes[PGQ_EVENT__COUNT];

static void count_event(const pgq_event *ev, void *arg)
{
    (void)arg;
    if ((unsigned)ev->kind < PGQ_EVENT__COUNT)
        atomic_fetch_add(&outcomes[ev->kind], 1);
}

static int64_t unfinished(pgq_conn *c)
{
    char err[256];
    pgq_queue_stats *s;
    size_t n;
    int64_t left = 0;
    if (pgq_stats(c, &s, &n, err, sizeof err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        left += s[i].ready + s[i].scheduled + s[i].retrying + s[i].running;
    free(s);
    return left;
}

int main(int argc, char **argv)
{
    char err[1024];
    pgq_cfg *cfg;
    pgq_pool *pool;
    pgq_conn *c;

    if (argc != 4) {
        fprintf(stderr, "usage: embed-demo POOL.INI N OUTBOX\n");
        return 2;
    }
    int n = atoi(argv[2]);
    if (pgq_cfg_load(argv[1], &cfg, err, sizeof err) < 0 ||
        pgq_pool_new(cfg, NULL, &pool, err, sizeof err) < 0 ||
        pgq_pool_on(pool, "send_email", send_email, argv[3], err, sizeof err) < 0 ||
        pgq_pool_on_event(pool, count_event, NULL, err, sizeof err) < 0) {
        fprintf(stderr, "embed-demo: %s\n", err);
        return 1;
    }
    if (pgq_connect(getenv("DATABASE_URL"), &c, err, sizeof err) < 0 ||
        pgq_migrate(c, NULL, err, sizeof err) < 0) {
        fprintf(stderr, "embed-demo: %s\n", err);
        return 1;
    }

    /* Threads inherit the signal mask: block before the pool starts them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (pgq_pool_start(pool, err, sizeof err) < 0) {   /* also registers the job types */
        fprintf(stderr, "embed-demo: %s\n", err);
        return 1;
    }

    for (int i = 0; i < n; i++) {
        char to[64], key[64];
        pgq_add_opts o = PGQ_ADD_OPTS_INIT;
        pgq_add_result r;
        snprintf(to, sizeof to, "user%d@example.com", i);
        snprintf(key, sizeof key, "welcome:%d", i);
        o.idempotency_key = key;
        /* The payload is built from the struct, with JSON escaping. */
        if (pgq_add_send_email(c, &(struct send_email){ .to = to, .subject = "Hi \"there\"" }, &o,
                               &r, err, sizeof err) < 0) {
            fprintf(stderr, "embed-demo: %s\n", err);
            break;
        }
    }

    int64_t left;
    while ((left = unfinished(c)) > 0)
        nanosleep(&(struct timespec){ 0, 50 * 1000 * 1000 }, NULL);
    pgq_pool_stop(pool);
    int rc = pgq_pool_wait(pool);
    pgq_pool_free(pool);
    pgq_disconnect(c);
    printf("embed-demo: %s\n", left == 0 && rc == 0 ? "all jobs finished" : "error");
    /* pgq_pool_wait returned: every outcome has been reported. */
    printf("embed-demo: outcomes:");
    for (int k = 0; k < PGQ_EVENT__COUNT; k++)
        printf("%s %s %ld", k ? "," : "", pgq_event_kind_name(k), atomic_load(&outcomes[k]));
    printf("\n");
    return left == 0 && rc == 0 ? 0 : 1;
}
