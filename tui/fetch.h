/* Internal to the model: the session the fetchers (fetch.c) need. One
 * snapshot is built by model_refresh_once (model.h). */
#ifndef PGQ_TUI_FETCH_H
#define PGQ_TUI_FETCH_H

#include <stddef.h>

#include "pgq.h"

/* Settings of the dashboard's own session on c (timeouts, application
 * name); 0, or -1 with err. Once per connection, before any refresh. */
int fetch_session_setup(pgq_conn *c, char *err, size_t errlen);

/* A filter field as a query parameter: "" (any) becomes NULL. Inline, as
 * the fetchers and the model's actions both apply the filter. */
static inline const char *filter_param(const char *s)
{
    return s && *s ? s : NULL;
}

#endif
