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

#endif
