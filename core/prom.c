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
}

void pgq_prom_write_build_info(FILE *f)
{
    fprintf(f, "# HELP pgq_build_info The pgq that wrote these figures.\n"
               "# TYPE pgq_build_info gauge\npgq_build_info{version=\"%s\",schema=\"%d\"} 1\n",
            PGQ_VERSION, pgq_schema_version());
}
