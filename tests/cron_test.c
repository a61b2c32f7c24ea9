/*
 * cron_test.c -- unit tests for config/cron.c (schedules of periodic jobs)
 * and config/tz.c (time zones): one table of schedules with the ticks they
 * must give after an instant, in UTC and in Europe/Berlin across both of
 * 2025's DST changes (30 March 01:00 UTC, clocks 02:00 -> 03:00; 26
 * October 01:00 UTC, clocks 03:00 -> 02:00), and a table of bad schedules
 * with their exact messages.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../config/cron.h"
#include "../config/tz.h"

Suite *cron_suite(void);

/* "2025-03-30T01:00:00Z" -> milliseconds. */
static int64_t at(const char *iso)
{
    int y, mo, d, h, mi, s;
    ck_assert_int_eq(sscanf(iso, "%d-%d-%dT%d:%d:%dZ", &y, &mo, &d, &h, &mi, &s), 6);
    return (tz_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s) * 1000;
}

static const char *iso(int64_t ms, char *buf, size_t len)
{
    int64_t y;
    int m, d;
    int64_t s = ms / 1000, days = s / 86400 - (s % 86400 < 0);
    int64_t rem = s - days * 86400;

    if (ms < 0)
        return "none";
    tz_civil_from_days(days, &y, &m, &d);
    snprintf(buf, len, "%04lld-%02d-%02dT%02d:%02d:%02dZ", (long long)y, m, d, (int)(rem / 3600),
             (int)(rem % 3600 / 60), (int)(rem % 60));
    return buf;
}

static const struct tick_case {
    const char *zone;           /* NULL: UTC */
    const char *spec;
    const char *after;
    const char *want[5];        /* the next ticks, in order */
} tick_cases[] = {
    /* steps, ranges, lists, names */
    { NULL, "*/15 * * * *", "2025-01-01T10:07:00Z",
      { "2025-01-01T10:15:00Z", "2025-01-01T10:30:00Z", "2025-01-01T10:45:00Z", "2025-01-01T11:00:00Z" } },
    { NULL, "5/20 * * * *", "2025-01-01T10:00:00Z",
      { "2025-01-01T10:05:00Z", "2025-01-01T10:25:00Z", "2025-01-01T10:45:00Z", "2025-01-01T11:05:00Z" } },
    { NULL, "0 9-17/4 * * *", "2025-01-01T00:00:00Z",
      { "2025-01-01T09:00:00Z", "2025-01-01T13:00:00Z", "2025-01-01T17:00:00Z", "2025-01-02T09:00:00Z" } },
    { NULL, "30 8 * * mon-fri", "2025-01-03T09:00:00Z",   /* a Friday, after 08:30 */
      { "2025-01-06T08:30:00Z", "2025-01-07T08:30:00Z" } },
    { NULL, "0 0 * * fri-sun", "2025-01-01T12:00:00Z",    /* a range through Sunday */
      { "2025-01-03T00:00:00Z", "2025-01-04T00:00:00Z", "2025-01-05T00:00:00Z", "2025-01-10T00:00:00Z" } },
    { NULL, "0 12 * * 7", "2025-01-01T00:00:00Z", { "2025-01-05T12:00:00Z", "2025-01-12T12:00:00Z" } },
    { NULL, "15,45 6 1 JAN,Jul *", "2025-01-01T06:20:00Z",
      { "2025-01-01T06:45:00Z", "2025-07-01T06:15:00Z", "2025-07-01T06:45:00Z", "2026-01-01T06:15:00Z" } },
    /* day of month OR day of week when both are restricted */
    { NULL, "0 0 10 * fri", "2025-06-01T00:00:00Z",   /* the 10th is a Tuesday */
      { "2025-06-06T00:00:00Z", "2025-06-10T00:00:00Z", "2025-06-13T00:00:00Z", "2025-06-20T00:00:00Z" } },
    { NULL, "0 0 31 * *", "2025-01-31T00:00:00Z", { "2025-03-31T00:00:00Z", "2025-05-31T00:00:00Z" } },
    { NULL, "0 0 29 2 *", "2025-01-01T00:00:00Z", { "2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z" } },
    /* @ forms */
    { NULL, "@hourly", "2025-01-01T10:00:00Z", { "2025-01-01T11:00:00Z", "2025-01-01T12:00:00Z" } },
    { NULL, "@daily", "2025-01-01T10:00:00Z", { "2025-01-02T00:00:00Z", "2025-01-03T00:00:00Z" } },
    { NULL, "@weekly", "2025-01-01T10:00:00Z", { "2025-01-05T00:00:00Z", "2025-01-12T00:00:00Z" } },
    { NULL, "@monthly", "2025-01-31T10:00:00Z", { "2025-02-01T00:00:00Z", "2025-03-01T00:00:00Z" } },
    { NULL, "@yearly", "2025-01-01T00:00:00Z", { "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z" } },
    { NULL, "@every 90s", "2025-01-01T00:00:10Z",
      { "2025-01-01T00:01:30Z", "2025-01-01T00:03:00Z", "2025-01-01T00:04:30Z" } },
    { "Europe/Berlin", "@every 1h", "2025-03-30T00:30:00Z",   /* elapsed time: no zone */
      { "2025-03-30T01:00:00Z", "2025-03-30T02:00:00Z" } },
    /* a zone: 09:00 local is 08:00 UTC in winter, 07:00 in summer */
    { "Europe/Berlin", "0 9 * * *", "2025-03-28T12:00:00Z",
      { "2025-03-29T08:00:00Z", "2025-03-30T07:00:00Z", "2025-03-31T07:00:00Z" } },
    /* spring forward: 02:30 does not exist on 30 March; a fixed time runs at the change */
    { "Europe/Berlin", "30 2 * * *", "2025-03-28T12:00:00Z",
      { "2025-03-29T01:30:00Z", "2025-03-30T01:00:00Z", "2025-03-31T00:30:00Z" } },
    /* ... and elapsed-time schedules skip the missing hour */
    { "Europe/Berlin", "0,30 * * * *", "2025-03-30T00:00:00Z",   /* 01:00 CET */
      { "2025-03-30T00:30:00Z", "2025-03-30T01:00:00Z", "2025-03-30T01:30:00Z" } },
    /* fall back: 02:00-02:59 happens twice on 26 October; a fixed time runs at the first pass */
    { "Europe/Berlin", "30 2 * * *", "2025-10-25T12:00:00Z",
      { "2025-10-26T00:30:00Z", "2025-10-27T01:30:00Z" } },
    /* ... and elapsed-time schedules run at both passes */
    { "Europe/Berlin", "*/30 * * * *", "2025-10-26T00:00:00Z",   /* 02:00 CEST */
      { "2025-10-26T00:30:00Z", "2025-10-26T01:00:00Z", "2025-10-26T01:30:00Z", "2025-10-26T02:00:00Z" } },
    { "Europe/Berlin", "@hourly", "2025-10-25T23:30:00Z",
      { "2025-10-26T00:00:00Z", "2025-10-26T01:00:00Z", "2025-10-26T02:00:00Z" } },
    /* after 2037, the end of the zone file's table: the footer's rule */
    { "Europe/Berlin", "0 12 * * *", "2040-03-24T00:00:00Z",   /* DST from 25 March 2040 */
      { "2040-03-24T11:00:00Z", "2040-03-25T10:00:00Z" } },
    /* a southern zone: Sydney's summer spans the new year */
    { "Australia/Sydney", "0 12 * * *", "2025-01-10T00:00:00Z",
      { "2025-01-10T01:00:00Z", "2025-01-11T01:00:00Z" } },
    { "Australia/Sydney", "0 12 * * *", "2025-07-10T00:00:00Z",
      { "2025-07-10T02:00:00Z", "2025-07-11T02:00:00Z" } },
};

