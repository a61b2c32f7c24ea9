/*
 * tz.c -- IANA time zones for periodic jobs, read from TZif files (RFC 8536).
 *
 * The C library converts between UTC and local time only for the one zone
 * of the process (TZ, tzset), and changing TZ under a running pool races
 * with every thread that reads the environment (libpq does, to connect).
 * So pgq reads the zone's file itself: the version 2+ block of 64-bit
 * transition times, each naming a local time type (its UTC offset), and
 * the footer, a POSIX TZ string ("CET-1CEST,M3.5.0,M10.5.0/3") that gives
 * the rule for instants after the last transition in the table. Before the
 * first transition the first type holds (RFC 8536, 3.2). Leap seconds are
 * ignored (the "right/" zones count them; civil time does not).
 *
 * A name is looked up under $TZDIR or /usr/share/zoneinfo and must be a
 * relative path of letters, digits, "_", "-", "+" and "/" with no "."
 * component, so a config cannot make the pool read an arbitrary file.
 */
#include "tz.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TZIF_MAX (1 << 20)      /* real files are a few KB */

/* A POSIX TZ rule date: Jn (1..365, no Feb 29), n (0..365) or Mm.w.d. */
struct rule_date {
    char kind;                  /* 'J', 'n' or 'M' */
    int n, m, w, d;
    int32_t secs;               /* local time of day of the change, may be negative or > 24h */
};

struct pgq_tz {
    char *name;
    int64_t *trans;             /* transition instants, ascending */
    unsigned char *idx;         /* the type each transition starts */
    size_t ntrans;
    int32_t *utoff;             /* per type */
    size_t ntypes;
    /* the footer rule */
    bool has_rule;              /* any footer at all */
    bool has_dst;
    int32_t std_off, dst_off;   /* seconds east of UTC */
    struct rule_date start, end;
};

/* ---- civil calendar (Howard Hinnant's days_from_civil) ---- */

int64_t tz_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void tz_civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

int tz_weekday(int64_t days)
{
    int64_t w = (days + 4) % 7;     /* 1970-01-01 was a Thursday */
    return (int)(w < 0 ? w + 7 : w);
}

