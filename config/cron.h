/* Internal to libpgq: cron schedules of periodic jobs ([cron NAME]
 * sections): parsing and the computation of their ticks (cron.c). A
 * parsed schedule is immutable, so any number of threads may use one. */
#ifndef PGQ_CRON_H
#define PGQ_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tz.h"

typedef struct pgq_cron pgq_cron;

/* Parse a schedule: five fields ("*\/15 9-17 * * mon-fri"), an @ form
 * (@hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually) or
 * "@every DURATION" (1s..366d; ticks at whole multiples of DURATION since
 * 1970-01-01 UTC, so every pool agrees on them). 0 with *out owned by the
 * caller (pgq_cron_free), or -1 with a message naming the field at fault
 * ("hour field \"25\": 25 is out of range (0-23)"). The zone is kept by
 * pointer and must outlive the schedule (NULL: UTC); @every ignores it. */
int pgq_cron_parse(const char *spec, const pgq_tz *zone, pgq_cron **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

void pgq_cron_free(pgq_cron *c);

/* The first tick strictly after the instant `after` (milliseconds since the
 * epoch), or -1 when there is none within 30 years. */
int64_t pgq_cron_next(const pgq_cron *c, int64_t after_ms);

/* The last tick at or before `at` (milliseconds), or -1 when there is none
 * within 30 years before it. */
int64_t pgq_cron_prev(const pgq_cron *c, int64_t at_ms);

#endif
