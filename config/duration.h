/* duration.h -- durations with units ("500ms", "30s", "1h30m"), in milliseconds. */
#ifndef PGQ_DURATION_H
#define PGQ_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* Parse a duration: one or more NUMBER+UNIT pairs, units ms, s, m, h, d,
 * largest first and each at most once ("500ms", "30s", "1h30m", "1d"), or a
 * bare "0". Whitespace around is allowed, inside is not. Returns 0 and sets
 * *ms, or -1 with a message quoting the input in err (e.g. `"10x": unknown
 * unit "x" (use ms, s, m, h, d)`); *ms is untouched on error. Thread-safe. */
int pgq_duration_parse(const char *s, int64_t *ms, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Format ms exactly, largest units first: "0", "1500ms", "30s", "5m", "1d",
 * "1h30m"; a sub-second remainder folds the seconds into milliseconds
 * ("1m30500ms"), so there is never more than one small-unit term. The result
 * parses back to the same value. Writes at most len bytes (NUL included) into
 * buf and returns buf; 32 bytes are always enough. Thread-safe. */
char *pgq_duration_format(int64_t ms, char *buf, size_t len);

#endif /* PGQ_DURATION_H */
