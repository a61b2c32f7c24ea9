/* pgq types header: the typed job map for C. For every [job TYPE] of a
 * pool.ini this writes a struct with one member per key of the type's
 * payload contract and typed functions around libpgq:
 *
 *     struct send_email { const char *to; const char *subject; void *pgq_mem_; };
 *     pgq_add_send_email(conn, &(struct send_email){ .to = ..., .subject = ... },
 *                        &opts, &res, err, errlen)
 *     send_email_to_json(&p, err, errlen)          the payload text (for batches, SQL)
 *     send_email_from_job(job, &p, err, errlen)    a handler's view; send_email_clear(&p)
 *
 * so a producer or a handler that names a key the contract lacks does not
 * compile. The code that builds and parses payloads is the same for every
 * type (cli/typed_runtime.h, copied into the header once, driven by a table
 * of each type's keys), so what is generated per type is only names, the
 * struct and the table.
 *
 * Names become C identifiers by one rule (typegen_c_name), and every name
 * is checked before anything is written: two types or two keys of a type
 * that map to the same identifier, a type whose names libpgq or jansson
 * own, are refused naming both sides, so the header either compiles or is
 * not written. The contract is read with the config's own parser
 * (pgq_cfg_load, pgq_require_parse): the generator knows no other syntax. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "typegen.h"
#include "utf8.h"

/* Words a member or struct tag cannot be: C17's and C23's keywords, and
 * macros that the headers a generated header includes (or a C program
 * commonly does) define, or that GNU C predefines (unix, linux). */
static const char *const reserved_words[] = {
    "_Alignas", "_Alignof", "_Atomic", "_BitInt", "_Bool", "_Complex", "_Decimal128",
    "_Decimal32", "_Decimal64", "_Generic", "_Imaginary", "_Noreturn", "_Static_assert",
    "_Thread_local", "EOF", "NULL", "alignas", "alignof", "asm", "assert", "auto", "bool",
    "break", "case", "char", "complex", "const", "constexpr", "continue", "default", "do",
    "double", "else", "enum", "errno", "extern", "false", "float", "for", "goto", "i386", "if",
    "imaginary", "inline", "int", "linux", "long", "noreturn", "nullptr", "offsetof", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "static_assert", "struct",
    "switch", "thread_local", "true", "typedef", "typeof", "typeof_unqual", "union", "unix",
    "unsigned", "void", "volatile", "while",
};

/* The member the generated struct keeps for itself. */
#define MEM_MEMBER "pgq_mem_"

static bool reserved(const char *s)
{
    for (size_t i = 0; i < sizeof reserved_words / sizeof reserved_words[0]; i++)
        if (strcmp(s, reserved_words[i]) == 0)
            return true;
    return false;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool api_name(const char *s)
{
    return bsearch(&s, typegen_api_names, typegen_napi_names, sizeof typegen_api_names[0],
                   cmp_name) != NULL;
}

/* The rule (README, "Typed job map for C"): every character that is not
 * an ASCII letter, digit or underscore becomes an underscore (send-email ->
 * send_email, été -> _t_); a type that
 * then does not start with a letter gets "job_" in front, a key that
 * starts with a digit or with a name C reserves (__x, _X) gets "k_"; a
 * keyword or listed macro gets an underscore behind (default -> default_). */
static bool ascii_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static char *typegen_c_name(const char *name, int member)
{
    size_t n = strlen(name), k;
    char *s = malloc(n + 6);   /* "job_" or "k_" before, "_" behind */
    if (s == NULL)
        return NULL;
    char *m = s + 4;
    k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch >= 0x80 && ch < 0xc0 && i > 0 && (unsigned char)name[i - 1] >= 0x80)
            continue;   /* a continuation byte: its character has its underscore */
        m[k++] = ascii_alpha((char)ch) || (ch >= '0' && ch <= '9') ? (char)ch : '_';
    }
    m[k] = '\0';
    n = k;
    const char *prefix = "";
    if (!member && !ascii_alpha(m[0]))
        prefix = "job_";
    else if (member && ((m[0] >= '0' && m[0] <= '9') ||
                        (m[0] == '_' && (m[1] == '_' || (m[1] >= 'A' && m[1] <= 'Z')))))
        prefix = "k_";
    k = strlen(prefix);
    memmove(s + k, m, n + 1);
    memcpy(s, prefix, k);
    if (reserved(s))
        strcat(s, "_");
    return s;
}

