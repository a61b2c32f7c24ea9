/* `pgq top --once`: the dashboard's first screen, once, as plain text. */
#ifndef PGQ_TUI_ONCE_H
#define PGQ_TUI_ONCE_H

#include <stddef.h>
#include <stdio.h>

#include "pgq.h"
#include "top.h"

/* Take one snapshot on c (the caller's connection, left open), draw the
 * Overview with the dashboard's own view into a screen of COLUMNS x LINES
 * (80 x 24 when unset) and write its rows to out, trailing blanks cut. No
 * terminal is needed. 0, or -1 with err (a failed query, a screen that
 * cannot be set up, a failed write). */
int pgq_top_once(pgq_conn *c, const struct top_opts *o, FILE *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
