/* The payload contract of a job type (pgq_config.h): "to:string,
 * subject:string" parsed into required keys and their JSON types, the
 * jsonb_typeof() names the database checks payloads against. */
#include "pgq_config.h"
#include "words.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const json_types[] = { "string", "number", "boolean", "object", "array", "null" };
#define NJSON_TYPES (sizeof json_types / sizeof json_types[0])
#define JSON_TYPES_HINT "(use string, number, boolean, object, array or null)"

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
        cfg_trim(&b, &e);
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
        cfg_trim(&kb, &ke);
        cfg_trim(&tb, &te);
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