START_TEST(ticks_of_the_table)
{
    const struct tick_case *tc = &tick_cases[_i];
    char err[512], a[32], b[32];
    pgq_tz *z = NULL;
    pgq_cron *c;

    if (tc->zone && tz_load(tc->zone, &z, err, sizeof err) < 0)
        ck_abort_msg("%s: %s", tc->zone, err);
    if (pgq_cron_parse(tc->spec, z, &c, err, sizeof err) < 0)
        ck_abort_msg("\"%s\": %s", tc->spec, err);
    int64_t t = at(tc->after), prev = t;
    for (int k = 0; k < 5 && tc->want[k]; k++) {
        t = pgq_cron_next(c, t);
        ck_assert_msg(t == at(tc->want[k]), "%s \"%s\" after %s: tick %d is %s, want %s",
                      tc->zone ? tc->zone : "UTC", tc->spec, iso(prev, b, sizeof b), k + 1,
                      iso(t, a, sizeof a), tc->want[k]);
        /* the last tick at or before a tick is that tick, and just before it the one before */
        ck_assert_msg(pgq_cron_prev(c, t) == t, "\"%s\": prev(%s) is %s", tc->spec,
                      iso(t, a, sizeof a), iso(pgq_cron_prev(c, t), b, sizeof b));
        if (k > 0)
            ck_assert_msg(pgq_cron_prev(c, t - 1) == at(tc->want[k - 1]), "\"%s\": prev(%s - 1ms) is %s",
                          tc->spec, iso(t, a, sizeof a), iso(pgq_cron_prev(c, t - 1), b, sizeof b));
        prev = t;
    }
    pgq_cron_free(c);
    tz_free(z);
}
END_TEST