static bool leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int tz_days_in_month(int64_t y, int m)
{
    static const int dm[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    return m == 2 && leap(y) ? 29 : dm[m - 1];
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* ---- the POSIX TZ footer ---- */

static const char *parse_abbr(const char *s)
{
    if (*s == '<') {
        const char *e = strchr(s, '>');
        return e ? e + 1 : NULL;
    }
    const char *b = s;
    while (isalpha((unsigned char)*s))
        s++;
    return s - b >= 3 ? s : NULL;
}

/* [+-]hh[:mm[:ss]] into *secs; NULL when malformed. */
static const char *parse_hms(const char *s, int32_t *secs)
{
    int sign = 1;
    long h, m = 0, sec = 0;
    char *e;

    if (*s == '+' || *s == '-')
        sign = *s++ == '-' ? -1 : 1;
    if (!isdigit((unsigned char)*s))
        return NULL;
    h = strtol(s, &e, 10);
    if (*e == ':') {
        m = strtol(e + 1, &e, 10);
        if (*e == ':')
            sec = strtol(e + 1, &e, 10);
    }
    if (h > 167 || m > 59 || sec > 59)
        return NULL;
    *secs = (int32_t)(sign * (h * 3600 + m * 60 + sec));
    return e;
}

static const char *parse_date(const char *s, struct rule_date *r)
{
    char *e;

    r->secs = 7200;     /* 02:00 unless given */
    if (*s == 'M') {
        r->kind = 'M';
        r->m = (int)strtol(s + 1, &e, 10);
        if (*e != '.')
            return NULL;
        r->w = (int)strtol(e + 1, &e, 10);
        if (*e != '.')
            return NULL;
        r->d = (int)strtol(e + 1, &e, 10);
        if (r->m < 1 || r->m > 12 || r->w < 1 || r->w > 5 || r->d < 0 || r->d > 6)
            return NULL;
    } else if (*s == 'J' || isdigit((unsigned char)*s)) {
        r->kind = *s == 'J' ? 'J' : 'n';
        r->n = (int)strtol(s + (*s == 'J'), &e, 10);
        if (r->n < (r->kind == 'J') || r->n > 365)
            return NULL;
    } else
        return NULL;
    if (*e == '/')
        return parse_hms(e + 1, &r->secs);
    return e;
}

/* Parse the footer into z; false when it is malformed. */
static bool parse_footer(pgq_tz *z, const char *s)
{
    int32_t off;

    if ((s = parse_abbr(s)) == NULL || (s = parse_hms(s, &off)) == NULL)
        return false;
    z->has_rule = true;
    z->std_off = -off;      /* POSIX counts west of Greenwich */
    if (*s == '\0')
        return true;
    if ((s = parse_abbr(s)) == NULL)
        return false;
    z->has_dst = true;
    z->dst_off = z->std_off + 3600;
    if (*s != ',' && *s != '\0') {
        if ((s = parse_hms(s, &off)) == NULL)
            return false;
        z->dst_off = -off;
    }
    if (*s != ',')
        return false;   /* no rule: POSIX leaves it to the implementation; zic always writes one */
    if ((s = parse_date(s + 1, &z->start)) == NULL || *s != ',')
        return false;
    if ((s = parse_date(s + 1, &z->end)) == NULL)
        return false;
    return *s == '\0';
}

/* The instant in year y when rule date r happens, at local offset off. */
static int64_t rule_instant(const struct rule_date *r, int64_t y, int32_t off)
{
    int64_t day;

    if (r->kind == 'J')
        day = tz_days_from_civil(y, 1, 1) + r->n - 1 + (leap(y) && r->n >= 60);
    else if (r->kind == 'n')
        day = tz_days_from_civil(y, 1, 1) + r->n;
    else {
        int64_t first = tz_days_from_civil(y, r->m, 1);
        int64_t d = first + (r->d - tz_weekday(first) + 7) % 7 + 7 * (r->w - 1);
        while (d >= first + tz_days_in_month(y, r->m))
            d -= 7;     /* week 5 means the last */
        day = d;
    }
    return day * 86400 + r->secs - off;
}

static int32_t rule_offset(const pgq_tz *z, int64_t t)
{
    int64_t y;
    int m, d;

    if (!z->has_dst)
        return z->std_off;
    tz_civil_from_days(floor_div(t + z->std_off, 86400), &y, &m, &d);
    int64_t s = rule_instant(&z->start, y, z->std_off);
    int64_t e = rule_instant(&z->end, y, z->dst_off);
    bool dst = s < e ? t >= s && t < e : !(t >= e && t < s);   /* southern zones: DST spans new year */
    return dst ? z->dst_off : z->std_off;
}

/* ---- the TZif file ---- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static bool valid_name(const char *s)
{
    const char *c;

    if (*s == '\0' || *s == '/' || strlen(s) > 200)
        return false;
    for (c = s; *c; c++)
        if (!isalnum((unsigned char)*c) && !strchr("_-+/", *c))
            return false;
    return strstr(s, "//") == NULL && s[strlen(s) - 1] != '/';
}

/* Parse the TZif image buf of n bytes into z; false when malformed. */
static bool parse_tzif(pgq_tz *z, const unsigned char *buf, size_t n)
{
    const unsigned char *p = buf;
    uint32_t cnt[6];
    size_t i, v1len;

    if (n < 44 || memcmp(buf, "TZif", 4) != 0)
        return false;
    for (i = 0; i < 6; i++)
        cnt[i] = be32(buf + 20 + 4 * i);
    /* counts: isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt */
    v1len = (size_t)cnt[3] * 5 + (size_t)cnt[4] * 6 + cnt[5] + (size_t)cnt[2] * 8 + cnt[1] + cnt[0];
    if (buf[4] >= '2') {
        if (44 + v1len + 44 > n)
            return false;
        p = buf + 44 + v1len;
        if (memcmp(p, "TZif", 4) != 0)
            return false;
        for (i = 0; i < 6; i++)
            cnt[i] = be32(p + 20 + 4 * i);
    }
    size_t tsize = buf[4] >= '2' ? 8 : 4;
    size_t body = (size_t)cnt[3] * (tsize + 1) + (size_t)cnt[4] * 6 + cnt[5] +
                  (size_t)cnt[2] * (tsize + 4) + cnt[1] + cnt[0];
    if (cnt[4] == 0 || (size_t)(p - buf) + 44 + body > n)
        return false;
    p += 44;
    z->ntrans = cnt[3];
    z->ntypes = cnt[4];
    z->trans = calloc(z->ntrans + 1, sizeof *z->trans);
    z->idx = calloc(z->ntrans + 1, 1);
    z->utoff = calloc(z->ntypes, sizeof *z->utoff);
    if (!z->trans || !z->idx || !z->utoff)
        return false;
    for (i = 0; i < z->ntrans; i++, p += tsize)
        z->trans[i] = tsize == 8 ? be64(p) : (int32_t)be32(p);
    for (i = 0; i < z->ntrans; i++, p++) {
        if (*p >= z->ntypes)
            return false;
        z->idx[i] = *p;
    }
    for (i = 0; i < z->ntypes; i++, p += 6)
        z->utoff[i] = (int32_t)be32(p);
    p += cnt[5] + (size_t)cnt[2] * (tsize + 4) + cnt[1] + cnt[0];
    if (tsize == 8 && (size_t)(p - buf) < n && *p == '\n') {
        const unsigned char *e = memchr(p + 1, '\n', n - (size_t)(p - buf) - 1);
        if (e == NULL)
            return false;
        if (e > p + 1) {
            char footer[128];
            size_t len = (size_t)(e - p - 1);
            if (len >= sizeof footer)
                return false;
            memcpy(footer, p + 1, len);
            footer[len] = '\0';
            if (!parse_footer(z, footer))
                return false;
        }
    }
    return true;
}

int tz_load(const char *name, pgq_tz **out, char *err, size_t errlen)
{
    const char *dir = getenv("TZDIR");
    unsigned char *buf = NULL;
    pgq_tz *z = NULL;
    char path[512];
    FILE *f = NULL;
    size_t n;

    *out = NULL;
    if (!valid_name(name)) {
        snprintf(err, errlen, "\"%s\" is not a time zone name (an IANA name such as "
                 "Europe/Berlin or UTC)", name);
        return -1;
    }
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", name);
    if ((z = calloc(1, sizeof *z)) == NULL || (z->name = strdup(name)) == NULL ||
        (buf = malloc(TZIF_MAX)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* The default needs no zone files (a minimal container may have none). */
    if (strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0) {
        if ((z->utoff = calloc(1, sizeof *z->utoff)) == NULL) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        z->ntypes = 1;
        free(buf);
        *out = z;
        return 0;
    }
    if ((f = fopen(path, "rb")) == NULL) {
        if (errno == ENOENT || errno == ENOTDIR || errno == EISDIR)
            snprintf(err, errlen, "unknown time zone \"%s\" (no %s)", name, path);
        else
            snprintf(err, errlen, "time zone \"%s\": %s: %s", name, path, strerror(errno));
        goto fail;
    }
    n = fread(buf, 1, TZIF_MAX, f);
    if (!parse_tzif(z, buf, n)) {
        snprintf(err, errlen, "unknown time zone \"%s\" (%s is not a TZif zone file)", name, path);
        goto fail;
    }
    fclose(f);
    free(buf);
    *out = z;
    return 0;

fail:
    if (f)
        fclose(f);
    free(buf);
    tz_free(z);
    return -1;
}

void tz_free(pgq_tz *z)
{
    if (z == NULL)
        return;
    free(z->name);
    free(z->trans);
    free(z->idx);
    free(z->utoff);
    free(z);
}

const char *tz_name(const pgq_tz *z)
{
    return z ? z->name : "UTC";
}

int32_t tz_offset(const pgq_tz *z, int64_t t)
{
    size_t lo, hi;

    if (z == NULL)
        return 0;
    if (z->ntrans == 0 || t < z->trans[0])
        return z->ntrans == 0 && z->has_rule ? rule_offset(z, t) : z->utoff[0];
    if (t >= z->trans[z->ntrans - 1] && z->has_rule)
        return rule_offset(z, t);
    /* the last transition at or before t */
    lo = 0;
    hi = z->ntrans;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->trans[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return z->utoff[z->idx[lo]];
}
