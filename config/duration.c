/*
 * duration.c -- parsing and printing durations such as "500ms" or "1h30m".
 *
 * Every time setting in pgq (leases, timeouts, retention, backoff) is written
 * by humans in pool.ini or on the command line, so a duration always carries
 * its unit: a bare "30" could mean seconds to one reader and milliseconds to
 * another. The parser walks NUMBER UNIT pairs left to right, insisting that
 * units go from largest to smallest and appear once, which turns typos like
 * "1h1h" or "30s1m" into errors instead of surprising sums. All arithmetic is
 * checked against int64 overflow. The printer is the inverse: it splits a
 * value into days, hours, minutes and seconds, so anything it prints parses
 * back to the same number.
 */
#include "duration.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define UNITS_HINT "(use ms, s, m, h, d)"

/* Largest first: the parser uses the index to enforce the order. */
static const struct unit {
    const char *name;
    int64_t ms;
} units[] = {
    { "d", 24LL * 60 * 60 * 1000 },
    { "h", 60LL * 60 * 1000 },
    { "m", 60LL * 1000 },
    { "s", 1000 },
    { "ms", 1 },
};
#define NUNITS (sizeof units / sizeof units[0])

int pgq_duration_parse(const char *s, int64_t *ms, char *err, size_t errlen)
{
    const char *p, *end;
    int len;
    size_t last = 0;    /* index + 1 of the previous unit; 0 before the first */
    int64_t total = 0;
    bool all_digits = true, all_zero = true;

    if (s == NULL)
        s = "";
    while (isspace((unsigned char)*s))
        s++;
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    len = (int)(end - s);

    if (len == 0) {
        snprintf(err, errlen, "\"\": empty duration");
        return -1;
    }
    if (*s == '-') {
        snprintf(err, errlen, "\"%.*s\": negative", len, s);
        return -1;
    }
    for (p = s; p < end; p++) {
        if (!isdigit((unsigned char)*p))
            all_digits = false;
        else if (*p != '0')
            all_zero = false;
    }
    if (all_digits) {
        /* A unit-less zero is unambiguous; anything else is not. */
        if (all_zero) {
            *ms = 0;
            return 0;
        }
        snprintf(err, errlen, "\"%.*s\": needs a unit " UNITS_HINT, len, s);
        return -1;
    }

    p = s;
    while (p < end) {
        int64_t n = 0;
        const char *u;
        size_t ulen, i;

        if (isspace((unsigned char)*p)) {
            snprintf(err, errlen, "\"%.*s\": no spaces allowed inside a duration", len, s);
            return -1;
        }
        if (!isdigit((unsigned char)*p)) {
            snprintf(err, errlen, "\"%.*s\": expected a number at \"%.*s\"", len, s,
                     (int)(end - p), p);
            return -1;
        }
        for (; p < end && isdigit((unsigned char)*p); p++) {
            if (n > (INT64_MAX - (*p - '0')) / 10)
                goto too_large;
            n = n * 10 + (*p - '0');
        }

        u = p;
        while (p < end && isalpha((unsigned char)*p))
            p++;
        ulen = (size_t)(p - u);
        if (ulen == 0) {
            if (p == end)
                snprintf(err, errlen, "\"%.*s\": needs a unit " UNITS_HINT, len, s);
            else if (isspace((unsigned char)*p))
                snprintf(err, errlen, "\"%.*s\": no spaces allowed inside a duration", len, s);
            else if (*p == '.' || *p == ',')
                snprintf(err, errlen, "\"%.*s\": fractions are not supported "
                         "(use a smaller unit, e.g. 1500ms)", len, s);
            else
                snprintf(err, errlen, "\"%.*s\": unexpected \"%c\" after a number", len, s, *p);
            return -1;
        }
        for (i = 0; i < NUNITS; i++)
            if (strlen(units[i].name) == ulen && memcmp(units[i].name, u, ulen) == 0)
                break;
        if (i == NUNITS) {
            snprintf(err, errlen, "\"%.*s\": unknown unit \"%.*s\" " UNITS_HINT, len, s,
                     (int)ulen, u);
            return -1;
        }
        if (i + 1 <= last) {
            snprintf(err, errlen, "\"%.*s\": units must go from largest to smallest, "
                     "each at most once (e.g. 1h30m)", len, s);
            return -1;
        }
        last = i + 1;
        if (n > INT64_MAX / units[i].ms)
            goto too_large;
        n *= units[i].ms;
        if (total > INT64_MAX - n)
            goto too_large;
        total += n;
    }
    *ms = total;
    return 0;

too_large:
    snprintf(err, errlen, "\"%.*s\": too large", len, s);
    return -1;
}

char *pgq_duration_format(int64_t ms, char *buf, size_t len)
{
    char tmp[48];
    size_t n = 0;
    uint64_t v, part[NUNITS];
    size_t i;

    if (len == 0)
        return buf;
    if (ms < 0) {
        tmp[n++] = '-';
        v = (uint64_t)0 - (uint64_t)ms;     /* also right for INT64_MIN */
    } else {
        v = (uint64_t)ms;
    }
    if (v == 0) {
        snprintf(buf, len, "0");
        return buf;
    }
    for (i = 0; i < NUNITS; i++) {
        part[i] = v / (uint64_t)units[i].ms;
        v %= (uint64_t)units[i].ms;
    }
    /* "1500ms" reads better (and is shorter) than "1s500ms". */
    if (part[NUNITS - 1] != 0) {
        part[NUNITS - 1] += part[NUNITS - 2] * 1000;
        part[NUNITS - 2] = 0;
    }
    for (i = 0; i < NUNITS; i++)
        if (part[i] != 0)
            n += (size_t)snprintf(tmp + n, sizeof tmp - n, "%llu%s",
                                  (unsigned long long)part[i], units[i].name);
    snprintf(buf, len, "%.*s", (int)n, tmp);
    return buf;
}
