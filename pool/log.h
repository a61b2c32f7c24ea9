/* Internal: the pool's log, one line per event on stderr. */
#ifndef PGQ_LOG_H
#define PGQ_LOG_H

#include "pgq_pool.h"

/* Write "TIME LEVEL who: message\n" with a single write(2), so lines from
 * different threads never interleave. `who` names the thread and job
 * ("worker[3] job=8812 type=send-email"); may be NULL. */
void pool_log(enum pgq_log_level level, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

bool pool_log_enabled(enum pgq_log_level level);

#endif
