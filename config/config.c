/*
 * config.c -- loading and validating pool.ini: the loader.
 *
 * One table, cfg_keys[] (keys.c), lists every key with its section, value
 * kind, place in the structs, default, bounds and documentation. Parsing,
 * defaults, error messages and the generated reference (reference.c) all
 * read that table, so adding a key is adding one entry; value kinds
 * (integer, duration, list, ...) have code (values.c), individual keys do
 * not. Cross-field checks (heartbeat < lease_ttl, ...) are a second,
 * smaller table of rules. Handler commands are split into words by
 * words.c, payload contracts parsed by require.c.
 *
 * inih splits "key = value" lines and strips inline comments, but it is fed
 * through our own reader, cfg_read_line() (reader.c), because Debian's inih
 * passes no line numbers to the handler and silently cuts long lines and
 * long section names. The reader reads whole lines with getline and counts
 * them, rejects lines longer than inih's buffer and lines inih would call
 * syntax errors (with a precise message), and strips leading whitespace so
 * indented keys work and inih never sees a "continuation line". Section
 * headers it hands back here, through a hook, and the loader parses them
 * itself: a header closes the previous section (required keys and rules are
 * checked there, when all its keys are known) and opens the next one (its
 * defaults are applied from the table). The key handler, on_key(), therefore
 * sees keys in file order and takes the line number and the real section from
 * the shared loader state. The first error wins: it is recorded once and the
 * reader then reports end of file, so inih stops.
 */
#include "pgq_config.h"
#include "cron.h"
#include "distance.h"
#include "keys.h"
#include "payload.h"
#include "reader.h"
#include "values.h"
#include "words.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* Job type names (queue names follow pgq_queue_name_check). */
#define NAME_MAX_LEN 100
#define NAME_RULE "must be 1..100 characters without whitespace"

/* Everything the reader and the key handler share while one file is read. */
struct loader {
    const char *path;
    struct cfg_reader rd;       /* the file, its line buffer and line number */
    pgq_cfg *cfg;
    enum sec_kind sec;          /* the open section, SEC_NONE before the first */
    size_t job;                 /* SEC_JOB: its index in cfg->types; SEC_CRON: in cfg->crons */
    int sec_line;
    char label[NAME_MAX_LEN + 8];   /* "[pool]", "[job NAME]": the section as messages show it */
    int key_line[CFG_KEYS_MAX]; /* line each key of the open section was set on, 0 = not set */
    int database_line, pool_line;   /* header lines, to refuse a repeated section */
    bool failed;
    int err_line;
    char *err;
    size_t errlen;
};

/* ---- small helpers ---- */

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

/* n with a comma between groups of three digits ("2,345,678"), as the
 * database's refusals write sizes; returns buf. */
