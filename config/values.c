/* Values of pool.ini keys (values.h): one function per value kind, none
 * per key, so a new key of a known kind needs no code. Handlers are checked
 * for their shape here (kind word, word count, a plugin symbol that is a C
 * identifier); whether the command or plugin exists is the pool's check. */
#include "values.h"
#include "cron.h"
#include "duration.h"
#include "payload.h"
#include "tz.h"
#include "words.h"
#include "listen.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct handler_kind {
    const char *word;
    enum pgq_handler_kind kind;
    size_t min_words, max_words;
    const char *usage;      /* said when the word count is wrong */
} handler_kinds[] = {
    { "exec", PGQ_HANDLER_EXEC, 1, (size_t)-1, "exec needs a command (exec CMD ARGS...)" },
    { "plugin", PGQ_HANDLER_PLUGIN, 2, 2, "plugin needs exactly a path and a symbol (plugin PATH SYMBOL)" },
    { "callback", PGQ_HANDLER_CALLBACK, 1, 1, "callback needs exactly one name (callback NAME)" },
};
#define NHANDLER_KINDS (sizeof handler_kinds / sizeof handler_kinds[0])
#define HANDLER_HINT "(use exec CMD ARGS..., plugin PATH SYMBOL or callback NAME)"

static bool is_c_ident(const char *s)
{
    if (!isalpha((unsigned char)*s) && *s != '_')
        return false;
    for (s++; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_')
            return false;
    return true;
}

void cfg_value_free(const struct cfg_key *k, void *base)
{
    char *p = (char *)base + k->off;

    switch (k->kind) {
    case V_STRING:
    case V_NAME:
    case V_LISTEN:
    case V_SCHEDULE:
    case V_JSON:
        free(*(char **)p);
        *(char **)p = NULL;
        break;
    case V_INT:
    case V_DURATION:
    case V_POOLER:
    case V_SIZE:
        break;
    case V_RATE:
        *(pgq_cfg_rate *)p = (pgq_cfg_rate){ 0, 0 };
        break;
    case V_LIST:
        cfg_strv_free(*(char ***)p, *(size_t *)((char *)base + k->count_off));
        *(char ***)p = NULL;
        *(size_t *)((char *)base + k->count_off) = 0;
        break;
    case V_HANDLER: {
        pgq_cfg_type *t = base;
        free(t->handler);
        cfg_strv_free(t->argv, t->argc);
        t->handler_kind = PGQ_HANDLER_NONE;
        t->handler = NULL;
        t->argv = NULL;
        t->argc = 0;
        break;
    }
    case V_ZONE:
        tz_free(*(pgq_tz **)p);
        *(pgq_tz **)p = NULL;
        break;
    case V_REQUIRE:
        pgq_require_free(*(pgq_cfg_require **)p, *(size_t *)((char *)base + k->count_off));
        *(pgq_cfg_require **)p = NULL;
        *(size_t *)((char *)base + k->count_off) = 0;
        break;
    }
}

void cfg_section_free(enum sec_kind sec, void *base)
{
    size_t i;

    for (i = 0; i < cfg_nkeys; i++)
        if (cfg_keys[i].sec == sec)
            cfg_value_free(&cfg_keys[i], base);
}

static int set_list(const struct cfg_key *k, void *base, const char *v, char *err, size_t errlen)
{
    char **items = NULL;
    size_t n = 0, cap = 1, i;
    const char *p;

    for (p = v; *p; p++)
        cap += *p == ',';
    if ((items = calloc(cap, sizeof *items)) == NULL)
        goto oom;
    for (p = v;;) {
        const char *comma = strchr(p, ','), *b = p, *e = comma ? comma : p + strlen(p);

        cfg_trim(&b, &e);
        if (b == e) {
            snprintf(err, errlen, "\"%s\": empty item", v);
            goto fail;
        }
        for (i = 0; i < n; i++) {
            if (strlen(items[i]) == (size_t)(e - b) && memcmp(items[i], b, (size_t)(e - b)) == 0) {
                snprintf(err, errlen, "\"%s\": duplicate item \"%s\"", v, items[i]);
                goto fail;
            }
        }
        if ((items[n] = strndup(b, (size_t)(e - b))) == NULL)
            goto oom;
        if (pgq_queue_name_check(items[n++], err, errlen) < 0)
            goto fail;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    cfg_value_free(k, base);
    *(char ***)((char *)base + k->off) = items;
    *(size_t *)((char *)base + k->count_off) = n;
    return 0;

oom:
    snprintf(err, errlen, "out of memory");
fail:
    cfg_strv_free(items, n);
    return -1;
}

static int set_handler(const struct cfg_key *k, pgq_cfg_type *t, const char *v, char *err, size_t errlen)
{
    const struct handler_kind *hk = NULL;
    const char *word_end = v, *rest;
    char **argv = NULL, *handler = NULL;
    size_t argc = 0, i;

    while (*word_end && !isspace((unsigned char)*word_end))
        word_end++;
    for (i = 0; i < NHANDLER_KINDS; i++)
        if (strlen(handler_kinds[i].word) == (size_t)(word_end - v) &&
            memcmp(handler_kinds[i].word, v, (size_t)(word_end - v)) == 0)
            hk = &handler_kinds[i];
    if (hk == NULL) {
        snprintf(err, errlen, "\"%s\": unknown handler kind \"%.*s\" " HANDLER_HINT, v,
                 (int)(word_end - v), v);
        return -1;
    }
    rest = word_end;
    while (isspace((unsigned char)*rest))
        rest++;
    {
        /* Quote the value in front of any message from the word splitter. */
        char msg[256];
        if (cfg_split_words(rest, &argv, &argc, msg, sizeof msg) < 0) {
            snprintf(err, errlen, "\"%s\": %s", v, msg);
            return -1;
        }
    }
    if (argc < hk->min_words || argc > hk->max_words) {
        snprintf(err, errlen, "\"%s\": %s", v, hk->usage);
        goto fail;
    }
    if (hk->kind == PGQ_HANDLER_PLUGIN && !is_c_ident(argv[1])) {
        snprintf(err, errlen, "\"%s\": symbol \"%s\" is not a C identifier", v, argv[1]);
        goto fail;
    }
    if ((handler = strdup(rest)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    cfg_value_free(k, t);
    t->handler_kind = hk->kind;
    t->handler = handler;
    t->argv = argv;
    t->argc = argc;
    return 0;

fail:
    cfg_strv_free(argv, argc);
    return -1;
}

/* "64KiB", "1MiB", "1500", "0" (units B, KiB, MiB, GiB, any case, blanks
 * between number and unit allowed; KB, MB and GB are taken as the same
 * 1024-based units, since that is what people mean by them in a config
 * file, and pool.ini accepted them before KiB was). 0, or -1 with err. */
#define SIZE_UNITS "B, KiB, MiB or GiB"
static int size_parse(const char *v, int64_t *out, char *err, size_t errlen)
{
    static const struct { const char *unit; int64_t mul; } units[] = {
        { "", 1 }, { "b", 1 }, { "kib", 1024 }, { "kb", 1024 }, { "mib", 1024 * 1024 },
        { "mb", 1024 * 1024 }, { "gib", 1024 * 1024 * 1024 }, { "gb", 1024 * 1024 * 1024 },
    };
    const char *p = v;
    int64_t n = 0;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p < '0' || *p > '9') {
        snprintf(err, errlen, "\"%s\" is not a size (bytes, or a number with " SIZE_UNITS ")", v);
        return -1;
    }
    for (; *p >= '0' && *p <= '9'; p++) {
        if (n > (INT64_MAX - 9) / 10) {
            snprintf(err, errlen, "\"%s\" is too large", v);
            return -1;
        }
        n = n * 10 + (*p - '0');
    }
    while (*p == ' ' || *p == '\t')
        p++;
    char unit[8] = "";
    size_t ul = 0;
    while (*p && *p != ' ' && *p != '\t' && ul < sizeof unit - 1)
        unit[ul++] = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p), p++;
    unit[ul] = '\0';
    while (*p == ' ' || *p == '\t')
        p++;
    for (size_t i = 0; *p == '\0' && i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(unit, units[i].unit) == 0) {
            if (n > INT64_MAX / units[i].mul) {
                snprintf(err, errlen, "\"%s\" is too large", v);
                return -1;
            }
            *out = n * units[i].mul;
            return 0;
        }
    }
    snprintf(err, errlen, "\"%s\": unknown size unit (use " SIZE_UNITS ")", v);
    return -1;
}

char *cfg_size_format(int64_t bytes, char *buf, size_t len)
{
    if (bytes > 0 && bytes % (1024 * 1024 * 1024) == 0)
        snprintf(buf, len, "%lldGiB", (long long)(bytes / (1024 * 1024 * 1024)));
    else if (bytes > 0 && bytes % (1024 * 1024) == 0)
        snprintf(buf, len, "%lldMiB", (long long)(bytes / (1024 * 1024)));
    else if (bytes > 0 && bytes % 1024 == 0)
        snprintf(buf, len, "%lldKiB", (long long)(bytes / 1024));
    else
        snprintf(buf, len, "%lld", (long long)bytes);
    return buf;
}

int cfg_value_set(const struct cfg_key *k, void *base, const char *v, char *err, size_t errlen)
{
    char *p = (char *)base + k->off;

    if (*v == '\0' && k->kind != V_REQUIRE) {
        snprintf(err, errlen, "empty value");
        return -1;
    }
    switch (k->kind) {
    case V_STRING:
    case V_NAME:
    case V_LISTEN:
    case V_SCHEDULE:
    case V_JSON: {
        char *s;
        if (k->kind == V_NAME && pgq_queue_name_check(v, err, errlen) < 0)
            return -1;
        if (k->kind == V_LISTEN) {
            struct sockaddr_storage ss;
            socklen_t len;
            if (cfg_listen_parse(v, &ss, &len, err, errlen) < 0)
                return -1;
        }
        if (k->kind == V_JSON && cfg_json_check(v, err, errlen) < 0)
            return -1;
        if (k->kind == V_SCHEDULE) {
            /* the syntax now, at its line; the zone is applied when the section closes */
            pgq_cron *c;
            if (pgq_cron_parse(v, NULL, &c, err, errlen) < 0)
                return -1;
            pgq_cron_free(c);
        }
        if ((s = strdup(v)) == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        cfg_value_free(k, base);
        *(char **)p = s;
        return 0;
    }
    case V_ZONE: {
        pgq_tz *z;
        if (tz_load(v, &z, err, errlen) < 0)
            return -1;
        cfg_value_free(k, base);
        *(pgq_tz **)p = z;
        return 0;
    }
    case V_POOLER: {
        pgq_pooler m;
        if (pgq_pooler_parse(v, &m, err, errlen) < 0)
            return -1;
        *(pgq_pooler *)p = m;
        return 0;
    }
    case V_INT: {
        const char *q = v + (*v == '-' || *v == '+');
        long long x;
        if (*q == '\0' || strspn(q, "0123456789") != strlen(q)) {
            snprintf(err, errlen, "\"%s\" is not a whole number", v);
            return -1;
        }
        x = strtoll(v, NULL, 10);   /* clamps on overflow, which the bounds then catch */
        if (x < k->min || x > k->max) {
            snprintf(err, errlen, "\"%s\" is out of range (%lld..%lld)", v,
                     (long long)k->min, (long long)k->max);
            return -1;
        }
        *(int *)p = (int)x;
        return 0;
    }
    case V_DURATION: {
        int64_t x;
        char lo[32], hi[32];
        if (pgq_duration_parse(v, &x, err, errlen) < 0)
            return -1;
        if (x < k->min || x > k->max) {
            snprintf(err, errlen, "\"%s\" is out of range (%s..%s)", v,
                     pgq_duration_format(k->min, lo, sizeof lo),
                     pgq_duration_format(k->max, hi, sizeof hi));
            return -1;
        }
        *(int64_t *)p = x;
        return 0;
    }
    case V_RATE: {
        const char *slash = strchr(v, '/');
        char *end;
        long long n;
        int64_t per;
        if (!slash || slash == v || strspn(v, "0123456789") != (size_t)(slash - v)) {
            snprintf(err, errlen, "\"%s\" is not N/DURATION (e.g. 10/1s, 600/1m)", v);
            return -1;
        }
        n = strtoll(v, &end, 10);   /* clamps on overflow, which the bounds then catch */
        if (n < k->min || n > k->max) {
            snprintf(err, errlen, "\"%s\": %lld starts is out of range (%lld..%lld)", v, n,
                     (long long)k->min, (long long)k->max);
            return -1;
        }
        char why[200];
        if (pgq_duration_parse(slash + 1, &per, why, sizeof why) < 0) {
            snprintf(err, errlen, "\"%s\": %s", v, why);
            return -1;
        }
        if (per < 1 || per > 7 * 24 * 3600 * 1000LL) {
            snprintf(err, errlen, "\"%s\": the window must be 1ms..7d", v);
            return -1;
        }
        *(pgq_cfg_rate *)p = (pgq_cfg_rate){ (int)n, per };
        return 0;
    }
    case V_SIZE: {
        int64_t x;
        char lo[32], hi[32];
        if (size_parse(v, &x, err, errlen) < 0)
            return -1;
        if (x < k->min || x > k->max) {
            snprintf(err, errlen, "\"%s\" is out of range (%s..%s)", v,
                     cfg_size_format(k->min, lo, sizeof lo), cfg_size_format(k->max, hi, sizeof hi));
            return -1;
        }
        *(int64_t *)p = x;
        return 0;
    }
    case V_LIST:
        return set_list(k, base, v, err, errlen);
    case V_HANDLER:
        return set_handler(k, base, v, err, errlen);
    case V_REQUIRE: {
        pgq_cfg_require *r;
        size_t n;
        if (pgq_require_parse(v, &r, &n, err, errlen) < 0)
            return -1;
        cfg_value_free(k, base);
        *(pgq_cfg_require **)p = r;
        *(size_t *)((char *)base + k->count_off) = n;
        return 0;
    }
    }
    snprintf(err, errlen, "internal error: unknown value kind");
    return -1;
}

int64_t cfg_value_num(const struct cfg_key *k, const void *base)
{
    const char *p = (const char *)base + k->off;

    return k->kind == V_INT ? *(const int *)p : *(const int64_t *)p;
}

char *cfg_value_format(const struct cfg_key *k, const void *base, char *buf, size_t len)
{
    if (k->kind == V_DURATION)
        return pgq_duration_format(cfg_value_num(k, base), buf, len);
    if (k->kind == V_SIZE)
        return cfg_size_format(cfg_value_num(k, base), buf, len);
    snprintf(buf, len, "%lld", (long long)cfg_value_num(k, base));
    return buf;
}
