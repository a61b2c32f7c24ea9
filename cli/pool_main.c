/* pgq-pool: the worker-pool daemon, a thin front end over the pool in
 * libpgq. Signals are handled here and only here: every signal of interest
 * is blocked before any thread starts (threads inherit the mask) and the
 * main thread takes them with sigwait.
 *
 *   SIGTERM, SIGINT  first: graceful stop (drain until shutdown_timeout,
 *                    release the rest, exit 0); second: exit at once
 *   SIGHUP           reload the [job ...] sections
 *
 * The drain runs in a helper thread, which says it is done with SIGUSR1.
 *
 * With --tui the main thread runs the dashboard instead (the same one as
 * `pgq top`), a signal thread takes the signals, and the pool's log goes to
 * a file (--log, default $TMPDIR/pgq-pool-PID.log) so it cannot scribble
 * over the screen. Quitting the dashboard stops the pool gracefully. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dbarg.h"
#include "log.h"
#include "pgq_pool.h"
#include "top.h"

static const char usage[] =
    "usage: pgq-pool -c pool.ini [--db URL | --db-file FILE] [--check] [-v | -q]\n\n"
    "Run the worker pool described by pool.ini: workers claim jobs from the\n"
    "configured queues and run each job type's handler.\n\n"
    "  -c, --config FILE  the pool.ini (required)\n"
    "      --db URL       database (beats [database] url and $DATABASE_URL)\n"
    "      --db-file FILE the database URL read from FILE (keeps a password out of ps)\n"
    "      --check        validate FILE and every handler, then exit (0 = ok)\n"
    "      --tui          show the dashboard (as `pgq top`); q stops the pool\n"
    "      --log FILE     where the log goes with --tui (default $TMPDIR/pgq-pool-PID.log)\n"
    "  -v, --verbose      log every claim too (debug)\n"
    "  -q, --quiet        log warnings and errors only\n"
    "      --version      print the version\n\n"
    "Signals: SIGTERM/SIGINT drain in-flight jobs up to shutdown_timeout, release\n"
    "the rest and exit 0 (a second one exits at once); SIGHUP reloads the job types.\n";

struct waiter {
    pgq_pool *pool;
    int rc;
};

/* SIGHUP, whichever thread took it: reload the job types, say how it went. */
static void reload(pgq_pool *pool)
{
    char err[1024];
    if (pgq_pool_reload(pool, err, sizeof err) < 0)
        pool_log(PGQ_LOG_ERROR, NULL, "reload failed, keeping the old job types: %s", err);
    else
        pool_log(*err ? PGQ_LOG_WARN : PGQ_LOG_INFO, NULL, "reloaded job types%s%s",
                 *err ? ": " : "", err);
}

/* --tui: the signal thread. The first SIGTERM/SIGINT ends the dashboard
 * (which then stops the pool), a second exits at once; SIGHUP reloads. */
struct tui_signals {
    pgq_pool *pool;
    sigset_t set;
    atomic_bool stop;
};