static char *group_digits(int64_t n, char *buf, size_t len)
{
    char raw[32];
    size_t k = (size_t)snprintf(raw, sizeof raw, "%lld", (long long)n), o = 0;

    for (size_t i = 0; i < k && o + 2 < len; i++) {
        if (i > 0 && raw[i - 1] != '-' && (k - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = '\0';
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
    if (sec == SEC_JOB)
        return &ld->cfg->types[ld->job];
    if (sec == SEC_CRON)
        return &ld->cfg->crons[ld->job];
    return ld->cfg;
}

static int apply_defaults(struct loader *ld, enum sec_kind sec)
{
    void *base = section_base(ld, sec);
    char msg[256];
    size_t i;

    for (i = 0; i < cfg_nkeys; i++) {
        if (cfg_keys[i].sec != sec || cfg_keys[i].def == NULL)
            continue;
        if (cfg_value_set(&cfg_keys[i], base, cfg_keys[i].def, msg, sizeof msg) < 0) {
            failf(ld, ld->rd.lineno, "%s %s: default \"%s\": %s", cfg_sec_title[sec], cfg_keys[i].name,
                  cfg_keys[i].def, msg);
            return -1;
        }
    }
    return 0;
}

static int check_rule(struct loader *ld, const struct cfg_rule *r)
{
    const struct cfg_key *ka = cfg_find_key(r->sec, r->a), *kb = cfg_find_key(r->sec, r->b);
    const void *base = section_base(ld, r->sec);
    char va[32], vb[32];
    int64_t a, b;
    int la, lb;

    if (ka == NULL || kb == NULL) {
        failf(ld, ld->sec_line, "internal error: rule names an unknown key");
        return -1;
    }
    a = cfg_value_num(ka, base);
    b = cfg_value_num(kb, base);
    if (r->strict ? a < b : a <= b)
        return 0;
    cfg_value_format(ka, base, va, sizeof va);
    cfg_value_format(kb, base, vb, sizeof vb);
    la = ld->key_line[ka - cfg_keys];
    lb = ld->key_line[kb - cfg_keys];
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
    for (i = 0; i < cfg_nkeys; i++) {
        if (cfg_keys[i].sec == ld->sec && (cfg_keys[i].flags & F_REQUIRED) && ld->key_line[i] == 0) {
            failf(ld, ld->sec_line, "%s %s: missing (every %s needs a %s)", ld->label,
                  cfg_keys[i].name, cfg_sec_noun[ld->sec], cfg_keys[i].name);
            return -1;
        }
    }
    for (i = 0; i < cfg_nrules; i++)
        if (cfg_rules[i].sec == ld->sec && check_rule(ld, &cfg_rules[i]) < 0)
            return -1;
    if (ld->sec == SEC_CRON) {
        /* The schedule's syntax was checked at its line; now it gets its zone. */
        pgq_cfg_cron *cr = &ld->cfg->crons[ld->job];
        char msg[256];
        if (pgq_cron_parse(cr->schedule, cr->zone, &cr->cron, msg, sizeof msg) < 0) {
            failf(ld, cr->schedule_line, "%s schedule: %s", ld->label, msg);
            return -1;
        }
    }
    ld->sec = SEC_NONE;
    return 0;
}

/* At the end of the file, when every [job] section is known: each cron's
 * type is one of them and its payload meets that type's contract. */
static void check_crons(struct loader *ld)
{
    const pgq_cfg *cfg = ld->cfg;
    char msg[512];

    for (size_t i = 0; i < cfg->ncrons && !ld->failed; i++) {
        const pgq_cfg_cron *cr = &cfg->crons[i];
        const pgq_cfg_type *t = pgq_cfg_find_type(cfg, cr->type);
        if (t == NULL) {
            failf(ld, cr->type_line, "[cron %s] type: no [job %s] section in this file (a "
                  "cron's payload is checked against its type's contract)", cr->name, cr->type);
            return;
        }
        int line = cr->payload_line ? cr->payload_line : cr->line;
        if (cfg_payload_meets(cr->payload, t->require, t->nrequire, t->name, msg, sizeof msg) < 0) {
            failf(ld, line, "[cron %s] payload: %s%s", cr->name, msg,
                  cr->payload_line ? "" : " (the default payload is {})");
            return;
        }
        /* The size the database will measure at every tick (pgq.payload_size);
         * computing it also finds numbers PostgreSQL's numeric refuses. */
        int64_t size;
        if (cfg_jsonb_size(cr->payload, &size, msg, sizeof msg) < 0) {
            failf(ld, line, "[cron %s] payload: %s", cr->name, msg);
            return;
        }
        if (t->max_payload > 0) {
            char sz[32], lim[32];
            if (size > t->max_payload) {
                char where[32] = ", the default";
                if (t->max_payload_line)
                    snprintf(where, sizeof where, ", line %d", t->max_payload_line);
                cfg_size_format(t->max_payload, lim, sizeof lim);
                failf(ld, line, "[cron %s] payload: %s bytes as jsonb, over the max_payload of "
                      "job type \"%s\" (%s%s)", cr->name, group_digits(size, sz, sizeof sz),
                      t->name, lim, where);
                return;
            }
        }
    }
}

static int open_job(struct loader *ld, const char *name, size_t len)
{
    pgq_cfg *cfg = ld->cfg;
    pgq_cfg_type *types, *t;
    size_t i;

    if (len == 0) {
        failf(ld, ld->rd.lineno, "[job]: missing job type name (use [job NAME])");
        return -1;
    }
    if (!valid_name(name, len)) {
        failf(ld, ld->rd.lineno, "[job %.*s]: job type name " NAME_RULE, (int)len, name);
        return -1;
    }
    for (i = 0; i < cfg->ntypes; i++) {
        if (strlen(cfg->types[i].name) == len && memcmp(cfg->types[i].name, name, len) == 0) {
            failf(ld, ld->rd.lineno, "[job %s]: duplicate section (first at line %d)",
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
    t->line = ld->rd.lineno;
    ld->job = cfg->ntypes++;    /* owned by cfg from here on, even if the defaults fail */
    snprintf(ld->label, sizeof ld->label, "[job %s]", t->name);
    return apply_defaults(ld, SEC_JOB);

oom:
    failf(ld, ld->rd.lineno, "out of memory");
    return -1;
}

static int open_cron(struct loader *ld, const char *name, size_t len)
{
    pgq_cfg *cfg = ld->cfg;
    pgq_cfg_cron *crons, *cr;
    size_t i;

    if (len == 0) {
        failf(ld, ld->rd.lineno, "[cron]: missing schedule name (use [cron NAME])");
        return -1;
    }
    if (!valid_name(name, len)) {
        failf(ld, ld->rd.lineno, "[cron %.*s]: cron name " NAME_RULE, (int)len, name);
        return -1;
    }
    for (i = 0; i < cfg->ncrons; i++) {
        if (strlen(cfg->crons[i].name) == len && memcmp(cfg->crons[i].name, name, len) == 0) {
            failf(ld, ld->rd.lineno, "[cron %s]: duplicate section (first at line %d)",
                  cfg->crons[i].name, cfg->crons[i].line);
            return -1;
        }
    }
    if ((crons = realloc(cfg->crons, (cfg->ncrons + 1) * sizeof *crons)) == NULL)
        goto oom;
    cfg->crons = crons;
    cr = &crons[cfg->ncrons];
    memset(cr, 0, sizeof *cr);
    if ((cr->name = strndup(name, len)) == NULL)
        goto oom;
    cr->line = ld->rd.lineno;
    ld->job = cfg->ncrons++;
    snprintf(ld->label, sizeof ld->label, "[cron %s]", cr->name);
    return apply_defaults(ld, SEC_CRON);

oom:
    failf(ld, ld->rd.lineno, "out of memory");
    return -1;
}

/* s is a line starting with '['. */
static int open_section(struct loader *ld, const char *s)
{
    const char *e = cfg_find_or_comment(s + 1, "]"), *b = s + 1, *tail;
    enum sec_kind sec;
    int *seen;

    if (*e != ']') {
        failf(ld, ld->rd.lineno, "syntax error (missing \"]\" after the section name)");
        return -1;
    }
    for (tail = e + 1; isspace((unsigned char)*tail); tail++)
        ;
    if (*tail != '\0' && *tail != ';' && *tail != '#') {
        failf(ld, ld->rd.lineno, "syntax error (text after the section header)");
        return -1;
    }
    if (close_section(ld) < 0)
        return -1;

    cfg_trim(&b, &e);
    ld->sec_line = ld->rd.lineno;
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
    } else if (e - b >= 4 && memcmp(b, "cron", 4) == 0 && (e - b == 4 || isspace((unsigned char)b[4]))) {
        const char *name = b + 4;
        while (name < e && isspace((unsigned char)*name))
            name++;
        if (open_cron(ld, name, (size_t)(e - name)) < 0)
            return -1;
        ld->sec = SEC_CRON;
        return 0;
    } else {
        failf(ld, ld->rd.lineno, "[%.*s]: unknown section (use [database], [pool], [job NAME] "
              "or [cron NAME])", (int)(e - b), b);
        return -1;
    }
    if (*seen) {
        failf(ld, ld->rd.lineno, "%s: duplicate section (first at line %d)", cfg_sec_title[sec], *seen);
        return -1;
    }
    *seen = ld->rd.lineno;
    snprintf(ld->label, sizeof ld->label, "%s", cfg_sec_title[sec]);
    ld->sec = sec;
    return 0;
}

/* The reader's hooks (reader.h). */
static int reader_section(void *user, const char *s)
{
    return open_section(user, s);
}

static void reader_eof(void *user)
{
    if (close_section(user) == 0)
        check_crons(user);
}

static void reader_error(void *user, int line, const char *msg)
{
    failf(user, line, "%s", msg);
}

static bool reader_failed(void *user)
{
    return ((struct loader *)user)->failed;
}

static void unknown_key(struct loader *ld, const char *name)
{
    const struct cfg_key *best = NULL;
    int bestd = 3;
    size_t i;
    char known[512];
    size_t n = 0;

    for (i = 0; i < cfg_nkeys; i++) {
        int d;
        if (cfg_keys[i].sec != ld->sec)
            continue;
        d = cfg_edit_distance(name, cfg_keys[i].name);
        if (d < bestd && d < (int)strlen(cfg_keys[i].name)) {
            best = &cfg_keys[i];
            bestd = d;
        }
    }
    if (best) {
        failf(ld, ld->rd.lineno, "%s %s: unknown key; did you mean \"%s\"?", ld->label, name, best->name);
        return;
    }
    for (i = 0; i < cfg_nkeys; i++) {
        if (cfg_keys[i].sec != ld->sec && strcmp(cfg_keys[i].name, name) == 0) {
            failf(ld, ld->rd.lineno, "%s %s: unknown key; \"%s\" belongs in %s", ld->label, name,
                  name, cfg_sec_title[cfg_keys[i].sec]);
            return;
        }
    }
    known[0] = '\0';
    for (i = 0; i < cfg_nkeys; i++)
        if (cfg_keys[i].sec == ld->sec && n < sizeof known)
            n += (size_t)snprintf(known + n, sizeof known - n, "%s%s", n ? ", " : "", cfg_keys[i].name);
    failf(ld, ld->rd.lineno, "%s %s: unknown key (known keys: %s)", ld->label, name, known);
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
    const struct cfg_key *k;
    char msg[512];
    void *base;
    size_t i;

    (void)section;
    if (ld->failed)
        return 0;
    if (*name == '\0') {
        failf(ld, ld->rd.lineno, "syntax error (missing key name before \"=\")");
        return 0;
    }
    if (ld->sec == SEC_NONE) {
        failf(ld, ld->rd.lineno, "%s: key outside of any section (put it under [database], [pool], [job NAME] or [cron NAME])",
              name);
        return 0;
    }
    if ((k = cfg_find_key(ld->sec, name)) == NULL) {
        unknown_key(ld, name);
        return 0;
    }
    i = (size_t)(k - cfg_keys);
    if (ld->key_line[i]) {
        failf(ld, ld->rd.lineno, "%s %s: duplicate key (first set at line %d)", ld->label, name,
              ld->key_line[i]);
        return 0;
    }
    base = section_base(ld, ld->sec);
    if (cfg_value_set(k, base, value, msg, sizeof msg) < 0) {
        failf(ld, ld->rd.lineno, "%s %s: %s%s", ld->label, name, msg, comment_hint(value));
        return 0;
    }
    ld->key_line[i] = ld->rd.lineno;
    if (k->line_off != NO_OFF)
        *(int *)((char *)base + k->line_off) = ld->rd.lineno;
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
    if ((ld.rd.f = fopen(path, "r")) == NULL) {
        failf(&ld, 0, "cannot open: %s", strerror(errno));
        goto fail;
    }

    ld.rd.user = &ld;
    ld.rd.on_section = reader_section;
    ld.rd.on_eof = reader_eof;
    ld.rd.on_error = reader_error;
    ld.rd.failed = reader_failed;
    r = ini_parse_stream(cfg_read_line, &ld.rd, on_key, &ld);
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
    if (ld.rd.f)
        fclose(ld.rd.f);
    free(ld.rd.line);
    pgq_cfg_free(cfg);
    return rc;
}

void pgq_cfg_free(pgq_cfg *cfg)
{
    size_t i;

    if (cfg == NULL)
        return;
    for (i = 0; i < cfg->ntypes; i++) {
        cfg_section_free(SEC_JOB, &cfg->types[i]);
        free(cfg->types[i].name);
    }
    free(cfg->types);
    for (i = 0; i < cfg->ncrons; i++) {
        pgq_cron_free(cfg->crons[i].cron);
        cfg_section_free(SEC_CRON, &cfg->crons[i]);
        free(cfg->crons[i].name);
    }
    free(cfg->crons);
    cfg_section_free(SEC_DATABASE, cfg);
    cfg_section_free(SEC_POOL, cfg);
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
