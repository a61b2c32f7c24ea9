/*
 * cron.c -- the schedules of periodic jobs: parsing and their ticks.
 *
 * A schedule is either an interval ("@every 30s": ticks at whole multiples
 * of it since 1970-01-01 UTC, so every pool of a fleet computes the same
 * ticks without talking to the others) or five fields read as local wall
 * time in the schedule's zone: minute, hour, day of month, month, day of
 * week, each a list of items "*", "N", "N-M", with an optional "/STEP";
 * months and weekdays also by name (jan..dec, sun..sat; 7 is Sunday too).
 * As in every cron since Vixie's, when both the day of month and the day
 * of week are restricted a day matches when either does.
 *
 * The design is simple: a tick is found by walking local wall-clock
 * minutes that match the fields (jumping whole months, days and hours that
 * cannot), and mapping each to the instants at which the zone's clocks show
 * it. Around a DST change a wall time can map to no instant (the spring
 * gap) or to two (the autumn repeat). The rule, Vixie cron's and cronie's:
 *  - a schedule whose minute or hour field starts with "*" is about elapsed
 *    time ("*\/15 * * * *", "0 * * * *"): it fires at every instant the
 *    clocks show a matching time, so at both passes of a repeated hour and
 *    not at all in the skipped one;
 *  - a schedule with a fixed minute and hour ("30 2 * * *") is about a time
 *    of day: it fires once a day whatever the change: a skipped time fires
 *    at the moment of the change (02:30 on the spring-forward day in
 *    Europe/Berlin fires at 03:00 CEST), a repeated one at its first pass
 *    only (02:30 CEST, not again at 02:30 CET).
 * The walk starts a few hours before the local time of the instant asked
 * about (a repeated hour maps earlier wall times to later instants) and
 * ends once no later wall time can map to an earlier instant than the best
 * found.
 */
#include "cron.h"
#include "duration.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MIN_EVERY_MS 1000LL
#define MAX_EVERY_MS (366LL * 86400 * 1000)
#define HORIZON_YEARS 30
#define SHIFT_S (3 * 3600)      /* more than any DST change (double summer time was 2h) */

enum { F_MIN, F_HOUR, F_DOM, F_MON, F_DOW, NFIELDS };

static const struct field_info {
    const char *name;
    int lo, hi;
    const char *const *names;   /* names for lo, lo+1, ...; NULL: numbers only */
} fields[NFIELDS] = {
    [F_MIN] = { "minute", 0, 59, NULL },
    [F_HOUR] = { "hour", 0, 23, NULL },
    [F_DOM] = { "day-of-month", 1, 31, NULL },
    [F_MON] = { "month", 1, 12, (const char *const[]){ "jan", "feb", "mar", "apr", "may", "jun",
                                                     "jul", "aug", "sep", "oct", "nov", "dec" } },
    [F_DOW] = { "day-of-week", 0, 7, (const char *const[]){ "sun", "mon", "tue", "wed", "thu",
                                                          "fri", "sat" } },
};

struct pgq_cron {
    int64_t every_ms;           /* > 0: an interval; 0: the fields below */
    uint64_t set[NFIELDS];      /* bit v: value v matches */
    bool star[NFIELDS];         /* the field starts with "*" */
    const pgq_tz *zone;
};

static const struct {
    const char *name, *fields;
} macros[] = {
    { "@yearly", "0 0 1 1 *" }, { "@annually", "0 0 1 1 *" }, { "@monthly", "0 0 1 * *" },
    { "@weekly", "0 0 * * 0" }, { "@daily", "0 0 * * *" }, { "@midnight", "0 0 * * *" },
    { "@hourly", "0 * * * *" },
};

