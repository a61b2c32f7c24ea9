/*
 * jsonb_size.c -- how many bytes PostgreSQL's jsonb makes of a JSON text,
 * without asking PostgreSQL.
 *
 * [job T] max_payload limits a payload's size as jsonb (pgq.payload_size()
 * in migrations/state_machine.sql: pg_column_size of the value, not
 * compressed, 4-byte header). A [cron NAME] payload is fixed in pool.ini,
 * so one over its type's limit is a config error at load, and the loader
 * has no database: this module computes the same figure from the text.
 *
 * The design is simple: parse the (already checked) JSON into a small tree,
 * treat each object as jsonb does (keys unescaped, sorted by length then
 * bytes, the last of duplicate keys kept), then lay the tree out the way
 * convertToJsonb() (src/backend/utils/adt/jsonb_util.c) does, counting
 * instead of copying: a 4-byte varlena header; per container a 4-byte
 * header, a 4-byte JEntry per element (two per object pair: keys first,
 * then values) and a pad to 4 bytes before it; strings as their UTF-8
 * bytes; numbers as the numeric datum numeric_in() makes (padded to 4
 * bytes: a 6- or 8-byte header and 2 bytes per base-10000 digit, leading
 * and trailing zero digits stripped); true, false and null take no data.
 * A scalar at the top is a one-element array. tests/badinput_test.c
 * compares the result with pg_column_size() over a corpus.
 */
#include "payload.h"

#include <ctype.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kind { K_NULL, K_BOOL, K_NUM, K_STR, K_ARR, K_OBJ };

struct node {
    enum kind kind;
    size_t bytes;           /* K_STR: UTF-8 length; K_NUM: the numeric datum's size */
    struct node *kids;      /* K_ARR: elements; K_OBJ: values (keys beside them) */
    char **keys;            /* K_OBJ: unescaped keys */
    size_t *keylens;
    size_t n;
};

struct rd {
    const char *p;
    bool oom;
    bool range;     /* a number numeric_in() refuses ("value overflows numeric format") */
    bool surrogate; /* a \u escape of half a surrogate pair, which jsonb refuses */
};

static void ws(struct rd *r)
{
    while (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')
        r->p++;
}

static unsigned hex4(const char *s)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v = v * 16 + (unsigned)(isdigit((unsigned char)c) ? c - '0' : (tolower((unsigned char)c) - 'a' + 10));
    }
    return v;
}

/* A string at r->p (its opening quote): its unescaped UTF-8 length, and
 * its bytes into out when out is not NULL (room for the text's length). */
static size_t string(struct rd *r, char *out)
{
    size_t n = 0;

    r->p++;
    while (*r->p && *r->p != '"') {
        if (*r->p != '\\') {
            if (out)
                out[n] = *r->p;
            n++;
            r->p++;
            continue;
        }
        r->p++;
        if (*r->p != 'u') {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            const char *e = strchr(from, *r->p);
            if (out)
                out[n] = e ? to[e - from] : *r->p;
            n++;
            r->p++;
            continue;
        }
        unsigned cp = hex4(r->p + 1);
        r->p += 5;
        if (cp >= 0xD800 && cp <= 0xDBFF && r->p[0] == '\\' && r->p[1] == 'u') {
            unsigned lo = hex4(r->p + 2);
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                r->p += 6;
            }
        }
        if (cp >= 0xD800 && cp <= 0xDFFF)
            r->surrogate = true;
        char u[4];
        size_t k;
        if (cp < 0x80) {
            u[0] = (char)cp;
            k = 1;
        } else if (cp < 0x800) {
            u[0] = (char)(0xC0 | cp >> 6);
            u[1] = (char)(0x80 | (cp & 0x3F));
            k = 2;
        } else if (cp < 0x10000) {
            u[0] = (char)(0xE0 | cp >> 12);
            u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
            u[2] = (char)(0x80 | (cp & 0x3F));
            k = 3;
        } else {
            u[0] = (char)(0xF0 | cp >> 18);
            u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
            u[2] = (char)(0x80 | (cp >> 6 & 0x3F));
            u[3] = (char)(0x80 | (cp & 0x3F));
            k = 4;
        }
        if (out)
            memcpy(out + n, u, k);
        n += k;
    }
    if (*r->p == '"')
        r->p++;
    return n;
}

