/*
 * payload.c -- a periodic job's payload, checked when pool.ini is loaded.
 *
 * The database checks every add against the type's contract, but a cron
 * section's payload is fixed in the file, so a bad one is a config error
 * (with file:line) at load rather than a refusal logged at every tick.
 * pgq has no JSON library (PostgreSQL parses JSON everywhere else), so this
 * is a small recursive-descent reader of RFC 8259 that keeps nothing but
 * the top-level keys' types; jsonb's own limits are followed (no \u0000,
 * valid UTF-8, nesting bounded). Keys are compared as written between their
 * quotes: a key spelled with escapes ("\u0074o") does not count as "to",
 * which can refuse a payload PostgreSQL would take, never the reverse.
 */
#include "payload.h"
#include "utf8.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define MAX_DEPTH 64

struct rd {
    const char *s, *p;
    char *err;
    size_t errlen;
    bool failed;
    /* top-level keys and their types, reported to a check */
    void (*on_key)(void *arg, const char *key, size_t len, const char *type);
    void *arg;
};

static int fail(struct rd *r, const char *what)
{
    if (!r->failed)
        snprintf(r->err, r->errlen, "byte %zu: %s", (size_t)(r->p - r->s) + 1, what);
    r->failed = true;
    return -1;
}

static void ws(struct rd *r)
{
    while (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')
        r->p++;
}

static int string(struct rd *r)
{
    r->p++;     /* the opening quote */
    for (;;) {
        unsigned char ch = (unsigned char)*r->p;
        if (ch == '"') {
            r->p++;
            return 0;
        }
        if (ch == '\0')
            return fail(r, "unterminated string");
        if (ch < 0x20)
            return fail(r, "control character in a string (escape it)");
        if (ch == '\\') {
            r->p++;
            if (*r->p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!isxdigit((unsigned char)r->p[i]))
                        return fail(r, "\\u needs four hex digits");
                if (strncmp(r->p + 1, "0000", 4) == 0)
                    return fail(r, "\\u0000 is not allowed (PostgreSQL's jsonb refuses it)");
                r->p += 5;
                continue;
            }
            if (!*r->p || !strchr("\"\\/bfnrt", *r->p))
                return fail(r, "unknown escape in a string");
            r->p++;
            continue;
        }
        r->p++;
    }
}

static int value(struct rd *r, int depth, const char **type);

static int object(struct rd *r, int depth)
{
    r->p++;
    ws(r);
    if (*r->p == '}') {
        r->p++;
        return 0;
    }
    for (;;) {
        const char *key, *type;
        if (*r->p != '"')
            return fail(r, "expected a string as an object key");
        key = r->p + 1;
        if (string(r) < 0)
            return -1;
        size_t len = (size_t)(r->p - 1 - key);
        ws(r);
        if (*r->p != ':')
            return fail(r, "expected ':' after an object key");
        r->p++;
        ws(r);
        if (value(r, depth + 1, &type) < 0)
            return -1;
        if (depth == 0 && r->on_key)
            r->on_key(r->arg, key, len, type);
        ws(r);
        if (*r->p == '}') {
            r->p++;
            return 0;
        }
        if (*r->p != ',')
            return fail(r, "expected ',' or '}' in an object");
        r->p++;
        ws(r);
    }
}

static int array(struct rd *r, int depth)
{
    const char *type;

    r->p++;
    ws(r);
    if (*r->p == ']') {
        r->p++;
        return 0;
    }
    for (;;) {
        if (value(r, depth + 1, &type) < 0)
            return -1;
        ws(r);
        if (*r->p == ']') {
            r->p++;
            return 0;
        }
        if (*r->p != ',')
            return fail(r, "expected ',' or ']' in an array");
        r->p++;
        ws(r);
    }
}

