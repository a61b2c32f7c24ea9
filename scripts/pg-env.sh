# Sourced by the scripts that start throwaway PostgreSQL servers
# (with-postgres.sh, ha-pair.sh, ha-auto.sh, bench/transition_cost.sh):
#
#   pg_find_bindir NAME   sets bindir to PostgreSQL 15's bin directory (else
#                         the newest installed); exits 2 naming NAME if none
#   pg_run_as             sets as_user to the command prefix that runs a
#                         server: nothing, or as root `runuser -u USER --`
#                         with USER "postgres" if present, else "pgqtest"
#                         (created), since PostgreSQL refuses to run as
#                         root; pguser names that user
pg_find_bindir() {
    bindir=""
    for d in /usr/lib/postgresql/15/bin $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
        if [ -x "$d/initdb" ]; then bindir=$d; break; fi
    done
    if [ -z "$bindir" ]; then
        echo "$1: no PostgreSQL server found (apt-get install postgresql-15)" >&2
        exit 2
    fi
}

pg_run_as() {
    as_user=()
    pguser=$(id -un)
    if [ "$(id -u)" = 0 ]; then
        pguser=postgres
        if ! id "$pguser" >/dev/null 2>&1; then
            pguser=pgqtest
            id "$pguser" >/dev/null 2>&1 ||
                useradd --system --no-create-home --shell /usr/sbin/nologin "$pguser"
        fi
        as_user=(runuser -u "$pguser" --)
    fi
}
