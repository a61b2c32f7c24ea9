/* JSON output of the CLI (--json): strings escaped as RFC 8259 wants,
 * NULL as null. Text from the database is valid UTF-8 (PostgreSQL accepts
 * nothing else), so only quotes, backslashes and control characters need
 * escapes. One document per command, ending with a newline. */
#include <inttypes.h>
#include <stdio.h>

#include "cli.h"

void json_str(FILE *f, const char *s)
{
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

void json_key(FILE *f, bool first, const char *key)
{
    if (!first)
        fputc(',', f);
    json_str(f, key);
    fputc(':', f);
}

void json_kv_str(FILE *f, bool first, const char *key, const char *value)
{
    json_key(f, first, key);
    json_str(f, value);
}

void json_kv_int(FILE *f, bool first, const char *key, int64_t value)
{
    json_key(f, first, key);
    fprintf(f, "%" PRId64, value);
}

/* value < 0 (pgq's "not known") as null. */
void json_kv_int_or_null(FILE *f, bool first, const char *key, int64_t value)
{
    json_key(f, first, key);
    if (value < 0)
        fputs("null", f);
    else
        fprintf(f, "%" PRId64, value);
}

void json_kv_bool(FILE *f, bool first, const char *key, bool value)
{
    json_key(f, first, key);
    fputs(value ? "true" : "false", f);
}

