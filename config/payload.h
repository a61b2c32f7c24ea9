/* Internal to config/: the payload of a [cron NAME] section, checked at
 * load as PostgreSQL will check it at every add (payload.c). */
#ifndef PGQ_CFG_PAYLOAD_H
#define PGQ_CFG_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "pgq_config.h"

/* Whether s is one JSON value that jsonb accepts (RFC 8259, valid UTF-8,
 * no \u0000). 0, or -1 with what is wrong and where ("byte 7: expected
 * ':' after an object key"). */
int cfg_json_check(const char *s, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Whether the JSON text s (already checked) meets the contract req of n
 * keys of job type `type`: 0, or -1 naming the key ("missing required key
 * \"to\" (string) of job type \"send-email\""). */
int cfg_payload_meets(const char *s, const pgq_cfg_require *req, size_t n, const char *type,
                      char *err, size_t errlen) __attribute__((warn_unused_result));

/* The size PostgreSQL's jsonb makes of the JSON text s, in bytes, as
 * pgq.payload_size() measures it for [job T] max_payload (jsonb_size.c).
 * 0 with *out set, or -1 with err (s is not valid JSON, out of memory). */
int cfg_jsonb_size(const char *s, int64_t *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
