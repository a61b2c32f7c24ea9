/* A plugin handler: a function in a shared object that pgq-pool loads with
 * dlopen and calls in-process for each job (pool.ini:
 * `handler = plugin /path/to/plugin-demo.so uppercase`). It gets the same
 * context an embedding program's callbacks get.
 *
 * uppercase: requires {"text": string}; fails when the text is "fail" (to
 * show retries), otherwise records its work under run_once. */
#include <stdio.h>
#include <string.h>

#include "pgq_pool.h"

int uppercase(pgq_ctx *ctx, void *arg, char *err, size_t errlen);

static int record(void *arg, char *err, size_t errlen)
{
    (void)arg;
    (void)err;
    (void)errlen;
    return 0;   /* a real plugin would write its result somewhere */
}

int uppercase(pgq_ctx *ctx, void *arg, char *err, size_t errlen)
{
    (void)arg;
    const pgq_job *j = pgq_ctx_job(ctx);
    if (strstr(j->payload, "\"fail\"")) {
        snprintf(err, errlen, "asked to fail (attempt %d)", j->attempt);
        return -1;
    }
    pgq_once_result r = pgq_ctx_run_once(ctx, "record", record, NULL, err, errlen);
    return r == PGQ_ONCE_RAN || r == PGQ_ONCE_SKIPPED ? 0 : -1;
}