/* floor(a / 4) for any sign */
static long floor4(long a)
{
    return a >= 0 ? a / 4 : -((-a + 3) / 4);
}

/* The size of the numeric datum numeric_in() makes of the number at r->p
 * (set_var_from_str, strip_var, make_result): which base-10000 digits are
 * left once leading and trailing zero digits go, and whether the short
 * header fits the display scale and weight. */
static size_t number(struct rd *r)
{
    long dweight = -1, dscale = 0, k = 0, first = -1, last = -1;
    bool dp = false;

    if (*r->p == '-')
        r->p++;
    for (; isdigit((unsigned char)*r->p) || (*r->p == '.' && !dp); r->p++) {
        if (*r->p == '.') {
            dp = true;
            continue;
        }
        if (!dp)
            dweight++;
        else
            dscale++;
        if (*r->p != '0') {
            if (first < 0)
                first = k;
            last = k;
        }
        k++;
    }
    if (*r->p == 'e' || *r->p == 'E') {
        char *end;
        long e = strtol(r->p + 1, &end, 10);    /* saturates, then refused below */
        r->p = end;
        if (e >= INT_MAX / 2 || e <= -(INT_MAX / 2)) {
            r->range = true;
            return 0;
        }
        dweight += e;
        dscale -= e;
        if (dscale < 0)
            dscale = 0;
    }
    long n = 0, weight = 0;
    if (first >= 0) {
        /* decimal digit k stands for 10^(dweight - k); base-10000 digit g
         * holds the exponents 4g..4g+3 */
        weight = floor4(dweight - first);
        n = weight - floor4(dweight - last) + 1;
    }
    /* NUMERIC_DSCALE_MAX and NUMERIC_WEIGHT_MAX (a weight below the
     * minimum needs a scale above the maximum) */
    if (dscale > 0x3FFF || weight > 32767)
        r->range = true;
    bool shrt = dscale <= 0x3F && weight <= 63 && weight >= -64;
    return (size_t)((shrt ? 6 : 8) + 2 * n);
}