static int number(struct rd *r)
{
    if (*r->p == '-')
        r->p++;
    if (*r->p == '0')
        r->p++;
    else if (isdigit((unsigned char)*r->p))
        while (isdigit((unsigned char)*r->p))
            r->p++;
    else
        return fail(r, "expected a value");
    if (*r->p == '.') {
        r->p++;
        if (!isdigit((unsigned char)*r->p))
            return fail(r, "expected a digit after '.'");
        while (isdigit((unsigned char)*r->p))
            r->p++;
    }
    if (*r->p == 'e' || *r->p == 'E') {
        r->p++;
        if (*r->p == '+' || *r->p == '-')
            r->p++;
        if (!isdigit((unsigned char)*r->p))
            return fail(r, "expected a digit in the exponent");
        while (isdigit((unsigned char)*r->p))
            r->p++;
    }
    return 0;
}

static int word(struct rd *r, const char *w)
{
    size_t n = strlen(w);
    if (strncmp(r->p, w, n) != 0)
        return fail(r, "expected a value");
    r->p += n;
    return 0;
}

static int value(struct rd *r, int depth, const char **type)
{
    if (depth > MAX_DEPTH)
        return fail(r, "nested too deeply");
    switch (*r->p) {
    case '{': *type = "object"; return object(r, depth);
    case '[': *type = "array"; return array(r, depth);
    case '"': *type = "string"; return string(r);
    case 't': *type = "boolean"; return word(r, "true");
    case 'f': *type = "boolean"; return word(r, "false");
    case 'n': *type = "null"; return word(r, "null");
    default: *type = "number"; return number(r);
    }
}

static int parse(const char *s, char *err, size_t errlen,
                 void (*on_key)(void *, const char *, size_t, const char *), void *arg,
                 const char **type)
{
    struct rd r = { .s = s, .p = s, .err = err, .errlen = errlen, .on_key = on_key, .arg = arg };
    size_t bad;

    if (!utf8_valid(s, strlen(s), &bad, NULL)) {
        snprintf(err, errlen, "byte %zu: not valid UTF-8", bad + 1);
        return -1;
    }
    ws(&r);
    if (value(&r, 0, type) < 0)
        return -1;
    ws(&r);
    if (*r.p != '\0')
        return fail(&r, "text after the JSON value");
    return 0;
}

int cfg_json_check(const char *s, char *err, size_t errlen)
{
    const char *type;
    char msg[200];

    if (parse(s, msg, sizeof msg, NULL, NULL, &type) < 0) {
        snprintf(err, errlen, "not valid JSON: %s", msg);
        return -1;
    }
    return 0;
}

/* The type of each required key, as the last occurrence gives it (jsonb
 * keeps the last of duplicate keys). */
struct meets {
    const pgq_cfg_require *req;
    size_t n;
    const char *got[64];
};

static void note_key(void *arg, const char *key, size_t len, const char *type)
{
    struct meets *m = arg;
    for (size_t i = 0; i < m->n && i < 64; i++)
        if (strlen(m->req[i].key) == len && memcmp(m->req[i].key, key, len) == 0)
            m->got[i] = type;
}

int cfg_payload_meets(const char *s, const pgq_cfg_require *req, size_t n, const char *type,
                      char *err, size_t errlen)
{
    struct meets m = { .req = req, .n = n };
    const char *top;
    char msg[200];

    if (n == 0)
        return 0;
    if (n > 64) {
        snprintf(err, errlen, "job type \"%s\" requires more than 64 keys", type);
        return -1;
    }
    if (parse(s, msg, sizeof msg, note_key, &m, &top) < 0) {
        snprintf(err, errlen, "not valid JSON: %s", msg);
        return -1;
    }
    if (strcmp(top, "object") != 0) {
        snprintf(err, errlen, "is a JSON %s; job type \"%s\" requires an object with key \"%s\"",
                 top, type, req[0].key);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (m.got[i] == NULL) {
            snprintf(err, errlen, "missing required key \"%s\" (%s) of job type \"%s\"", req[i].key,
                     req[i].json_type, type);
            return -1;
        }
        if (strcmp(m.got[i], req[i].json_type) != 0) {
            snprintf(err, errlen, "key \"%s\" is a%s %s; job type \"%s\" requires a%s %s",
                     req[i].key, strchr("aeiou", m.got[i][0]) ? "n" : "", m.got[i], type,
                     strchr("aeiou", req[i].json_type[0]) ? "n" : "", req[i].json_type);
            return -1;
        }
    }
    return 0;
}