/* A number or (for months and weekdays) a name at *p; advances *p. */
static int parse_value(const struct field_info *f, const char **p, int *v, const char *item,
                       char *err, size_t errlen)
{
    const char *s = *p;

    if (isdigit((unsigned char)*s)) {
        long x = 0;
        while (isdigit((unsigned char)*s) && x < 1000)
            x = x * 10 + (*s++ - '0');
        if (x < f->lo || x > f->hi) {
            snprintf(err, errlen, "%s field \"%s\": %ld is out of range (%d-%d)", f->name, item, x,
                     f->lo, f->hi);
            return -1;
        }
        *v = (int)x;
        *p = s;
        return 0;
    }
    if (f->names && isalpha((unsigned char)*s)) {
        int n = f == &fields[F_MON] ? 12 : 7;
        for (int i = 0; i < n; i++) {
            if (strncasecmp(s, f->names[i], 3) == 0 && !isalpha((unsigned char)s[3])) {
                *v = f->lo + i;
                *p = s + 3;
                return 0;
            }
        }
        snprintf(err, errlen, "%s field \"%s\": unknown name \"%.*s\" (use %s)", f->name, item,
                 (int)strcspn(s, "-/,"), s, f == &fields[F_MON] ? "jan..dec" : "sun..sat");
        return -1;
    }
    snprintf(err, errlen, "%s field \"%s\": expected a number%s, \"*\", a range N-M or a step /N",
             f->name, item, f->names ? " or a name" : "");
    return -1;
}

/* One field, "item[,item...]", into c->set[fi]. */
static int parse_field(pgq_cron *c, int fi, const char *text, char *err, size_t errlen)
{
    const struct field_info *f = &fields[fi];
    const char *p = text;

    c->star[fi] = *text == '*';
    for (;;) {
        int lo, hi, step = 1;
        char shown[64];

        snprintf(shown, sizeof shown, "%.*s", (int)strcspn(p, ","), p);
        if (*p == '*') {
            lo = f->lo;
            hi = f->hi;
            p++;
        } else {
            if (parse_value(f, &p, &lo, shown, err, errlen) < 0)
                return -1;
            hi = lo;
            if (*p == '-') {
                p++;
                if (parse_value(f, &p, &hi, shown, err, errlen) < 0)
                    return -1;
                if (fi == F_DOW && hi == 0 && lo > 0)
                    hi = 7;     /* "fri-sun" */
                if (hi < lo) {
                    snprintf(err, errlen, "%s field \"%s\": range %d-%d runs backwards", f->name,
                             shown, lo, hi);
                    return -1;
                }
            } else if (*p == '/')
                hi = f->hi;     /* "5/15": from 5 to the end, as cronie reads it */
        }
        if (*p == '/') {
            long x = 0;
            p++;
            if (!isdigit((unsigned char)*p)) {
                snprintf(err, errlen, "%s field \"%s\": a step needs a number (/N)", f->name, shown);
                return -1;
            }
            while (isdigit((unsigned char)*p) && x < 1000)
                x = x * 10 + (*p++ - '0');
            if (x < 1 || x > f->hi - f->lo + 1) {
                snprintf(err, errlen, "%s field \"%s\": step %ld is out of range (1-%d)", f->name,
                         shown, x, f->hi - f->lo + 1);
                return -1;
            }
            step = (int)x;
        }
        if (*p != ',' && *p != '\0') {
            snprintf(err, errlen, "%s field \"%s\": unexpected \"%c\" at \"%s\"", f->name, shown, *p,
                     p);
            return -1;
        }
        for (int v = lo; v <= hi; v += step)
            c->set[fi] |= 1ULL << (fi == F_DOW && v == 7 ? 0 : v);
        if (*p == '\0')
            return 0;
        p++;
        if (*p == '\0') {
            snprintf(err, errlen, "%s field \"%s\": empty item after \",\"", f->name, text);
            return -1;
        }
    }
}

static bool day_matches(const pgq_cron *c, int64_t days, int d)
{
    bool dom = c->set[F_DOM] >> d & 1, dow = c->set[F_DOW] >> tz_weekday(days) & 1;

    if (c->star[F_DOM] || c->star[F_DOW])
        return dom && dow;      /* "*" matches every day, so this is the other field alone */
    return dom || dow;
}

/* The first wall-clock minute at or after local second l (in "local seconds
 * since the epoch", as if the zone were UTC) that the fields match; -1 when
 * there is none before year `until`. */
