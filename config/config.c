/*
 * config.c -- loading and validating pool.ini.
 *
 * One table, keys[], lists every key with its section, value kind, place in
 * the structs, default, bounds and documentation. Parsing, defaults, error
 * messages and the generated reference all read that table, so adding a key
 * is adding one entry; value kinds (integer, duration, list, ...) have code,
 * individual keys do not. Cross-field checks (heartbeat < lease_ttl, ...) are
 * a second, smaller table of rules.
 *
 * inih splits "key = value" lines and strips inline comments, but it is fed
 * through our own reader, read_line(), because Debian's inih passes no line
 * numbers to the handler and silently cuts long lines and long section names.
 * The reader reads whole lines with getline and counts them, rejects lines
 * longer than inih's buffer and lines inih would call syntax errors (with a
 * precise message), and strips leading whitespace so indented keys work and
 * inih never sees a "continuation line". It also parses section headers
 * itself: a header closes the previous section (required keys and rules are
 * checked there, when all its keys are known) and opens the next one (its
 * defaults are applied from the table). The key handler, on_key(), therefore
 * sees keys in file order and takes the line number and the real section from
 * the shared loader state. The first error wins: it is recorded once and the
 * reader then reports end of file, so inih stops.
 */
#include "pgq_config.h"
#include "duration.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

enum sec_kind { SEC_NONE, SEC_DATABASE, SEC_POOL, SEC_JOB };

enum val_kind {
    V_STRING,   /* any non-empty text (char *) */
    V_NAME,     /* a queue name, pgq_queue_name_check's rule (char *) */
    V_INT,      /* whole number in [min, max] (int) */
    V_DURATION, /* duration in [min, max] milliseconds (int64_t) */
    V_LIST,     /* comma-separated queue names (char ** plus size_t count) */
    V_HANDLER,  /* "exec ...", "plugin ..." or "callback ..." (the handler fields of pgq_cfg_type) */
    V_REQUIRE,  /* payload contract (pgq_cfg_require * plus size_t count) */
    V_POOLER,   /* transaction, session or none (pgq_pooler) */
};

/* Job type names (queue names follow pgq_queue_name_check). */
#define NAME_MAX_LEN 100
#define NAME_RULE "must be 1..100 characters without whitespace"
#define NO_OFF ((size_t)-1)
#define F_REQUIRED 1u

#define MS_S 1000LL
#define MS_M (60 * MS_S)
#define MS_H (60 * MS_M)
#define MS_D (24 * MS_H)

struct key {
    enum sec_kind sec;
    const char *name;
    enum val_kind kind;
    size_t off;         /* the value, in pgq_cfg ([database], [pool]) or pgq_cfg_type ([job]) */
    size_t count_off;   /* V_LIST, V_REQUIRE: the element count */
    size_t line_off;    /* an int that records the line the key was set on, or NO_OFF */
    const char *def;    /* default, as it would be written in the file; NULL = unset */
    int64_t min, max;   /* V_INT, V_DURATION: inclusive bounds */
    unsigned flags;
    const char *doc;
};

#define CFG(f) offsetof(pgq_cfg, f)
#define TYP(f) offsetof(pgq_cfg_type, f)

