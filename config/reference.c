/* The pool.ini reference (pgq_config.h): a Markdown table generated from
 * the key table, printed by `pgq config-reference` and pasted into README
 * (tests/docs_test.c keeps the two the same). */
#include "pgq_config.h"
#include "duration.h"
#include "keys.h"
#include "values.h"

#include <stdio.h>

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
    for (i = 0; i < cfg_nkeys; i++) {
        const struct cfg_key *k = &cfg_keys[i];

        fprintf(f, "| `%s` | `%s` | %s | ", cfg_sec_title[k->sec], k->name, cfg_kind_title[k->kind]);
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
        else if (k->kind == V_SIZE) {
            char lo[32], hi[32];
            fprintf(f, "%s..%s", cfg_size_format(k->min, lo, sizeof lo),
                    cfg_size_format(k->max, hi, sizeof hi));
        }
        else if (k->kind == V_POOLER)
            fputs("transaction, session, none", f);
        else if (k->kind == V_RATE)
            fprintf(f, "%lld..%lld per 1ms..7d", (long long)k->min, (long long)k->max);
        else if (k->kind == V_LISTEN)
            fputs("HOST:PORT, numeric host or localhost", f);
        else if (k->kind == V_ZONE)
            fputs("a name under /usr/share/zoneinfo", f);
        fputs(" | ", f);
        put_cell(f, k->doc);
        fputs(" |\n", f);
    }
}
