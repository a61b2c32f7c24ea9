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
    if (c->borrowed)
        return seterr(err, errlen, "connect: a borrowed connection (pgq_conn_wrap) is not "
                      "reconnected by pgq: reconnect it, then wrap it again");
    /* Keepalives and a TCP user timeout: a half-open connection (a peer
     * gone without a FIN) must turn into an error, not a worker blocked
     * forever. Keywords after dbname override the URL's. */
    const char *keys[] = { "dbname", "fallback_application_name", "connect_timeout",
                           "keepalives", "keepalives_idle", "keepalives_interval",
                           "keepalives_count", "tcp_user_timeout", NULL };
    const char *vals[] = { c->url, "pgq", "10", "1", "30", "10", "3", "60000", NULL };

    PQfinish(c->pg);
    c->pg = NULL;
    c->prepared = 0;
    if (db_url_check(c->url, err, errlen) < 0)
        return -1;
    c->pg = PQconnectdbParams(keys, vals, 1);
    if (!c->pg)
        return seterr(err, errlen, "connect: out of memory");
    if (PQstatus(c->pg) != CONNECTION_OK)
        return db_error(c, NULL, "connect", err, errlen);
    PQsetNoticeProcessor(c->pg, quiet_notices, NULL);
    /* SKIP LOCKED claiming and enqueue's fresh-snapshot look-up rely on
     * READ COMMITTED, whatever the role's or database's default is. A
     * session setting would not stay with us through a transaction pooler
     * (and would be left on a server connection other clients get): there
     * the default has to be right. */
    if (c->txpool) {
        PGresult *r = db_query(c, "SELECT current_setting('default_transaction_isolation')", 0,
                               NULL, PGRES_TUPLES_OK, "connect", err, errlen);
        if (!r)
            return -1;
        bool rc = strcmp(PQgetvalue(r, 0, 0), "read committed") == 0;
        if (!rc)
            seterr(err, errlen, "connect: through a transaction pooler pgq needs the server's "
                   "default_transaction_isolation to be read committed, not %s (set it for the "
                   "role or the database)", PQgetvalue(r, 0, 0));
        PQclear(r);
        return rc ? 0 : -1;
    }
    return db_command(c, "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL "
                         "READ COMMITTED", "connect", err, errlen);
}

int pgq_pooler_parse(const char *text, pgq_pooler *out, char *err, size_t errlen)
{
    if (strcmp(text, "transaction") == 0)
        *out = PGQ_POOLER_TRANSACTION;
    else if (strcmp(text, "session") == 0 || strcmp(text, "none") == 0)
        *out = PGQ_POOLER_NONE;
    else
        return seterr(err, errlen, "pooler \"%s\" is not one of transaction, session, none",
                      text);
    return 0;
}

bool pgq_conn_txpooled(const pgq_conn *c)
{
    return c->txpool;
}

int pgq_connect(const char *url, pgq_conn **out, char *err, size_t errlen)
{
    return pgq_connect_via(url, PGQ_POOLER_AUTO, out, err, errlen);
}

int pgq_connect_via(const char *url, pgq_pooler pooler, pgq_conn **out, char *err,
                    size_t errlen)
{
    if (pooler == PGQ_POOLER_AUTO) {
        const char *env = getenv("PGQ_POOLER");
        char why[256];
        pooler = PGQ_POOLER_NONE;
        if (env && *env && pgq_pooler_parse(env, &pooler, why, sizeof why) < 0)
            return seterr(err, errlen, "connect: PGQ_POOLER: %s", why);
    }
    pgq_conn *c = calloc(1, sizeof *c);
    if (!c)
        return seterr(err, errlen, "connect: out of memory");
    c->txpool = pooler == PGQ_POOLER_TRANSACTION;
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

pgq_conn *pgq_conn_wrap(void *pg)
{
    if (!pg)
        return NULL;
    pgq_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->pg = pg;
    c->borrowed = true;
    return c;
}

void pgq_disconnect(pgq_conn *c)
{
    if (!c)
        return;
    if (!c->borrowed)
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