static const struct key keys[] = {
    { .sec = SEC_DATABASE, .name = "url", .kind = V_STRING, .off = CFG(db_url),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = NULL,
      .doc = "PostgreSQL connection URL. If absent: $DATABASE_URL; --db on the command line beats both." },
    { .sec = SEC_DATABASE, .name = "pooler", .kind = V_POOLER, .off = CFG(pooler),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "none",
      .doc = "What url points at: none (PostgreSQL itself), session or transaction (a PgBouncer "
             "pool_mode). transaction: no prepared statements or session settings, and no "
             "LISTEN through it (see listen_url)." },
    { .sec = SEC_DATABASE, .name = "listen_url", .kind = V_STRING, .off = CFG(listen_url),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = NULL,
      .doc = "With pooler = transaction: a direct URL (PostgreSQL itself) for the pool's one "
             "LISTEN connection, so new jobs wake workers at once. Absent: workers poll." },

    { .sec = SEC_POOL, .name = "workers", .kind = V_INT, .off = CFG(workers),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "8", .min = 1, .max = 256,
      .doc = "Worker threads, one database connection each." },
    { .sec = SEC_POOL, .name = "batch", .kind = V_INT, .off = CFG(batch),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = NULL, .min = 1, .max = 1000,
      .doc = "Jobs claimed and acknowledged per statement; each worker still runs one job at a "
             "time. Absent (the default): adaptive -- a claim takes a job for every idle worker "
             "plus, when jobs are short, a small buffer ahead (none for long jobs), and "
             "successes of several workers are recorded together; an idle pool starts a new "
             "job at once. 1: strict -- each worker completes its job and claims the next in "
             "one transaction: no job is held in a buffer and a success is committed before "
             "the worker moves on, at one commit per job (about a fifth of the adaptive "
             "throughput on short jobs). N > 1: always up to N per claim and per ack "
             "statement, for many short jobs. Buffered and done-not-recorded jobs keep "
             "renewed leases; a crash makes them run again, as any crash does." },
    { .sec = SEC_POOL, .name = "queues", .kind = V_LIST, .off = CFG(queues),
      .count_off = CFG(nqueues), .line_off = NO_OFF, .def = "default",
      .doc = "Queues this pool claims from, comma-separated." },
    { .sec = SEC_POOL, .name = "lease_ttl", .kind = V_DURATION, .off = CFG(lease_ttl_ms),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "30s", .min = MS_S, .max = MS_D,
      .doc = "How long a claimed job stays leased without a heartbeat; "
             "a job whose lease expires is retried by any live pool." },
    { .sec = SEC_POOL, .name = "heartbeat", .kind = V_DURATION, .off = CFG(heartbeat_ms),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "10s", .min = 100, .max = MS_H,
      .doc = "How often the leases of in-flight jobs are renewed; must be shorter than lease_ttl." },
    { .sec = SEC_POOL, .name = "poll", .kind = V_DURATION, .off = CFG(poll_ms),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "1s", .min = 10, .max = MS_H,
      .doc = "Fallback poll for scheduled jobs and retries (new jobs wake a worker at once via LISTEN/NOTIFY)." },
    { .sec = SEC_POOL, .name = "shutdown_timeout", .kind = V_DURATION, .off = CFG(shutdown_timeout_ms),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "30s", .min = 0, .max = MS_H,
      .doc = "On SIGTERM/SIGINT, how long in-flight jobs may finish before their leases are released." },
    { .sec = SEC_POOL, .name = "keep_done", .kind = V_DURATION, .off = CFG(keep_done_ms),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "1d", .min = 0, .max = 3650 * MS_D,
      .doc = "Retention of done jobs; 0 deletes them at once." },
    { .sec = SEC_POOL, .name = "keep_dead", .kind = V_DURATION, .off = CFG(keep_dead_ms),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "30d", .min = 0, .max = 3650 * MS_D,
      .doc = "Retention of dead jobs (the dead-letter list)." },

    { .sec = SEC_JOB, .name = "queue", .kind = V_NAME, .off = TYP(queue),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "default",
      .doc = "Queue that jobs of this type go to unless the producer names another." },
    { .sec = SEC_JOB, .name = "handler", .kind = V_HANDLER, .off = TYP(handler_kind),
      .count_off = NO_OFF, .line_off = TYP(handler_line), .def = NULL, .flags = F_REQUIRED,
      .doc = "What runs a job: `exec CMD ARGS...` (a command, payload on stdin; '...', \"...\" "
             "and backslash quoting), `plugin PATH SYMBOL` (a function in a shared object) or "
             "`callback NAME` (a C function registered by an embedding program)." },
    { .sec = SEC_JOB, .name = "timeout", .kind = V_DURATION, .off = TYP(timeout_ms),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "60s", .min = 100, .max = 7 * MS_D,
      .doc = "Longest one attempt may run; then it fails (an exec handler is killed)." },
    { .sec = SEC_JOB, .name = "max_retries", .kind = V_INT, .off = TYP(max_retries),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "5", .min = 0, .max = 1000,
      .doc = "Retries after a failed attempt: N allows N+1 attempts, 0 means dead after the first failure." },
    { .sec = SEC_JOB, .name = "backoff_base", .kind = V_DURATION, .off = TYP(backoff_base_ms),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "1s", .min = 0, .max = MS_D,
      .doc = "Delay before the first retry; it doubles with each attempt, with jitter." },
    { .sec = SEC_JOB, .name = "backoff_max", .kind = V_DURATION, .off = TYP(backoff_max_ms),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "1h", .min = 0, .max = 7 * MS_D,
      .doc = "Upper bound of the retry delay; must not be less than backoff_base." },
    { .sec = SEC_JOB, .name = "priority", .kind = V_INT, .off = TYP(priority),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "0", .min = -1000, .max = 1000,
      .doc = "Default priority of jobs of this type; lower runs first." },
    { .sec = SEC_JOB, .name = "require", .kind = V_REQUIRE, .off = TYP(require),
      .count_off = TYP(nrequire), .line_off = NO_OFF, .def = NULL,
      .doc = "Payload contract: required keys and their JSON types, e.g. `to:string, subject:string`; "
             "types: string, number, boolean, object, array, null." },
};
#define NKEYS (sizeof keys / sizeof keys[0])