static int64_t next_local(const pgq_cron *c, int64_t l, int64_t until)
{
    int64_t days = l / 86400 - (l % 86400 < 0), y;
    int64_t secs = l - days * 86400;
    int m, d, h = (int)(secs / 3600), mi = (int)((secs % 3600 + 59) / 60);

    tz_civil_from_days(days, &y, &m, &d);
    for (;;) {
        if (mi > 59) {
            mi = 0;
            h++;
        }
        if (h > 23) {
            h = mi = 0;
            days++;
            tz_civil_from_days(days, &y, &m, &d);
        }
        if (y >= until)
            return -1;
        if (!(c->set[F_MON] >> m & 1)) {
            if (++m > 12) {
                m = 1;
                y++;
            }
            days = tz_days_from_civil(y, m, 1);
            d = 1;
            h = mi = 0;
            continue;
        }
        if (!day_matches(c, days, d)) {
            h = 24;
            mi = 0;
            continue;
        }
        if (!(c->set[F_HOUR] >> h & 1)) {
            h++;
            mi = 0;
            continue;
        }
        if (!(c->set[F_MIN] >> mi & 1)) {
            mi++;
            continue;
        }
        return days * 86400 + h * 3600 + mi * 60;
    }
}

static int64_t year_of(int64_t t)
{
    int64_t y;
    int m, d;

    tz_civil_from_days(t / 86400 - (t % 86400 < 0), &y, &m, &d);
    return y;
}

/* The instants (seconds) at which the zone's clocks show local time l,
 * by the DST rule above: 0, 1 or 2 of them, ascending, into out. */
static int instants(const pgq_cron *c, int64_t l, int64_t out[2])
{
    int32_t oa = tz_offset(c->zone, l - 86400), ob = tz_offset(c->zone, l + 86400);
    bool va, vb, elapsed = c->star[F_MIN] || c->star[F_HOUR];

    if (oa == ob) {
        out[0] = l - oa;
        return 1;
    }
    va = tz_offset(c->zone, l - oa) == oa;
    vb = tz_offset(c->zone, l - ob) == ob;
    if (va && vb) {             /* a repeated hour: first pass, then the second */
        out[0] = l - oa < l - ob ? l - oa : l - ob;
        out[1] = l - oa < l - ob ? l - ob : l - oa;
        return elapsed ? 2 : 1;
    }
    if (va || vb) {
        out[0] = va ? l - oa : l - ob;
        return 1;
    }
    if (elapsed)
        return 0;
    /* Skipped by the change: the moment of the change, found by bisection
     * between the instant the old offset and the new one would give. */
    int64_t lo = l - (oa > ob ? oa : ob), hi = l - (oa > ob ? ob : oa);
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (tz_offset(c->zone, mid) == oa)
            lo = mid;
        else
            hi = mid;
    }
    out[0] = hi;
    return 1;
}

int64_t pgq_cron_next(const pgq_cron *c, int64_t after_ms)
{
    if (c->every_ms > 0) {
        int64_t q = after_ms / c->every_ms - (after_ms % c->every_ms < 0);
        return (q + 1) * c->every_ms;
    }
    int64_t after = after_ms / 1000 - (after_ms % 1000 < 0);   /* ticks are whole minutes */
    int64_t best = -1;
    int64_t l = after + tz_offset(c->zone, after) - SHIFT_S;
    int64_t until = year_of(l) + HORIZON_YEARS;

    for (;;) {
        int64_t t[2];
        if ((l = next_local(c, l, until)) < 0)
            break;
        int n = instants(c, l, t);
        for (int i = 0; i < n; i++)
            if (t[i] * 1000 > after_ms && (best < 0 || t[i] < best))
                best = t[i];
        /* Later wall times map to instants after l - SHIFT_S - offset. */
        if (best >= 0 && l > best + tz_offset(c->zone, best) + 2 * SHIFT_S)
            break;
        l += 60;
    }
    return best < 0 ? -1 : best * 1000;
}

