/* Internal to config/: the one table of pool.ini keys (keys.c) that
 * parsing, defaults, messages and the generated reference all read, and the
 * cross-field rules. Adding a key is adding one entry to the table. */
#ifndef PGQ_CFG_KEYS_H
#define PGQ_CFG_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgq_config.h"

enum sec_kind { SEC_NONE, SEC_DATABASE, SEC_POOL, SEC_JOB, SEC_CRON };

enum val_kind {
    V_STRING,   /* any non-empty text (char *) */
    V_NAME,     /* a queue name, pgq_queue_name_check's rule (char *) */
    V_INT,      /* whole number in [min, max] (int) */
    V_DURATION, /* duration in [min, max] milliseconds (int64_t) */
    V_LIST,     /* comma-separated queue names (char ** plus size_t count) */
    V_HANDLER,  /* "exec ...", "plugin ..." or "callback ..." (the handler fields of pgq_cfg_type) */
    V_REQUIRE,  /* payload contract (pgq_cfg_require * plus size_t count) */
    V_POOLER,   /* transaction, session or none (pgq_pooler) */
    V_RATE,     /* "N/DURATION": N in [min, max], DURATION 1ms..7d (pgq_cfg_rate) */
    V_LISTEN,   /* HOST:PORT to listen on, checked by cfg_listen_parse (char *) */
    V_SIZE,     /* bytes in [min, max], "64KiB" (int64_t) */
    V_SCHEDULE, /* a cron schedule, checked by pgq_cron_parse (char *, as written) */
    V_JSON,     /* one JSON value as jsonb takes it (char *) */
    V_ZONE,     /* an IANA time zone name, loaded (struct pgq_tz *) */
};

#define NO_OFF ((size_t)-1)
#define F_REQUIRED 1u

/* Room the loader keeps per key (keys.c asserts the table fits). */
#define CFG_KEYS_MAX 64

struct cfg_key {
    enum sec_kind sec;
    const char *name;
    enum val_kind kind;
    size_t off;         /* the value, in pgq_cfg ([database], [pool]), pgq_cfg_type ([job])
                         * or pgq_cfg_cron ([cron]) */
    size_t count_off;   /* V_LIST, V_REQUIRE: the element count */
    size_t line_off;    /* an int that records the line the key was set on, or NO_OFF */
    const char *def;    /* default, as it would be written in the file; NULL = unset */
    int64_t min, max;   /* V_INT, V_DURATION, V_SIZE: inclusive bounds */
    unsigned flags;
    const char *doc;
};

extern const struct cfg_key cfg_keys[];
extern const size_t cfg_nkeys;

/* Cross-field rules: key a must be less than key b (or equal, unless strict). */
struct cfg_rule {
    enum sec_kind sec;
    const char *a, *b;
    bool strict;
    const char *a_says, *b_says;    /* "a: VALUE a_says b (VALUE)" and the other way round */
};

extern const struct cfg_rule cfg_rules[];
extern const size_t cfg_nrules;

/* "[pool]" etc. for messages and the reference; "[pool] section", "job
 * type" for "every ... needs a ..."; a value kind's name in the reference. */
extern const char *const cfg_sec_title[];
extern const char *const cfg_sec_noun[];
extern const char *const cfg_kind_title[];

/* The key called name in section sec, or NULL. */
const struct cfg_key *cfg_find_key(enum sec_kind sec, const char *name);

#endif