/* Cross-field rules: key a must be less than key b (or equal, unless strict). */
static const struct rule {
    enum sec_kind sec;
    const char *a, *b;
    bool strict;
    const char *a_says, *b_says;    /* "a: VALUE a_says b (VALUE)" and the other way round */
} rules[] = {
    { SEC_POOL, "heartbeat", "lease_ttl", true, "must be shorter than", "must be longer than" },
    { SEC_JOB, "backoff_base", "backoff_max", false, "must not exceed", "must not be less than" },
};
#define NRULES (sizeof rules / sizeof rules[0])

static const char *const sec_title[] = { "", "[database]", "[pool]", "[job NAME]" };
static const char *const sec_noun[] = { "", "[database] section", "[pool] section", "job type" };
static const char *const kind_title[] = {
    [V_STRING] = "string", [V_NAME] = "name", [V_INT] = "integer", [V_DURATION] = "duration",
    [V_LIST] = "list of names", [V_HANDLER] = "handler", [V_REQUIRE] = "payload contract",
    [V_POOLER] = "pooler",
};

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

static const char *const json_types[] = { "string", "number", "boolean", "object", "array", "null" };
#define NJSON_TYPES (sizeof json_types / sizeof json_types[0])
#define JSON_TYPES_HINT "(use string, number, boolean, object, array or null)"

/* Everything the reader and the key handler share while one file is read. */
struct loader {
    const char *path;
    FILE *f;
    char *line;                 /* getline buffer */
    size_t cap;
    int lineno;
    pgq_cfg *cfg;
    enum sec_kind sec;          /* the open section, SEC_NONE before the first */
    size_t job;                 /* SEC_JOB: its index in cfg->types */
    int sec_line;
    char label[NAME_MAX_LEN + 8];   /* "[pool]", "[job NAME]": the section as messages show it */
    int key_line[NKEYS];        /* line each key of the open section was set on, 0 = not set */
    int database_line, pool_line;   /* header lines, to refuse a repeated section */
    bool failed;
    int err_line;
    char *err;
    size_t errlen;
};

/* ---- small helpers ---- */

static void trim(const char **b, const char **e)
{
    while (*b < *e && isspace((unsigned char)**b))
        (*b)++;
    while (*e > *b && isspace((unsigned char)(*e)[-1]))
        (*e)--;
}

static bool valid_name(const char *s, size_t n)
{
    size_t i;

    if (n < 1 || n > NAME_MAX_LEN)
        return false;
    for (i = 0; i < n; i++)
        if (isspace((unsigned char)s[i]) || iscntrl((unsigned char)s[i]))
            return false;
    return true;
}