/* ---- checking every name before writing anything ------------------------ */

struct gtype {
    const pgq_cfg_type *t;
    char *cname;
    char **members;   /* per contract key; NULL for null keys (no member) */
};

static void gtypes_free(struct gtype *g, size_t n)
{
    if (g == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; g[i].members && k < g[i].t->nrequire; k++)
            free(g[i].members[k]);
        free(g[i].members);
        free(g[i].cname);
    }
    free(g);
}

static int map_names(const pgq_cfg *cfg, struct gtype **out, char *err, size_t errlen)
{
    struct gtype *g = calloc(cfg->ntypes ? cfg->ntypes : 1, sizeof *g);
    const char *file = cfg->path ? cfg->path : "pool.ini";
    size_t i, j, k;

    if (g == NULL)
        goto oom;
    for (i = 0; i < cfg->ntypes; i++) {
        const pgq_cfg_type *t = &cfg->types[i];
        g[i].t = t;
        if ((g[i].cname = typegen_c_name(t->name, 0)) == NULL ||
            (t->nrequire && (g[i].members = calloc(t->nrequire, sizeof *g[i].members)) == NULL))
            goto oom;
        const char *c = g[i].cname;
        size_t bad;
        if (!utf8_valid(t->name, strlen(t->name), &bad, NULL)) {
            snprintf(err, errlen, "%s:%d: [job %s]: the type name is not valid UTF-8 at byte "
                     "offset %zu", file, t->line, t->name, bad);
            goto fail;
        }
        for (k = 0; k < t->nrequire; k++) {
            if (!utf8_valid(t->require[k].key, strlen(t->require[k].key), &bad, NULL)) {
                snprintf(err, errlen, "%s:%d: [job %s] require: key \"%s\" is not valid UTF-8 at "
                         "byte offset %zu", file, t->line, t->name, t->require[k].key, bad);
                goto fail;
            }
        }
        if (strncmp(c, "pgq_", 4) == 0 || strncmp(c, "json_", 5) == 0) {
            snprintf(err, errlen, "%s:%d: [job %s]: its C name %s begins with %.*s, the prefix of "
                     "%s's names; rename the type", file, t->line, t->name, c,
                     c[0] == 'p' ? 4 : 5, c, c[0] == 'p' ? "libpgq" : "jansson");
            goto fail;
        }
        char fn[600];
        snprintf(fn, sizeof fn, "pgq_add_%s", c);
        if (api_name(fn)) {
            snprintf(err, errlen, "%s:%d: [job %s]: its typed add would be %s, which libpgq "
                     "already names; rename the type", file, t->line, t->name, fn);
            goto fail;
        }
        for (j = 0; j < i; j++) {
            if (strcmp(g[j].cname, c) == 0) {
                snprintf(err, errlen, "%s:%d: [job %s]: its C name %s is also that of [job %s] "
                         "(line %d); rename one of them", file, t->line, t->name, c,
                         g[j].t->name, g[j].t->line);
                goto fail;
            }
        }
        for (k = 0; k < t->nrequire; k++) {
            if (strcmp(t->require[k].json_type, "null") == 0)
                continue;   /* no member: always null */
            char *m = typegen_c_name(t->require[k].key, 1);
            if (m == NULL)
                goto oom;
            g[i].members[k] = m;
            if (strcmp(m, MEM_MEMBER) == 0) {
                snprintf(err, errlen, "%s:%d: [job %s] require: key \"%s\" maps to the C member "
                         "%s, which the generated struct keeps for itself; rename the key",
                         file, t->line, t->name, t->require[k].key, m);
                goto fail;
            }
            for (j = 0; j < k; j++) {
                if (g[i].members[j] && strcmp(g[i].members[j], m) == 0) {
                    snprintf(err, errlen, "%s:%d: [job %s] require: keys \"%s\" and \"%s\" both "
                             "map to the C member %s; rename one of them", file, t->line,
                             t->name, t->require[j].key, t->require[k].key, m);
                    goto fail;
                }
            }
        }
    }
    *out = g;
    return 0;

oom:
    snprintf(err, errlen, "out of memory");
fail:
    gtypes_free(g, cfg->ntypes);
    return -1;
}

