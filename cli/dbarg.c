/* --db URL and --db-file FILE, shared by pgq and pgq-pool.
 *
 * A password in --db is readable by every local user in `ps` and
 * /proc/PID/cmdline. Both programs therefore copy the URL, overwrite the
 * argument with its redacted form (what ps shows from then on) and warn:
 * the password was visible from exec until that moment. --db-file keeps it
 * out of argv altogether, as PGPASSWORD (in a unit's EnvironmentFile) and
 * libpq's passfile do; README "Credentials" lists them. */
#include "dbarg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgq.h"

/* The copies live as long as the program (one or two per run); kept here so
 * they stay reachable. */
static char *kept[4];

static const char *keep(char *s)
{
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
        if (!kept[i])
            return kept[i] = s;
    return s;   /* more than four --db options: the last ones are simply leaked */
}

const char *cli_db_arg(const char *prog, char *arg)
{
    if (!pgq_url_has_password(arg))
        return arg;
    char *copy = strdup(arg);
    if (!copy) {
        fprintf(stderr, "%s: out of memory\n", prog);
        exit(1);
    }
    pgq_url_hide_arg(arg);
    fprintf(stderr, "%s: warning: the --db URL holds a password, which other local users "
            "can read in ps; use --db-file FILE, PGPASSWORD or a passfile instead (README, "
            "\"Credentials\")\n", prog);
    return keep(copy);
}

const char *cli_db_file(const char *prog, const char *path)
{
    char err[1024];
    char *url = pgq_url_from_file(path, err, sizeof err);
    if (!url) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return NULL;
    }
    return keep(url);
}
