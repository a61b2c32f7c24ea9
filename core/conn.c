/* Connections: a pgq_conn wraps one PGconn plus what is needed to
 * re-establish it (the URL) and the per-connection prepared-statement bits.
 * One thread owns a pgq_conn at a time; nothing here is shared. */
#include "db.h"

#include <stdlib.h>
#include <string.h>

/* Notices (e.g. "schema already exists") are for humans at psql, not for a
 * library, which must not print: drop them. */
static void quiet_notices(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

static int open_pg(pgq_conn *c, char *err, size_t errlen)
{
    /* Keepalives and a TCP user timeout: a half-open connection (a peer
     * gone without a FIN) must turn into an error, not a worker blocked
     * forever. Keywords after dbname override the URL's. */
    const char *keys[] = { "dbname", "fallback_application_name", "connect_timeout",
                           "keepalives", "keepalives_idle", "keepalives_interval",
                           "keepalives_count", "tcp_user_timeout", NULL };
    const char *vals[] = { c->url, "pgq", "10", "1", "30", "10", "3", "60000", NULL };

    PQfinish(c->pg);
    c->prepared = 0;
    c->pg = PQconnectdbParams(keys, vals, 1);
    if (!c->pg)
        return seterr(err, errlen, "connect: out of memory");
    if (PQstatus(c->pg) != CONNECTION_OK)
        return db_error(c, NULL, "connect", err, errlen);
    PQsetNoticeProcessor(c->pg, quiet_notices, NULL);
    /* SKIP LOCKED claiming and enqueue's fresh-snapshot look-up rely on
     * READ COMMITTED, whatever the role's or database's default is. */
    return db_command(c, "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL "
                         "READ COMMITTED", "connect", err, errlen);
}

int pgq_connect(const char *url, pgq_conn **out, char *err, size_t errlen)
{
    pgq_conn *c = calloc(1, sizeof *c);
    if (!c)
        return seterr(err, errlen, "connect: out of memory");
    c->url = strdup(url ? url : "");
    if (!c->url) {
        free(c);
        return seterr(err, errlen, "connect: out of memory");
    }
    if (open_pg(c, err, errlen) < 0) {
        pgq_disconnect(c);
        return -1;
    }
    *out = c;
    return 0;
}

void pgq_disconnect(pgq_conn *c)
{
    if (!c)
        return;
    PQfinish(c->pg);
    free(c->url);
    free(c);
}

int pgq_reconnect(pgq_conn *c, char *err, size_t errlen)
{
    return open_pg(c, err, errlen);
}

bool pgq_connected(const pgq_conn *c)
{
    return c && c->pg && PQstatus(c->pg) == CONNECTION_OK;
}

void *pgq_conn_pg(pgq_conn *c)
{
    return c->pg;
}

void pgq_conn_set_keep_done(pgq_conn *c, bool keep)
{
    c->delete_done = !keep;
}