static void node_free(struct node *v)
{
    for (size_t i = 0; i < v->n; i++) {
        node_free(&v->kids[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->kids);
    free(v->keys);
    free(v->keylens);
}

static int value(struct rd *r, struct node *v);

/* Grow the arrays of v to hold one more element. */
static int push(struct rd *r, struct node *v, size_t *cap, bool obj)
{
    if (v->n < *cap)
        return 0;
    size_t c = *cap ? 2 * *cap : 4;
    struct node *k = realloc(v->kids, c * sizeof *k);
    if (k)
        v->kids = k;
    if (obj) {
        char **ks = realloc(v->keys, c * sizeof *ks);
        if (ks)
            v->keys = ks;
        size_t *ls = realloc(v->keylens, c * sizeof *ls);
        if (ls)
            v->keylens = ls;
        if (!ks || !ls)
            k = NULL;
    }
    if (!k) {
        r->oom = true;
        return -1;
    }
    *cap = c;
    return 0;
}

static int container(struct rd *r, struct node *v, bool obj)
{
    size_t cap = 0;
    char close = obj ? '}' : ']';

    v->kind = obj ? K_OBJ : K_ARR;
    r->p++;
    ws(r);
    while (*r->p && *r->p != close) {
        if (push(r, v, &cap, obj) < 0)
            return -1;
        memset(&v->kids[v->n], 0, sizeof v->kids[v->n]);
        if (obj) {
            char *key = malloc(strlen(r->p) + 1);
            if (!key) {
                r->oom = true;
                return -1;
            }
            v->keys[v->n] = key;
            v->keylens[v->n] = string(r, key);
            ws(r);
            if (*r->p == ':')
                r->p++;
            ws(r);
        }
        v->n++;
        if (value(r, &v->kids[v->n - 1]) < 0)
            return -1;
        ws(r);
        if (*r->p == ',')
            r->p++;
        ws(r);
    }
    if (*r->p == close)
        r->p++;
    return 0;
}

static int value(struct rd *r, struct node *v)
{
    memset(v, 0, sizeof *v);
    switch (*r->p) {
    case '{':
        return container(r, v, true);
    case '[':
        return container(r, v, false);
    case '"':
        v->kind = K_STR;
        v->bytes = string(r, NULL);
        return 0;
    case 't':
    case 'f':
        v->kind = K_BOOL;
        r->p += *r->p == 't' ? 4 : 5;
        return 0;
    case 'n':
        v->kind = K_NULL;
        r->p += 4;
        return 0;
    default:
        v->kind = K_NUM;
        v->bytes = number(r);
        return 0;
    }
}

/* jsonb's key order: shorter first, then by bytes; of equal keys the later
 * in the text first (the one kept). An index array is sorted, so that the
 * input position breaks ties. */
struct keyref {
    const char *key;
    size_t len, pos;
};

static int key_cmp(const void *a, const void *b)
{
    const struct keyref *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    int c = memcmp(x->key, y->key, x->len);
    if (c)
        return c;
    return x->pos > y->pos ? -1 : 1;
}

static int64_t align4(int64_t n)
{
    return (n + 3) & ~(int64_t)3;
}

static int layout(struct rd *r, const struct node *v, int64_t *len);

static int layout_elem(struct rd *r, const struct node *v, int64_t *len)
{
    switch (v->kind) {
    case K_NULL:
    case K_BOOL:
        return 0;
    case K_STR:
        *len += (int64_t)v->bytes;
        return 0;
    case K_NUM:
        *len = align4(*len) + (int64_t)v->bytes;
        return 0;
    default:
        return layout(r, v, len);
    }
}

/* A container at *len: pad, header, JEntries, then its data. */
static int layout(struct rd *r, const struct node *v, int64_t *len)
{
    *len = align4(*len) + 4;
    if (v->kind == K_ARR) {
        *len += 4 * (int64_t)v->n;
        for (size_t i = 0; i < v->n; i++)
            if (layout_elem(r, &v->kids[i], len) < 0)
                return -1;
        return 0;
    }
    struct keyref *ks = malloc((v->n + 1) * sizeof *ks);
    if (!ks) {
        r->oom = true;
        return -1;
    }
    for (size_t i = 0; i < v->n; i++)
        ks[i] = (struct keyref){ v->keys[i], v->keylens[i], i };
    qsort(ks, v->n, sizeof *ks, key_cmp);
    size_t m = 0;   /* the pairs kept: the first of each run of equal keys */
    for (size_t i = 0; i < v->n; i++)
        if (m == 0 || ks[m - 1].len != ks[i].len || memcmp(ks[m - 1].key, ks[i].key, ks[i].len))
            ks[m++] = ks[i];
    *len += 8 * (int64_t)m;
    for (size_t i = 0; i < m; i++)
        *len += (int64_t)ks[i].len;
    int rc = 0;
    for (size_t i = 0; i < m && rc == 0; i++)
        rc = layout_elem(r, &v->kids[ks[i].pos], len);
    free(ks);
    return rc;
}

int cfg_jsonb_size(const char *s, int64_t *out, char *err, size_t errlen)
{
    struct rd r = { .p = s };
    struct node root;
    int64_t len = 4;    /* the varlena header */
    int rc;

    if (cfg_json_check(s, err, errlen) < 0)
        return -1;
    ws(&r);
    rc = value(&r, &root);
    if (rc == 0) {
        if (root.kind == K_ARR || root.kind == K_OBJ) {
            rc = layout(&r, &root, &len);
        } else {
            struct node wrap = { .kind = K_ARR, .kids = &root, .n = 1 };
            rc = layout(&r, &wrap, &len);
        }
    }
    node_free(&root);
    if (rc < 0 || r.oom) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (r.surrogate) {
        snprintf(err, errlen, "a \\u escape is half of a surrogate pair (PostgreSQL's jsonb "
                 "refuses it: write the pair, or the character itself)");
        return -1;
    }
    if (r.range) {
        snprintf(err, errlen, "a number is out of the range of PostgreSQL's numeric (it "
                 "refuses the payload: \"value overflows numeric format\")");
        return -1;
    }
    *out = len;
    return 0;
}