/* ---- writing -------------------------------------------------------------- */

/* s as a C string literal: octal escapes for every byte outside printable
 * ASCII (at most three digits, so a digit after one is not swallowed), and
 * '?' escaped so that no trigraph forms. */
static void c_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\' || *p == '?')
            fprintf(f, "\\%c", *p);
        else if (*p >= 0x20 && *p < 0x7f)
            fputc(*p, f);
        else
            fprintf(f, "\\%03o", *p);
    }
    fputc('"', f);
}

/* s inside a comment: control bytes become '?', no "*" "/" pair ends the
 * comment early and no "??" starts a trigraph. */
static void comment_text(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            fputc('?', f);
        else if (*p == '*' && p[1] == '/')
            fputs("* ", f);
        else if (*p == '?' && p[1] == '?')
            fputs("? ", f);   /* no trigraph, not even in a comment */
        else
            fputc(*p, f);
    }
}

static const char *c_type(const char *json_type)
{
    if (strcmp(json_type, "number") == 0)
        return "double ";
    if (strcmp(json_type, "boolean") == 0)
        return "bool ";
    return "const char *";   /* string, object, array */
}

static const char *kind_const(const char *json_type)
{
    if (strcmp(json_type, "string") == 0) return "PGQ_TYPED_STRING";
    if (strcmp(json_type, "number") == 0) return "PGQ_TYPED_NUMBER";
    if (strcmp(json_type, "boolean") == 0) return "PGQ_TYPED_BOOLEAN";
    if (strcmp(json_type, "object") == 0) return "PGQ_TYPED_OBJECT";
    if (strcmp(json_type, "array") == 0) return "PGQ_TYPED_ARRAY";
    return "PGQ_TYPED_NULL";
}

static void write_type(FILE *f, const struct gtype *g, const char *file)
{
    const pgq_cfg_type *t = g->t;
    const char *c = g->cname;
    size_t k;

    fputs("/* [job ", f);
    comment_text(f, t->name);
    fprintf(f, "] of ");
    comment_text(f, file);
    fprintf(f, ", line %d: require = ", t->line);
    for (k = 0; k < t->nrequire; k++) {
        fputs(k ? ", " : "", f);
        comment_text(f, t->require[k].key);
        fprintf(f, ":%s", t->require[k].json_type);
    }
    fprintf(f, "%s */\nstruct %s {\n", t->nrequire ? "" : "(nothing)", c);
    for (k = 0; k < t->nrequire; k++) {
        const pgq_cfg_require *r = &t->require[k];
        if (g->members[k] == NULL) {
            fputs("    /* \"", f);
            comment_text(f, r->key);
            fputs("\": null -- no member, always written as null */\n", f);
            continue;
        }
        fprintf(f, "    %s%s;   /* \"", c_type(r->json_type), g->members[k]);
        comment_text(f, r->key);
        fprintf(f, "\": %s%s */\n", r->json_type,
                strcmp(r->json_type, "object") == 0 || strcmp(r->json_type, "array") == 0
                    ? ", as JSON text" : "");
    }
    fprintf(f, "    void *" MEM_MEMBER ";   /* what %s_from_job copied; %s_clear frees it */\n"
               "};\n\n", c, c);

    fprintf(f, "static inline const struct pgq_typed_type *%s_type_(void)\n{\n"
               "    static const struct pgq_typed_field fields[%zu] = {\n", c,
            t->nrequire ? t->nrequire : 1);
    for (k = 0; k < t->nrequire; k++) {
        fputs("        { ", f);
        c_str(f, t->require[k].key);
        fputs(", ", f);
        c_str(f, g->members[k] ? g->members[k] : "");
        if (g->members[k])
            fprintf(f, ", %s, offsetof(struct %s, %s) },\n", kind_const(t->require[k].json_type),
                    c, g->members[k]);
        else
            fputs(", PGQ_TYPED_NULL, 0 },\n", f);
    }
    if (t->nrequire == 0)
        fputs("        { \"\", \"\", PGQ_TYPED_NULL, 0 },\n", f);
    fputs("    };\n    static const struct pgq_typed_type type = { ", f);
    c_str(f, t->name);
    fprintf(f, ", fields, %zu, sizeof(struct %s), offsetof(struct %s, " MEM_MEMBER ") };\n"
               "    return &type;\n}\n\n", t->nrequire, c, c);

    fputs("/* The payload of a ", f);
    comment_text(f, t->name);
    fprintf(f, " job as JSON text, malloc'd (free() it); NULL\n"
               " * with err naming the key at fault. For pgq_add_batch and SQL. */\n"
               "static inline char *%s_to_json(const struct %s *p, char *err, size_t errlen)\n"
               "{\n    return pgq_typed_build(%s_type_(), p, err, errlen);\n}\n\n",
            c, c, c);
    fputs("/* Enqueue a ", f);
    comment_text(f, t->name);
    fprintf(f, " job (pgq_add with this payload): 0, or -1 with err. */\n"
               "PGQ_MUSTCHECK static inline int pgq_add_%s(pgq_conn *c, const struct %s *p,\n"
               "        const pgq_add_opts *opts, pgq_add_result *res, char *err, size_t errlen)\n"
               "{\n    char *json = %s_to_json(p, err, errlen);\n    int rc;\n"
               "    if (json == NULL)\n        return -1;\n    rc = pgq_add(c, ", c, c, c);
    c_str(f, t->name);
    fputs(", json, opts, res, err, errlen);\n    free(json);\n    return rc;\n}\n\n", f);
    fprintf(f, "/* A handler's view of job: *p gets every key of the contract (other keys\n"
               " * are ignored); free with %s_clear. 0, or -1 with *p zeroed and err naming\n"
               " * the job and the key at fault. */\n"
               "PGQ_MUSTCHECK static inline int %s_from_job(const pgq_job *job, struct %s *p,\n"
               "        char *err, size_t errlen)\n"
               "{\n    return pgq_typed_parse(%s_type_(), job, p, err, errlen);\n}\n\n"
               "/* Free what %s_from_job copied and zero *p; p may be NULL. */\n"
               "static inline void %s_clear(struct %s *p)\n"
               "{\n    pgq_typed_clear(%s_type_(), p);\n}\n\n", c, c, c, c, c, c, c, c);
}