static void *tui_signal_thread(void *arg)
{
    struct tui_signals *t = arg;
    for (;;) {
        int sig;
        if (sigwait(&t->set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            reload(t->pool);
        } else if (sig == SIGTERM || sig == SIGINT) {
            if (atomic_exchange(&t->stop, true))
                _exit(1);
            pgq_pool_stop(t->pool);
        }
    }
    return NULL;
}

static int run_tui(pgq_pool *pool, const char *url, const char *logpath, sigset_t *set)
{
    char err[1024];
    struct tui_signals t = { .pool = pool, .set = *set };
    pthread_t th;
    atomic_init(&t.stop, false);
    sigdelset(&t.set, SIGUSR1);
    if (pthread_create(&th, NULL, tui_signal_thread, &t) != 0) {
        fprintf(stdout, "pgq-pool: cannot start the signal thread\n");
        return 1;
    }
    pthread_detach(th);
    struct top_opts o = TOP_OPTS_INIT;
    o.who = "pgq-pool --tui";
    o.handle_signals = false;
    o.stop = &t.stop;
    int rc = pgq_top_run(url, &o, err, sizeof err);
    if (rc < 0)
        printf("pgq-pool: dashboard: %s\n", err);
    printf("pgq-pool: stopping: draining in-flight jobs (Ctrl-C again to exit at once); "
           "log in %s\n", logpath);
    pgq_pool_stop(pool);
    int wrc = pgq_pool_wait(pool);
    return rc < 0 || wrc < 0 ? 1 : 0;
}

static void *drain(void *arg)
{
    struct waiter *w = arg;
    w->rc = pgq_pool_wait(w->pool);
    kill(getpid(), SIGUSR1);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *config = NULL, *db = NULL, *logpath = NULL;
    bool check = false, tui = false;
    char logbuf[4096];
    char err[1024];

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("pgq-pool %s\n", PGQ_VERSION);
            return 0;
        } else if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && i + 1 < argc) {
            config = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            config = a + 9;
        } else if (strcmp(a, "--db") == 0 && i + 1 < argc) {
            db = cli_db_arg("pgq-pool", argv[++i]);
        } else if (strncmp(a, "--db=", 5) == 0) {
            db = cli_db_arg("pgq-pool", argv[i] + 5);
        } else if (strcmp(a, "--db-file") == 0 && i + 1 < argc) {
            if (!(db = cli_db_file("pgq-pool", argv[++i])))
                return 1;
        } else if (strncmp(a, "--db-file=", 10) == 0) {
            if (!(db = cli_db_file("pgq-pool", a + 10)))
                return 1;
        } else if (strcmp(a, "--check") == 0) {
            check = true;
        } else if (strcmp(a, "--tui") == 0) {
            tui = true;
        } else if (strcmp(a, "--log") == 0 && i + 1 < argc) {
            logpath = argv[++i];
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            pgq_pool_set_log_level(PGQ_LOG_DEBUG);
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            pgq_pool_set_log_level(PGQ_LOG_WARN);
        } else {
            fprintf(stderr, "pgq-pool: unknown or incomplete argument \"%s\" (see --help)\n", a);
            return 2;
        }
    }
    if (!config) {
        fprintf(stderr, "pgq-pool: -c pool.ini is required (see --help)\n");
        return 2;
    }

    pgq_cfg *cfg;
    pgq_pool *pool;
    if (pgq_cfg_load(config, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "pgq-pool: %s\n", err);
        return 1;
    }
    size_t ntypes = cfg->ntypes;
    int workers = cfg->workers;
    if (check && !db && !cfg->db_url && !getenv("DATABASE_URL"))
        db = "unused";   /* --check needs no database */
    if (pgq_pool_new(cfg, db, &pool, err, sizeof err) < 0) {
        pgq_cfg_free(cfg);
        fprintf(stderr, "pgq-pool: %s\n", err);
        return 1;
    }
    if (check) {
        int rc = pgq_pool_check(pool, err, sizeof err);
        if (rc < 0)
            fprintf(stderr, "pgq-pool: %s\n", err);
        else
            printf("%s: ok (%zu job type%s, %d workers)\n", config, ntypes,
                   ntypes == 1 ? "" : "s", workers);
        pgq_pool_free(pool);
        return rc < 0 ? 1 : 0;
    }
    if (tui) {
        if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
            fprintf(stderr, "pgq-pool: --tui needs a terminal\n");
            return 2;
        }
        if (!logpath) {
            const char *tmp = getenv("TMPDIR");
            snprintf(logbuf, sizeof logbuf, "%s/pgq-pool-%d.log", tmp && *tmp ? tmp : "/tmp",
                     (int)getpid());
            logpath = logbuf;
        }
        if (!freopen(logpath, "a", stderr)) {
            fprintf(stdout, "pgq-pool: --log %s: %s\n", logpath, strerror(errno));
            return 1;
        }
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);   /* a closed pipe is an error return, not a death */

    pgq_pool_set_notify(pool, true);   /* READY/STOPPING/WATCHDOG for a Type=notify unit */
    if (pgq_pool_start(pool, err, sizeof err) < 0) {
        pool_log(PGQ_LOG_ERROR, NULL, "cannot start: %s", err);
        if (tui)   /* the log is a file now: say it where the operator looks */
            printf("pgq-pool: cannot start: %s\n", err);
        pgq_pool_stop(pool);
        (void)!pgq_pool_wait(pool);
        pgq_pool_free(pool);
        return 1;
    }

    if (tui) {
        int rc = run_tui(pool, pgq_pool_db_url(pool), logpath, &set);
        pgq_pool_free(pool);
        return rc;
    }

    struct waiter w = { pool, 0 };
    pthread_t drainer;
    bool stopping = false;
    for (;;) {
        int sig;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGUSR1 && stopping)
            break;
        if (sig == SIGHUP) {
            reload(pool);
            continue;
        }
        if (sig != SIGTERM && sig != SIGINT)
            continue;
        if (stopping) {
            pool_log(PGQ_LOG_WARN, NULL, "second %s: exiting now; leases will expire and be "
                     "reclaimed", strsignal(sig));
            _exit(1);
        }
        stopping = true;
        pool_log(PGQ_LOG_INFO, NULL, "%s: shutting down (again to exit at once)", strsignal(sig));
        pgq_pool_stop(pool);
        if (pthread_create(&drainer, NULL, drain, &w) != 0) {
            w.rc = pgq_pool_wait(pool);
            break;
        }
    }
    if (stopping)
        pthread_join(drainer, NULL);
    pgq_pool_free(pool);
    return w.rc == 0 ? 0 : 1;
}