static bool is_c_ident(const char *s)
{
    if (!isalpha((unsigned char)*s) && *s != '_')
        return false;
    for (s++; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_')
            return false;
    return true;
}

static void free_strv(char **v, size_t n)
{
    size_t i;

    if (v == NULL)
        return;
    for (i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* The first of chars, the start of an inline comment (';' after whitespace)
 * or the end of s: the same scan inih does, so we agree on what a line is. */
static const char *find_or_comment(const char *s, const char *chars)
{
    bool was_space = false;

    while (*s && !strchr(chars, *s) && !(was_space && *s == ';')) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    return s;
}

/* Levenshtein distance, or 3 when it is certainly more than 2 (all that
 * matters for "did you mean"). */
static int edit_distance(const char *a, const char *b)
{
    int row[64];
    size_t la = strlen(a), lb = strlen(b), i, j;

    if (lb >= sizeof row / sizeof row[0] || (la > lb ? la - lb : lb - la) > 2)
        return 3;
    for (j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static const struct key *find_key(enum sec_kind sec, const char *name)
{
    size_t i;

    for (i = 0; i < NKEYS; i++)
        if (keys[i].sec == sec && strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

/* Split s into words like a shell without expansions: whitespace separates,
 * '...' is literal, "..." honours \" \\ \$ \`, and a backslash outside quotes
 * escapes the next character. *argv is NULL-terminated, even when empty. */
static int split_words(const char *s, char ***argv, size_t *argc, char *err, size_t errlen)
{
    char **v = NULL, *w = NULL;
    size_t n = 0, cap = 0, wl;
    const char *p = s;

    if ((w = malloc(strlen(s) + 1)) == NULL)
        goto oom;
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (n + 1 >= cap) {
            char **nv;
            cap = cap ? cap * 2 : 4;
            if ((nv = realloc(v, cap * sizeof *v)) == NULL)
                goto oom;
            v = nv;
        }
        v[n] = NULL;
        if (*p == '\0')
            break;
        wl = 0;
        while (*p && !isspace((unsigned char)*p)) {
            if (*p == '\'') {
                for (p++; *p && *p != '\''; p++)
                    w[wl++] = *p;
                if (*p == '\0') {
                    snprintf(err, errlen, "unterminated ' quote");
                    goto fail;
                }
                p++;
            } else if (*p == '"') {
                for (p++; *p && *p != '"'; p++) {
                    if (*p == '\\' && p[1] && strchr("\"\\$`", p[1]))
                        p++;
                    w[wl++] = *p;
                }
                if (*p == '\0') {
                    snprintf(err, errlen, "unterminated \" quote");
                    goto fail;
                }
                p++;
            } else if (*p == '\\') {
                if (p[1] == '\0') {
                    snprintf(err, errlen, "trailing backslash");
                    goto fail;
                }
                w[wl++] = p[1];
                p += 2;
            } else {
                w[wl++] = *p++;
            }
        }
        if ((v[n] = strndup(w, wl)) == NULL)
            goto oom;
        n++;
    }
    free(w);
    *argv = v;
    *argc = n;
    return 0;

oom:
    snprintf(err, errlen, "out of memory");
fail:
    free(w);
    free_strv(v, n);
    return -1;
}

/* ---- values: one function per value kind, none per key ---- */

static void free_value(const struct key *k, void *base)
{
    char *p = (char *)base + k->off;

    switch (k->kind) {
    case V_STRING:
    case V_NAME:
        free(*(char **)p);
        *(char **)p = NULL;
        break;
    case V_INT:
    case V_DURATION:
    case V_POOLER:
        break;
    case V_LIST:
        free_strv(*(char ***)p, *(size_t *)((char *)base + k->count_off));
        *(char ***)p = NULL;
        *(size_t *)((char *)base + k->count_off) = 0;
        break;
    case V_HANDLER: {
        pgq_cfg_type *t = base;
        free(t->handler);
        free_strv(t->argv, t->argc);
        t->handler_kind = PGQ_HANDLER_NONE;
        t->handler = NULL;
        t->argv = NULL;
        t->argc = 0;
        break;
    }
    case V_REQUIRE:
        pgq_require_free(*(pgq_cfg_require **)p, *(size_t *)((char *)base + k->count_off));
        *(pgq_cfg_require **)p = NULL;
        *(size_t *)((char *)base + k->count_off) = 0;
        break;
    }
}

static void free_section(enum sec_kind sec, void *base)
{
    size_t i;

    for (i = 0; i < NKEYS; i++)
        if (keys[i].sec == sec)
            free_value(&keys[i], base);
}

static int set_list(const struct key *k, void *base, const char *v, char *err, size_t errlen)
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

        trim(&b, &e);
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
    free_value(k, base);
    *(char ***)((char *)base + k->off) = items;
    *(size_t *)((char *)base + k->count_off) = n;
    return 0;

oom:
    snprintf(err, errlen, "out of memory");
fail:
    free_strv(items, n);
    return -1;
}

static int set_handler(const struct key *k, pgq_cfg_type *t, const char *v, char *err, size_t errlen)
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
        if (split_words(rest, &argv, &argc, msg, sizeof msg) < 0) {
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
    free_value(k, t);
    t->handler_kind = hk->kind;
    t->handler = handler;
    t->argv = argv;
    t->argc = argc;
    return 0;

fail:
    free_strv(argv, argc);
    return -1;
}

/* Parse v as the value of k and store it under base (a pgq_cfg or a
 * pgq_cfg_type). On error the old value stays and err says what is wrong
 * with v, without file, line or key (the caller adds them). */
static int set_value(const struct key *k, void *base, const char *v, char *err, size_t errlen)
{
    char *p = (char *)base + k->off;

    if (*v == '\0' && k->kind != V_REQUIRE) {
        snprintf(err, errlen, "empty value");
        return -1;
    }
    switch (k->kind) {
    case V_STRING:
    case V_NAME: {
        char *s;
        if (k->kind == V_NAME && pgq_queue_name_check(v, err, errlen) < 0)
            return -1;
        if ((s = strdup(v)) == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        free_value(k, base);
        *(char **)p = s;
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
    case V_LIST:
        return set_list(k, base, v, err, errlen);
    case V_HANDLER:
        return set_handler(k, base, v, err, errlen);
    case V_REQUIRE: {
        pgq_cfg_require *r;
        size_t n;
        if (pgq_require_parse(v, &r, &n, err, errlen) < 0)
            return -1;
        free_value(k, base);
        *(pgq_cfg_require **)p = r;
        *(size_t *)((char *)base + k->count_off) = n;
        return 0;
    }
    }
    snprintf(err, errlen, "internal error: unknown value kind");
    return -1;
}

static int64_t num_value(const struct key *k, const void *base)
{
    const char *p = (const char *)base + k->off;

    return k->kind == V_INT ? *(const int *)p : *(const int64_t *)p;
}

static char *format_value(const struct key *k, const void *base, char *buf, size_t len)
{
    if (k->kind == V_DURATION)
        return pgq_duration_format(num_value(k, base), buf, len);
    snprintf(buf, len, "%lld", (long long)num_value(k, base));
    return buf;
}

/* ---- the loader: sections, keys, errors ---- */

/* Record the first error as "FILE:LINE: ..." (or "FILE: ..." when line is 0). */
__attribute__((format(printf, 3, 4)))
static void failf(struct loader *ld, int line, const char *fmt, ...)
{
    va_list ap;
    size_t n;

    if (ld->failed)
        return;
    ld->failed = true;
    ld->err_line = line;
    if (ld->errlen == 0)
        return;
    if (line > 0)
        snprintf(ld->err, ld->errlen, "%s:%d: ", ld->path, line);
    else
        snprintf(ld->err, ld->errlen, "%s: ", ld->path);
    n = strlen(ld->err);
    va_start(ap, fmt);
    vsnprintf(ld->err + n, ld->errlen - n, fmt, ap);
    va_end(ap);
}

static void *section_base(const struct loader *ld, enum sec_kind sec)
{
    return sec == SEC_JOB ? (void *)&ld->cfg->types[ld->job] : (void *)ld->cfg;
}

static int apply_defaults(struct loader *ld, enum sec_kind sec)
{
    void *base = section_base(ld, sec);
    char msg[256];
    size_t i;

    for (i = 0; i < NKEYS; i++) {
        if (keys[i].sec != sec || keys[i].def == NULL)
            continue;
        if (set_value(&keys[i], base, keys[i].def, msg, sizeof msg) < 0) {
            failf(ld, ld->lineno, "%s %s: default \"%s\": %s", sec_title[sec], keys[i].name,
                  keys[i].def, msg);
            return -1;
        }
    }
    return 0;
}

static int check_rule(struct loader *ld, const struct rule *r)
{
    const struct key *ka = find_key(r->sec, r->a), *kb = find_key(r->sec, r->b);
    const void *base = section_base(ld, r->sec);
    char va[32], vb[32];
    int64_t a, b;
    int la, lb;

    if (ka == NULL || kb == NULL) {
        failf(ld, ld->sec_line, "internal error: rule names an unknown key");
        return -1;
    }
    a = num_value(ka, base);
    b = num_value(kb, base);
    if (r->strict ? a < b : a <= b)
        return 0;
    format_value(ka, base, va, sizeof va);
    format_value(kb, base, vb, sizeof vb);
    la = ld->key_line[ka - keys];
    lb = ld->key_line[kb - keys];
    /* Point at the line the user wrote: a's if set, else b's. */
    if (la == 0 && lb != 0)
        failf(ld, lb, "%s %s: %s %s %s (%s, the default)", ld->label, kb->name, vb, r->b_says,
              ka->name, va);
    else
        failf(ld, la ? la : ld->sec_line, "%s %s: %s %s %s (%s%s)", ld->label, ka->name, va,
              r->a_says, kb->name, vb, lb ? "" : ", the default");
    return -1;
}

/* The open section is complete: check what needs all of its keys. */
static int close_section(struct loader *ld)
{
    size_t i;

    if (ld->sec == SEC_NONE)
        return 0;
    for (i = 0; i < NKEYS; i++) {
        if (keys[i].sec == ld->sec && (keys[i].flags & F_REQUIRED) && ld->key_line[i] == 0) {
            failf(ld, ld->sec_line, "%s %s: missing (every %s needs a %s)", ld->label,
                  keys[i].name, sec_noun[ld->sec], keys[i].name);
            return -1;
        }
    }
    for (i = 0; i < NRULES; i++)
        if (rules[i].sec == ld->sec && check_rule(ld, &rules[i]) < 0)
            return -1;
    ld->sec = SEC_NONE;
    return 0;
}

static int open_job(struct loader *ld, const char *name, size_t len)
{
    pgq_cfg *cfg = ld->cfg;
    pgq_cfg_type *types, *t;
    size_t i;

    if (len == 0) {
        failf(ld, ld->lineno, "[job]: missing job type name (use [job NAME])");
        return -1;
    }
    if (!valid_name(name, len)) {
        failf(ld, ld->lineno, "[job %.*s]: job type name " NAME_RULE, (int)len, name);
        return -1;
    }
    for (i = 0; i < cfg->ntypes; i++) {
        if (strlen(cfg->types[i].name) == len && memcmp(cfg->types[i].name, name, len) == 0) {
            failf(ld, ld->lineno, "[job %s]: duplicate section (first at line %d)",
                  cfg->types[i].name, cfg->types[i].line);
            return -1;
        }
    }
    if ((types = realloc(cfg->types, (cfg->ntypes + 1) * sizeof *types)) == NULL)
        goto oom;
    cfg->types = types;
    t = &types[cfg->ntypes];
    memset(t, 0, sizeof *t);
    if ((t->name = strndup(name, len)) == NULL)
        goto oom;
    t->line = ld->lineno;
    ld->job = cfg->ntypes++;    /* owned by cfg from here on, even if the defaults fail */
    snprintf(ld->label, sizeof ld->label, "[job %s]", t->name);
    return apply_defaults(ld, SEC_JOB);

oom:
    failf(ld, ld->lineno, "out of memory");
    return -1;
}

/* s is a line starting with '['. */
static int open_section(struct loader *ld, const char *s)
{
    const char *e = find_or_comment(s + 1, "]"), *b = s + 1, *tail;
    enum sec_kind sec;
    int *seen;

    if (*e != ']') {
        failf(ld, ld->lineno, "syntax error (missing \"]\" after the section name)");
        return -1;
    }
    for (tail = e + 1; isspace((unsigned char)*tail); tail++)
        ;
    if (*tail != '\0' && *tail != ';' && *tail != '#') {
        failf(ld, ld->lineno, "syntax error (text after the section header)");
        return -1;
    }
    if (close_section(ld) < 0)
        return -1;

    trim(&b, &e);
    ld->sec_line = ld->lineno;
    memset(ld->key_line, 0, sizeof ld->key_line);
    if (e - b == 8 && memcmp(b, "database", 8) == 0) {
        sec = SEC_DATABASE;
        seen = &ld->database_line;
    } else if (e - b == 4 && memcmp(b, "pool", 4) == 0) {
        sec = SEC_POOL;
        seen = &ld->pool_line;
    } else if (e - b >= 3 && memcmp(b, "job", 3) == 0 && (e - b == 3 || isspace((unsigned char)b[3]))) {
        const char *name = b + 3;
        while (name < e && isspace((unsigned char)*name))
            name++;
        if (open_job(ld, name, (size_t)(e - name)) < 0)
            return -1;
        ld->sec = SEC_JOB;
        return 0;
    } else {
        failf(ld, ld->lineno, "[%.*s]: unknown section (use [database], [pool] or [job NAME])",
              (int)(e - b), b);
        return -1;
    }
    if (*seen) {
        failf(ld, ld->lineno, "%s: duplicate section (first at line %d)", sec_title[sec], *seen);
        return -1;
    }
    *seen = ld->lineno;
    snprintf(ld->label, sizeof ld->label, "%s", sec_title[sec]);
    ld->sec = sec;
    return 0;
}

/* inih's fgets-style reader; see the top of the file. */
static char *read_line(char *str, int num, void *stream)
{
    struct loader *ld = stream;
    ssize_t got;
    size_t len;
    char *s;

    if (ld->failed)
        return NULL;
    errno = 0;
    got = getline(&ld->line, &ld->cap, ld->f);
    if (got < 0) {
        if (ferror(ld->f))
            failf(ld, 0, "cannot read: %s", strerror(errno ? errno : EIO));
        else if (errno == ENOMEM)
            failf(ld, 0, "out of memory");
        else
            close_section(ld);
        return NULL;
    }
    ld->lineno++;
    s = ld->line;
    len = (size_t)got;
    if (len > 0 && s[len - 1] == '\n')
        len--;
    if (len > 0 && s[len - 1] == '\r')
        len--;
    s[len] = '\0';
    if (strlen(s) != len) {
        failf(ld, ld->lineno, "line contains a NUL byte");
        return NULL;
    }
    if (ld->lineno == 1 && len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
        s += 3;
        len -= 3;
    }
    if (num < 1 || len > (size_t)num - 1) {
        failf(ld, ld->lineno, "line too long (max %d bytes)", num > 0 ? num - 1 : 0);
        return NULL;
    }
    while (isspace((unsigned char)*s)) {
        s++;
        len--;
    }
    if (*s == '[') {
        if (open_section(ld, s) < 0)
            return NULL;
    } else if (*s != '\0' && *s != ';' && *s != '#') {
        const char *sep = find_or_comment(s, "=:");
        if (*sep != '=' && *sep != ':') {
            failf(ld, ld->lineno, "syntax error (expected [section] or key = value)");
            return NULL;
        }
    }
    memcpy(str, s, len + 1);
    return str;
}

static void unknown_key(struct loader *ld, const char *name)
{
    const struct key *best = NULL;
    int bestd = 3;
    size_t i;
    char known[512];
    size_t n = 0;

    for (i = 0; i < NKEYS; i++) {
        int d;
        if (keys[i].sec != ld->sec)
            continue;
        d = edit_distance(name, keys[i].name);
        if (d < bestd && d < (int)strlen(keys[i].name)) {
            best = &keys[i];
            bestd = d;
        }
    }
    if (best) {
        failf(ld, ld->lineno, "%s %s: unknown key; did you mean \"%s\"?", ld->label, name, best->name);
        return;
    }
    for (i = 0; i < NKEYS; i++) {
        if (keys[i].sec != ld->sec && strcmp(keys[i].name, name) == 0) {
            failf(ld, ld->lineno, "%s %s: unknown key; \"%s\" belongs in %s", ld->label, name,
                  name, sec_title[keys[i].sec]);
            return;
        }
    }
    known[0] = '\0';
    for (i = 0; i < NKEYS; i++)
        if (keys[i].sec == ld->sec && n < sizeof known)
            n += (size_t)snprintf(known + n, sizeof known - n, "%s%s", n ? ", " : "", keys[i].name);
    failf(ld, ld->lineno, "%s %s: unknown key (known keys: %s)", ld->label, name, known);
}

/* A hint when a bad value holds what was probably meant as a comment: inih
 * (like Python's configparser) takes "#" as a comment only at the start of a
 * line, and ";" after a value only with whitespace before it. */
static const char *comment_hint(const char *v)
{
    const char *p;

    for (p = v; *p; p++)
        if (isspace((unsigned char)p[0]) && p[1] == '#')
            return " (only \";\" starts a comment after a value, not \"#\")";
    if (strchr(v, ';'))
        return " (a comment after a value needs whitespace before the \";\")";
    return "";
}

/* inih's handler; section is ignored because inih truncates it (the reader
 * tracks the real one). Returns 1 to go on, 0 on error. */
static int on_key(void *user, const char *section, const char *name, const char *value)
{
    struct loader *ld = user;
    const struct key *k;
    char msg[512];
    void *base;
    size_t i;

    (void)section;
    if (ld->failed)
        return 0;
    if (*name == '\0') {
        failf(ld, ld->lineno, "syntax error (missing key name before \"=\")");
        return 0;
    }
    if (ld->sec == SEC_NONE) {
        failf(ld, ld->lineno, "%s: key outside of any section (put it under [database], [pool] or [job NAME])",
              name);
        return 0;
    }
    if ((k = find_key(ld->sec, name)) == NULL) {
        unknown_key(ld, name);
        return 0;
    }
    i = (size_t)(k - keys);
    if (ld->key_line[i]) {
        failf(ld, ld->lineno, "%s %s: duplicate key (first set at line %d)", ld->label, name,
              ld->key_line[i]);
        return 0;
    }
    base = section_base(ld, ld->sec);
    if (set_value(k, base, value, msg, sizeof msg) < 0) {
        failf(ld, ld->lineno, "%s %s: %s%s", ld->label, name, msg, comment_hint(value));
        return 0;
    }
    ld->key_line[i] = ld->lineno;
    if (k->line_off != NO_OFF)
        *(int *)((char *)base + k->line_off) = ld->lineno;
    return 1;
}

/* ---- public API ---- */

int pgq_cfg_load(const char *path, pgq_cfg **out, char *err, size_t errlen)
{
    struct loader ld;
    pgq_cfg *cfg = NULL;
    int r, rc = -1;

    *out = NULL;
    if (errlen > 0)
        err[0] = '\0';
    memset(&ld, 0, sizeof ld);
    ld.path = path;
    ld.err = err;
    ld.errlen = errlen;

    if ((cfg = calloc(1, sizeof *cfg)) == NULL || (cfg->path = strdup(path)) == NULL) {
        failf(&ld, 0, "out of memory");
        goto fail;
    }
    ld.cfg = cfg;
    if (apply_defaults(&ld, SEC_DATABASE) < 0 || apply_defaults(&ld, SEC_POOL) < 0)
        goto fail;
    if ((ld.f = fopen(path, "r")) == NULL) {
        failf(&ld, 0, "cannot open: %s", strerror(errno));
        goto fail;
    }

    r = ini_parse_stream(read_line, &ld, on_key, &ld);
    /* The reader catches every syntax error inih knows of, so r > 0 should
     * only echo a failure of on_key; anything earlier is inih's own finding. */
    if (r > 0 && (!ld.failed || r < ld.err_line)) {
        ld.failed = false;
        failf(&ld, r, "syntax error (expected [section] or key = value)");
        goto fail;
    }
    if (ld.failed)
        goto fail;
    if (r == -2) {
        failf(&ld, 0, "out of memory");
        goto fail;
    }
    if (r < 0) {
        failf(&ld, 0, "cannot read (inih error %d)", r);
        goto fail;
    }
    *out = cfg;
    cfg = NULL;
    rc = 0;

fail:
    if (ld.f)
        fclose(ld.f);
    free(ld.line);
    pgq_cfg_free(cfg);
    return rc;
}

void pgq_cfg_free(pgq_cfg *cfg)
{
    size_t i;

    if (cfg == NULL)
        return;
    for (i = 0; i < cfg->ntypes; i++) {
        free_section(SEC_JOB, &cfg->types[i]);
        free(cfg->types[i].name);
    }
    free(cfg->types);
    free_section(SEC_DATABASE, cfg);
    free_section(SEC_POOL, cfg);
    free(cfg->path);
    free(cfg);
}

const pgq_cfg_type *pgq_cfg_find_type(const pgq_cfg *cfg, const char *name)
{
    size_t i;

    if (cfg == NULL || name == NULL)
        return NULL;
    for (i = 0; i < cfg->ntypes; i++)
        if (strcmp(cfg->types[i].name, name) == 0)
            return &cfg->types[i];
    return NULL;
}

int pgq_require_parse(const char *s, pgq_cfg_require **out, size_t *n, char *err, size_t errlen)
{
    pgq_cfg_require *r = NULL;
    size_t cnt = 0, cap = 1, item = 0, i;
    const char *p;

    *out = NULL;
    *n = 0;
    if (s == NULL)
        s = "";
    for (p = s; isspace((unsigned char)*p); p++)
        ;
    if (*p == '\0')
        return 0;
    for (p = s; *p; p++)
        cap += *p == ',';
    if ((r = calloc(cap, sizeof *r)) == NULL)
        goto oom;
    for (p = s;;) {
        const char *comma = strchr(p, ','), *b = p, *e = comma ? comma : p + strlen(p);
        const char *colon, *kb, *ke, *tb, *te;
        const char *type = NULL;

        item++;
        trim(&b, &e);
        if (b == e) {
            snprintf(err, errlen, "item %zu: empty", item);
            goto fail;
        }
        if ((colon = memchr(b, ':', (size_t)(e - b))) == NULL) {
            snprintf(err, errlen, "item %zu \"%.*s\": expected KEY:TYPE (e.g. to:string)", item,
                     (int)(e - b), b);
            goto fail;
        }
        kb = b;
        ke = colon;
        tb = colon + 1;
        te = e;
        trim(&kb, &ke);
        trim(&tb, &te);
        if (kb == ke) {
            snprintf(err, errlen, "item %zu \"%.*s\": empty key", item, (int)(e - b), b);
            goto fail;
        }
        if (tb == te) {
            snprintf(err, errlen, "item %zu \"%.*s\": missing type " JSON_TYPES_HINT, item,
                     (int)(e - b), b);
            goto fail;
        }
        for (i = 0; i < NJSON_TYPES; i++)
            if (strlen(json_types[i]) == (size_t)(te - tb) && memcmp(json_types[i], tb, (size_t)(te - tb)) == 0)
                type = json_types[i];
        if (type == NULL) {
            snprintf(err, errlen, "item %zu \"%.*s\": unknown type \"%.*s\" " JSON_TYPES_HINT, item,
                     (int)(e - b), b, (int)(te - tb), tb);
            goto fail;
        }
        for (i = 0; i < cnt; i++) {
            if (strlen(r[i].key) == (size_t)(ke - kb) && memcmp(r[i].key, kb, (size_t)(ke - kb)) == 0) {
                snprintf(err, errlen, "item %zu \"%.*s\": duplicate key \"%s\"", item, (int)(e - b), b,
                         r[i].key);
                goto fail;
            }
        }
        r[cnt].key = strndup(kb, (size_t)(ke - kb));
        r[cnt].json_type = strdup(type);
        cnt++;      /* before the check, so the fail path frees a half-made entry */
        if (r[cnt - 1].key == NULL || r[cnt - 1].json_type == NULL)
            goto oom;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    *out = r;
    *n = cnt;
    return 0;

oom:
    snprintf(err, errlen, "out of memory");
fail:
    pgq_require_free(r, cnt);
    return -1;
}

void pgq_require_free(pgq_cfg_require *r, size_t n)
{
    size_t i;

    if (r == NULL)
        return;
    for (i = 0; i < n; i++) {
        free(r[i].key);
        free(r[i].json_type);
    }
    free(r);
}

/* Markdown table cell text: a '|' would end the cell. */
static void put_cell(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputc('\\', f);
        fputc(*s, f);
    }
}

void pgq_cfg_write_reference(FILE *f)
{
    size_t i;

    fputs("| section | key | type | default | bounds | description |\n"
          "| --- | --- | --- | --- | --- | --- |\n", f);
    for (i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];

        fprintf(f, "| `%s` | `%s` | %s | ", sec_title[k->sec], k->name, kind_title[k->kind]);
        if (k->def)
            fprintf(f, "`%s`", k->def);
        else
            fputs(k->flags & F_REQUIRED ? "(required)" : "(none)", f);
        fputs(" | ", f);
        if (k->kind == V_INT)
            fprintf(f, "%lld..%lld", (long long)k->min, (long long)k->max);
        else if (k->kind == V_DURATION) {
            char lo[32], hi[32];
            fprintf(f, "%s..%s", pgq_duration_format(k->min, lo, sizeof lo),
                    pgq_duration_format(k->max, hi, sizeof hi));
        }
        else if (k->kind == V_NAME || k->kind == V_LIST)
            fprintf(f, "1..%d characters, no whitespace", PGQ_QUEUE_NAME_MAX);
        else if (k->kind == V_POOLER)
            fputs("transaction, session, none", f);
        fputs(" | ", f);
        put_cell(f, k->doc);
        fputs(" |\n", f);
    }
}
