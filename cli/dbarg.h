/* --db and --db-file for both programs (see dbarg.c). */
#ifndef PGQ_CLI_DBARG_H
#define PGQ_CLI_DBARG_H

/* The URL given as --db's value arg: returned as is, or, when it holds a
 * password, as a private copy after arg (in argv) was overwritten with its
 * redacted form and a warning printed to stderr as "PROG: warning: ...". */
const char *cli_db_arg(const char *prog, char *arg);

/* The URL in FILE (--db-file), or NULL after printing "PROG: --db-file ...". */
const char *cli_db_file(const char *prog, const char *path);

#endif
