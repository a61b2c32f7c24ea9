/* Internal to config/: one parser per value kind (integer, duration, list,
 * handler, ...), none per key; each stores into the pgq_cfg or pgq_cfg_type
 * at the key's offset. */
#ifndef PGQ_CFG_VALUES_H
#define PGQ_CFG_VALUES_H

#include <stddef.h>
#include <stdint.h>

#include "keys.h"

/* Parse v as the value of k and store it under base (a pgq_cfg or a
 * pgq_cfg_type). On error the old value stays and err says what is wrong
 * with v, without file, line or key (the caller adds them). */
int cfg_value_set(const struct cfg_key *k, void *base, const char *v, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Free k's value under base and reset it to unset. */
void cfg_value_free(const struct cfg_key *k, void *base);

/* Free every value of section sec under base. */
void cfg_section_free(enum sec_kind sec, void *base);

/* A V_INT, V_DURATION or V_SIZE value as a number, and as text the way a
 * user would write it ("30s", "64KiB"); buf of len bytes (32 suffice),
 * returned. */
int64_t cfg_value_num(const struct cfg_key *k, const void *base);
char *cfg_value_format(const struct cfg_key *k, const void *base, char *buf, size_t len);

/* A size in bytes as written in pool.ini: the largest unit (GiB, MiB, KiB)
 * that holds it exactly, else bytes ("64KiB", "1500"). Returns buf. */
char *cfg_size_format(int64_t bytes, char *buf, size_t len);

#endif
