/* Telling systemd how the pool is doing (sd_notify(3)), for pgq-pool as a
 * Type=notify service: READY=1 once pgq_pool_start has checked the schema,
 * registered the job types and started every thread; STOPPING=1 when a
 * graceful stop begins; WATCHDOG=1 from the heartbeat loop when the unit
 * has WatchdogSec= (systemd then passes WATCHDOG_USEC and WATCHDOG_PID), so
 * a pool whose heartbeat thread hangs is restarted instead of staying up
 * doing nothing while its leases expire under its running jobs.
 *
 * Off unless the program asks (pgq_pool_set_notify): an embedding program
 * decides its own readiness. Built with libsystemd when pkg-config finds it
 * (the Makefile defines PGQ_HAVE_SYSTEMD for this file alone); without it
 * these functions do nothing and `make service` writes a Type=simple unit,
 * so that systemd never waits for a READY=1 that cannot come. This is the
 * one place that knows. */
#include "pool_int.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

#ifdef PGQ_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

/* Send one state line; a failure is logged, never fatal (the service
 * manager's problem is not a reason to stop running jobs). */
static void notify_send(const pgq_pool *p, const char *state)
{
    if (!p->notify)
        return;
#ifdef PGQ_HAVE_SYSTEMD
    int r = sd_notify(0, state);
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
    if (p->notify && sd_watchdog_enabled(0, &usec) > 0 && usec >= 1000)
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
