/* Internal: the migrations compiled into the library (generated table). */
#ifndef PGQ_MIGRATIONS_H
#define PGQ_MIGRATIONS_H

#include <stddef.h>

struct pgq_migration {
    int version;
    const char *name;
    const char *sql;
};

/* In ascending version order (the Makefile passes the files sorted). */
extern const struct pgq_migration pgq_migrations[];
extern const size_t pgq_nmigrations;

/* The state machine's one home (migrations/state_machine.sql) and the MD5
 * of its text, applied after the numbered migrations when it changed. */
extern const char pgq_state_sql[];
extern const char pgq_state_md5[];

/* The roles and grants (migrations/grants.sql), applied after the state
 * machine at every migrate to this library's version. */
extern const char pgq_grants_sql[];

#endif
