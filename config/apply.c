/* Registering a config's job types in the database: the one place that
 * turns [job NAME] sections into pgq_type_defs, used by `pgq types apply`
 * and by every pool at start and on reload. */
#include <stdio.h>
#include <stdlib.h>

#include "pgq_config.h"

int pgq_cfg_apply_types(pgq_conn *c, const pgq_cfg *cfg, char *err, size_t errlen)
{
    return pgq_cfg_apply_types_as(c, cfg, "pgq types apply", true, err, errlen);
}

int pgq_cfg_apply_types_as(pgq_conn *c, const pgq_cfg *cfg, const char *who, bool replace,
                           char *err, size_t errlen)
{
    size_t nfields = 0;
    for (size_t i = 0; i < cfg->ntypes; i++)
        nfields += cfg->types[i].nrequire;
    pgq_type_def *defs = calloc(cfg->ntypes + 1, sizeof *defs);
    pgq_field *fields = calloc(nfields + 1, sizeof *fields), *f = fields;
    int rc = -1;
    if (!defs || !fields) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < cfg->ntypes; i++) {
        const pgq_cfg_type *t = &cfg->types[i];
        defs[i] = (pgq_type_def){ .type = t->name, .queue = t->queue, .required = f,
                                  .nrequired = t->nrequire, .max_retries = t->max_retries,
                                  .priority = t->priority, .timeout_ms = t->timeout_ms,
                                  .backoff_base_ms = t->backoff_base_ms,
                                  .backoff_max_ms = t->backoff_max_ms,
                                  .concurrency = t->concurrency,
                                  .rate_count = t->rate.count, .rate_ms = t->rate.per_ms,
                                  .max_snoozes = t->max_snoozes,
                                  /* pool.ini's 0 is "none"; the struct's 0 the default */
                                  .max_payload = t->max_payload > 0 ? t->max_payload : -1 };
        for (size_t k = 0; k < t->nrequire; k++, f++)
            *f = (pgq_field){ t->require[k].key, t->require[k].json_type };
    }
    rc = pgq_types_register_as(c, defs, cfg->ntypes, who, replace, err, errlen);
out:
    free(defs);
    free(fields);
    return rc;
}