int64_t pgq_cron_prev(const pgq_cron *c, int64_t at_ms)
{
    /* Windows that grow until one holds a tick, then walk it forward: the
     * walk is short because the window before held none. */
    static const int64_t windows_s[] = { 61, 2 * 3600, 2 * 86400, 35 * 86400, 400 * 86400,
                                         HORIZON_YEARS * 366LL * 86400 };

    if (c->every_ms > 0) {
        int64_t q = at_ms / c->every_ms - (at_ms % c->every_ms < 0);
        return q * c->every_ms;
    }
    for (size_t w = 0; w < sizeof windows_s / sizeof windows_s[0]; w++) {
        int64_t t = pgq_cron_next(c, at_ms - windows_s[w] * 1000);
        if (t < 0 || t > at_ms)
            continue;
        for (;;) {
            int64_t n = pgq_cron_next(c, t);
            if (n < 0 || n > at_ms)
                return t;
            t = n;
        }
    }
    return -1;
}

int pgq_cron_parse(const char *spec, const pgq_tz *zone, pgq_cron **out, char *err, size_t errlen)
{
    char buf[256], *f[NFIELDS + 1], *save = NULL, *tok;
    const char *s = spec;
    pgq_cron *c;
    int n = 0;

    *out = NULL;
    while (isspace((unsigned char)*s))
        s++;
    if ((c = calloc(1, sizeof *c)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->zone = zone;
    if (*s == '@') {
        size_t len = strcspn(s, " \t");
        if (len == 6 && strncmp(s, "@every", 6) == 0) {
            const char *d = s + 6;
            char msg[200];
            while (isspace((unsigned char)*d))
                d++;
            if (*d == '\0') {
                snprintf(err, errlen, "\"%s\": @every needs a duration (@every 30s)", spec);
                goto fail;
            }
            if (pgq_duration_parse(d, &c->every_ms, msg, sizeof msg) < 0) {
                snprintf(err, errlen, "@every: %s", msg);
                goto fail;
            }
            if (c->every_ms < MIN_EVERY_MS || c->every_ms > MAX_EVERY_MS) {
                snprintf(err, errlen, "@every %s: out of range (1s..366d)", d);
                goto fail;
            }
            *out = c;
            return 0;
        }
        for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++) {
            if (strlen(macros[i].name) == len && strncmp(s, macros[i].name, len) == 0) {
                const char *rest = s + len;
                while (isspace((unsigned char)*rest))
                    rest++;
                if (*rest) {
                    snprintf(err, errlen, "\"%s\": text after %s", spec, macros[i].name);
                    goto fail;
                }
                s = macros[i].fields;
                goto fields;
            }
        }
        snprintf(err, errlen, "\"%.*s\": unknown schedule (use five fields, @hourly, @daily, "
                 "@weekly, @monthly, @yearly or @every DURATION)", (int)len, s);
        goto fail;
    }
fields:
    if (strlen(s) >= sizeof buf) {
        snprintf(err, errlen, "schedule is longer than %zu characters", sizeof buf - 1);
        goto fail;
    }
    snprintf(buf, sizeof buf, "%s", s);
    for (tok = strtok_r(buf, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        if (n == NFIELDS) {
            n++;
            break;
        }
        f[n++] = tok;
    }
    if (n != NFIELDS) {
        snprintf(err, errlen, "\"%s\": expected 5 fields (minute hour day-of-month month "
                 "day-of-week), found %s%d", spec, n > NFIELDS ? "more than " : "",
                 n > NFIELDS ? NFIELDS : n);
        goto fail;
    }
    for (int i = 0; i < NFIELDS; i++)
        if (parse_field(c, i, f[i], err, errlen) < 0)
            goto fail;
    /* "0 0 30 feb *" parses but never fires: say so now, not never. */
    if (next_local(c, 0, 1970 + HORIZON_YEARS) < 0) {
        snprintf(err, errlen, "\"%s\": never fires (no date matches)", spec);
        goto fail;
    }
    *out = c;
    return 0;

fail:
    free(c);
    return -1;
}

void pgq_cron_free(pgq_cron *c)
{
    free(c);
}