int typegen_write(const pgq_cfg *cfg, const char *guard, FILE *f, char *err, size_t errlen)
{
    struct gtype *g;
    const char *file = cfg->path ? cfg->path : "pool.ini";

    errno = 0;
    if (map_names(cfg, &g, err, errlen) < 0)
        return -1;
    fputs("/* Generated by `pgq types header` (pgq " PGQ_VERSION ") from ", f);
    comment_text(f, file);
    fputs(": do not edit,\n"
          " * regenerate. One struct per [job TYPE] of the file, a member per key of its\n"
          " * payload contract, and typed functions, so that a producer or a handler that\n"
          " * names a key the contract lacks does not compile:\n"
          " *\n"
          " *   pgq_add_T(conn, &(struct T){ .key = ... }, &opts, &res, err, errlen)\n"
          " *   T_to_json(&p, err, errlen)              the payload text (malloc'd)\n"
          " *   T_from_job(job, &p, err, errlen) ... T_clear(&p)    in a handler\n"
          " *\n"
          " * string -> const char * (UTF-8), number -> double, boolean -> bool,\n"
          " * object and array -> const char * holding their JSON text (checked when a\n"
          " * payload is built), null -> no member. Every key is required; keys beyond\n"
          " * the contract are ignored by T_from_job. Names: README, \"Typed job map\n"
          " * for C\". Self-contained (static inline) but for libpgq and jansson:\n"
          " *   cc ... $(pkg-config --cflags --libs pgq jansson) */\n", f);
    fprintf(f, "#ifndef %s\n#define %s\n\n", guard, guard);
    fputs(typegen_runtime, f);
    fputc('\n', f);
    for (size_t i = 0; i < cfg->ntypes; i++)
        write_type(f, &g[i], file);
    fprintf(f, "#endif /* %s */\n", guard);
    gtypes_free(g, cfg->ntypes);
    if (fflush(f) != 0 || ferror(f)) {
        snprintf(err, errlen, "%s", strerror(errno ? errno : EIO));
        return -2;
    }
    return 0;
}
