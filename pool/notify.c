/* Telling systemd how the pool is doing (sd_notify(3)), for pgq-pool as a
 * Type=notify service: READY=1 once pgq_pool_start has checked the schema,
 * registered the job types and started every thread; STOPPING=1 when a
 * graceful stop begins; WATCHDOG=1 from the heartbeat loop when the unit
 * has WatchdogSec= (systemd then passes WATCHDOG_USEC and WATCHDOG_PID), so
 * a pool whose heartbeat thread hangs is restarted instead of staying up
 * doing nothing while its leases expire under its running jobs.
 *
 * Off unless the program asks (pgq_pool_set_notify): an embedding program
 * decides its own readiness. Built for libsystemd when pkg-config finds its
 * headers (the Makefile defines PGQ_HAVE_SYSTEMD for this file alone);
 * without them these functions do nothing and `make service` writes a
 * Type=simple unit, so that systemd never waits for a READY=1 that cannot
 * come. This is the one place that knows.
 *
 * libsystemd is loaded (dlopen) only when systemd asked for notifications
 * (NOTIFY_SOCKET in the environment), not linked: linked, it and what it
 * pulls in (libgcrypt, liblz4, libzstd, liblzma, libcap) were ~1 MB of an
 * idle pool's RSS, whose target is 10 MB (bench/README.md, footprint), in
 * every process that embeds the pool, under systemd or not. */
#include "pool_int.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

#ifdef PGQ_HAVE_SYSTEMD
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>

/* The two functions used, with the header's own types; NULL when not
 * under systemd or libsystemd could not be loaded. */
static struct {
    pthread_once_t once;
    __typeof__(sd_notify) *notify;
    __typeof__(sd_watchdog_enabled) *watchdog;
} sd = { .once = PTHREAD_ONCE_INIT };

static void sd_load(void)
{
    if (!getenv("NOTIFY_SOCKET"))
        return;   /* no service manager listens: sd_notify would do nothing */
    void *h = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        pool_log(PGQ_LOG_WARN, "pool", "systemd asked for notifications (NOTIFY_SOCKET) but "
                 "libsystemd.so.0 could not be loaded: %s; systemd is not told how the pool is",
                 dlerror());
        return;
    }
    /* POSIX guarantees dlsym's object pointer converts to a function
     * pointer; the copy keeps -Wpedantic quiet about it. */
    void *n = dlsym(h, "sd_notify"), *w = dlsym(h, "sd_watchdog_enabled");
    if (!n || !w) {
        pool_log(PGQ_LOG_WARN, "pool", "libsystemd.so.0 has no sd_notify or "
                 "sd_watchdog_enabled; systemd is not told how the pool is");
        return;   /* the handle stays open: harmless, and never loaded twice */
    }
    memcpy(&sd.notify, &n, sizeof n);
    memcpy(&sd.watchdog, &w, sizeof w);
}
#endif

/* Send one state line; a failure is logged, never fatal (the service
 * manager's problem is not a reason to stop running jobs). */
static void notify_send(const pgq_pool *p, const char *state)
{
    if (!p->notify)
        return;
#ifdef PGQ_HAVE_SYSTEMD
    pthread_once(&sd.once, sd_load);
    if (!sd.notify)
        return;
    int r = sd.notify(0, state);
    if (r < 0)
        pool_log(PGQ_LOG_WARN, "pool", "sd_notify: %s", strerror(-r));
#else
    (void)state;
#endif
}

int64_t pool_notify_watchdog_ms(const pgq_pool *p)
{
#ifdef PGQ_HAVE_SYSTEMD
    uint64_t usec = 0;
    if (!p->notify)
        return 0;
    pthread_once(&sd.once, sd_load);
    if (sd.watchdog && sd.watchdog(0, &usec) > 0 && usec >= 1000)
        return (int64_t)(usec / 1000);
#else
    (void)p;
#endif
    return 0;
}

void pool_notify_ready(const pgq_pool *p)
{
    char state[600];
    snprintf(state, sizeof state, "READY=1\nSTATUS=%d workers, %zu job types", p->nslots,
             p->cfg->ntypes);
    notify_send(p, state);
}

void pool_notify_stopping(const pgq_pool *p)
{
    notify_send(p, "STOPPING=1\nSTATUS=draining in-flight jobs");
}

void pool_notify_watchdog(const pgq_pool *p)
{
    notify_send(p, "WATCHDOG=1");
}

void pgq_pool_set_notify(pgq_pool *p, bool on)
{
    p->notify = on;
}
