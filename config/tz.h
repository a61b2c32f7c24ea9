/* Internal to libpgq: IANA time zones read from the system's TZif files,
 * for periodic jobs (cron.c). A zone is immutable once loaded, so any
 * number of threads may use one. */
#ifndef PGQ_TZ_H
#define PGQ_TZ_H

#include <stddef.h>
#include <stdint.h>

typedef struct pgq_tz pgq_tz;

/* Load the zone called name ("Europe/Berlin", "UTC") from $TZDIR or
 * /usr/share/zoneinfo. 0 with *out owned by the caller (tz_free), or -1
 * with a message naming the zone ("unknown time zone \"Mars/Base\""). */
int tz_load(const char *name, pgq_tz **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Free a zone; accepts NULL. */
void tz_free(pgq_tz *z);

/* The zone's name as given to tz_load. */
const char *tz_name(const pgq_tz *z);

/* The zone's offset from UTC (seconds east) at the instant t (seconds
 * since the epoch); UTC for a NULL zone. */
int32_t tz_offset(const pgq_tz *z, int64_t t);

/* Civil (proleptic Gregorian) calendar arithmetic, shared with cron.c:
 * days since 1970-01-01 of a date (m 1..12, d 1..31) and back; the
 * weekday (0 = Sunday) of a day number; days in a month. */
int64_t tz_days_from_civil(int64_t y, int m, int d);
void tz_civil_from_days(int64_t days, int64_t *y, int *m, int *d);
int tz_weekday(int64_t days);
int tz_days_in_month(int64_t y, int m);

#endif
