/* The Prometheus text format (exposition format 0.0.4) of what libpgq
 * knows about the fleet: the gauges of `pgq stats --prometheus` and of a
 * pool's metrics endpoint (pool/metrics.c), written by this one module so
 * that the two can never name or escape them differently. */
#include "pgq.h"

#include <inttypes.h>
#include <stdio.h>

void pgq_prom_label(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', f);
        if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

void pgq_prom_write_stats(FILE *f, const pgq_queue_stats *s, size_t n)
{
    static const char *const names[] = { "ready", "scheduled", "retrying", "running", "dead",
                                         "cancelled", "done", "waiting" };
    fputs("# HELP pgq_jobs Jobs in pgq.jobs by queue and state (ready: due now; scheduled: "
          "future, never tried; retrying: future, after a failure; waiting: for other jobs).\n"
          "# TYPE pgq_jobs gauge\n", f);
    for (size_t i = 0; i < n; i++) {
        const int64_t v[] = { s[i].ready, s[i].scheduled, s[i].retrying, s[i].running,
                              s[i].dead, s[i].cancelled, s[i].done, s[i].waiting };
        for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
            fputs("pgq_jobs{queue=", f);
            pgq_prom_label(f, s[i].queue);
            fprintf(f, ",state=\"%s\"} %" PRId64 "\n", names[k], v[k]);
        }
    }
    fputs("# HELP pgq_jobs_done_last_hour Jobs of the queue done in the last hour (still "
          "retained).\n# TYPE pgq_jobs_done_last_hour gauge\n", f);
    for (size_t i = 0; i < n; i++) {
        fputs("pgq_jobs_done_last_hour{queue=", f);
        pgq_prom_label(f, s[i].queue);
        fprintf(f, "} %" PRId64 "\n", s[i].done_last_hour);
    }
    fputs("# HELP pgq_queue_oldest_ready_seconds How long the queue's longest-waiting due job "
          "has been due (0 when none is).\n# TYPE pgq_queue_oldest_ready_seconds gauge\n", f);
    for (size_t i = 0; i < n; i++) {
        fputs("pgq_queue_oldest_ready_seconds{queue=", f);
        pgq_prom_label(f, s[i].queue);
        fprintf(f, "} %.3f\n", s[i].oldest_ready_s < 0 ? 0.0 : s[i].oldest_ready_s);
    }
    fputs("# HELP pgq_queue_paused 1 when the queue is paused (pgq pause): no pool claims "
          "from it.\n# TYPE pgq_queue_paused gauge\n", f);
    for (size_t i = 0; i < n; i++) {
        fputs("pgq_queue_paused{queue=", f);
        pgq_prom_label(f, s[i].queue);
        fprintf(f, "} %d\n", s[i].paused ? 1 : 0);
    }
    /* pgq_stats reads capped ranges: say which counts are exact */
    fputs("# HELP pgq_jobs_exact 1 when pgq_jobs of the queue and state is an exact count, 0 "
          "when it is an estimate or a lower bound (above the stats cap).\n"
          "# TYPE pgq_jobs_exact gauge\n", f);
    for (size_t i = 0; i < n; i++) {
        const pgq_count_kind k[] = { s[i].ready_is, s[i].future_is, s[i].future_is,
                                     PGQ_COUNT_EXACT, s[i].dead_is, s[i].cancelled_is,
                                     s[i].done_is };
        for (size_t j = 0; j < sizeof k / sizeof k[0]; j++) {
            fputs("pgq_jobs_exact{queue=", f);
            pgq_prom_label(f, s[i].queue);
            fprintf(f, ",state=\"%s\"} %d\n", names[j], k[j] == PGQ_COUNT_EXACT);
        }
    }
    fputs("# HELP pgq_queue_pools Live pools (a heartbeat within 60 s) that claim from the "
          "queue.\n# TYPE pgq_queue_pools gauge\n", f);
    for (size_t i = 0; i < n; i++) {
        fputs("pgq_queue_pools{queue=", f);
        pgq_prom_label(f, s[i].queue);
        fprintf(f, "} %d\n", s[i].pools);
    }
    fputs("# HELP pgq_queue_unserved 1 when the queue has due jobs, is not paused and no live "
          "pool claims from it.\n# TYPE pgq_queue_unserved gauge\n", f);
    for (size_t i = 0; i < n; i++) {
        fputs("pgq_queue_unserved{queue=", f);
        pgq_prom_label(f, s[i].queue);
        fprintf(f, "} %d\n", pgq_queue_unserved(&s[i]) ? 1 : 0);
    }
    fputs("# HELP pgq_queue_done_per_second Jobs of the queue done per second over the last "
          "five minutes (or the part of them the newest jobs cover).\n"
          "# TYPE pgq_queue_done_per_second gauge\n", f);
    for (size_t i = 0; i < n; i++) {
        fputs("pgq_queue_done_per_second{queue=", f);
        pgq_prom_label(f, s[i].queue);
        fprintf(f, "} %.3f\n", s[i].done_5m_window_s > 0
                                   ? (double)s[i].done_5m / s[i].done_5m_window_s : 0.0);
    }
    fputs("# HELP pgq_queue_failed_per_second Failed attempts (failed, lease expired) of the "
          "queue per second over the last five minutes.\n"
          "# TYPE pgq_queue_failed_per_second gauge\n", f);
    for (size_t i = 0; i < n; i++) {
        fputs("pgq_queue_failed_per_second{queue=", f);
        pgq_prom_label(f, s[i].queue);
        fprintf(f, "} %.3f\n", s[i].failed_5m_window_s > 0
                                   ? (double)s[i].failed_5m / s[i].failed_5m_window_s : 0.0);
    }
}

void pgq_prom_write_build_info(FILE *f)
{
    fprintf(f, "# HELP pgq_build_info The pgq that wrote these figures.\n"
               "# TYPE pgq_build_info gauge\npgq_build_info{version=\"%s\",schema=\"%d\"} 1\n",
            PGQ_VERSION, pgq_schema_version());
}