static const struct bad_case {
    const char *spec, *msg;
} bad_cases[] = {
    { "* * * *", "\"* * * *\": expected 5 fields (minute hour day-of-month month day-of-week), found 4" },
    { "* * * * * *", "\"* * * * * *\": expected 5 fields (minute hour day-of-month month day-of-week), found more than 5" },
    { "", "\"\": expected 5 fields (minute hour day-of-month month day-of-week), found 0" },
    { "60 * * * *", "minute field \"60\": 60 is out of range (0-59)" },
    { "0 24 * * *", "hour field \"24\": 24 is out of range (0-23)" },
    { "0 0 0 * *", "day-of-month field \"0\": 0 is out of range (1-31)" },
    { "0 0 * 13 *", "month field \"13\": 13 is out of range (1-12)" },
    { "0 0 * * 8", "day-of-week field \"8\": 8 is out of range (0-7)" },
    { "0 0 * foo *", "month field \"foo\": unknown name \"foo\" (use jan..dec)" },
    { "0 0 * * sunday", "day-of-week field \"sunday\": unknown name \"sunday\" (use sun..sat)" },
    { "0 17-9 * * *", "hour field \"17-9\": range 17-9 runs backwards" },
    { "*/0 * * * *", "minute field \"*/0\": step 0 is out of range (1-60)" },
    { "*/ * * * *", "minute field \"*/\": a step needs a number (/N)" },
    { "1,,2 * * * *", "minute field \"\": expected a number, \"*\", a range N-M or a step /N" },
    { "1, * * * *", "minute field \"1,\": empty item after \",\"" },
    { "1x * * * *", "minute field \"1x\": unexpected \"x\" at \"x\"" },
    { "0 0 30 feb *", "\"0 0 30 feb *\": never fires (no date matches)" },
    { "@often", "\"@often\": unknown schedule (use five fields, @hourly, @daily, @weekly, @monthly, @yearly or @every DURATION)" },
    { "@reboot", "\"@reboot\": unknown schedule (use five fields, @hourly, @daily, @weekly, @monthly, @yearly or @every DURATION)" },
    { "@daily 0", "\"@daily 0\": text after @daily" },
    { "@every", "\"@every\": @every needs a duration (@every 30s)" },
    { "@every 500ms", "@every 500ms: out of range (1s..366d)" },
    { "@every 10x", "@every: \"10x\": unknown unit \"x\" (use ms, s, m, h, d)" },
};

START_TEST(bad_schedules_are_named)
{
    const struct bad_case *bc = &bad_cases[_i];
    char err[512] = "";
    pgq_cron *c = NULL;

    ck_assert_msg(pgq_cron_parse(bc->spec, NULL, &c, err, sizeof err) == -1, "\"%s\" was accepted",
                  bc->spec);
    ck_assert_ptr_null(c);
    ck_assert_str_eq(err, bc->msg);
}
END_TEST

START_TEST(zones_are_checked)
{
    char err[512];
    pgq_tz *z = NULL;

    ck_assert_int_eq(tz_load("Mars/Olympus_Mons", &z, err, sizeof err), -1);
    ck_assert_str_eq(err, "unknown time zone \"Mars/Olympus_Mons\" (no /usr/share/zoneinfo/Mars/Olympus_Mons)");
    ck_assert_int_eq(tz_load("../../etc/passwd", &z, err, sizeof err), -1);
    ck_assert_str_eq(err, "\"../../etc/passwd\" is not a time zone name (an IANA name such as "
                          "Europe/Berlin or UTC)");
    ck_assert_int_eq(tz_load("Europe", &z, err, sizeof err), -1);   /* a directory */
    ck_assert_ptr_null(z);
    ck_assert_int_eq(tz_load("UTC", &z, err, sizeof err), 0);
    ck_assert_int_eq(tz_offset(z, at("2025-07-01T00:00:00Z") / 1000), 0);
    tz_free(z);
    ck_assert_int_eq(tz_load("America/New_York", &z, err, sizeof err), 0);
    ck_assert_int_eq(tz_offset(z, at("2025-01-15T12:00:00Z") / 1000), -5 * 3600);
    ck_assert_int_eq(tz_offset(z, at("2025-07-15T12:00:00Z") / 1000), -4 * 3600);
    /* 2025's change: 9 March, 07:00 UTC */
    ck_assert_int_eq(tz_offset(z, at("2025-03-09T06:59:59Z") / 1000), -5 * 3600);
    ck_assert_int_eq(tz_offset(z, at("2025-03-09T07:00:00Z") / 1000), -4 * 3600);
    tz_free(z);
}
END_TEST

Suite *cron_suite(void)
{
    Suite *s = suite_create("cron");
    TCase *tc = tcase_create("cron");

    if (getenv("TZDIR"))
        unsetenv("TZDIR");
    tcase_add_loop_test(tc, ticks_of_the_table, 0, (int)(sizeof tick_cases / sizeof tick_cases[0]));
    tcase_add_loop_test(tc, bad_schedules_are_named, 0, (int)(sizeof bad_cases / sizeof bad_cases[0]));
    tcase_add_test(tc, zones_are_checked);
    suite_add_tcase(s, tc);
    return s;
}
