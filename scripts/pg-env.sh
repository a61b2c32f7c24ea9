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
#   pg_free_port          prints a loopback port nobody listens on now,
#                         below the kernel's ephemeral range
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

# Below the ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 by
# default): the kernel hands those ports to outgoing connections, so one
# picked there can be taken by any client's socket between this check and
# the server's bind. (Ports were picked in 20000-59999 until a failover
# test's node lost its port that way under the sanitizer run's load,
# 2 December 2026: "could not create any TCP/IP sockets".)
pg_free_port() {
    local lo=32768 hi p
    read -r lo hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || lo=32768
    [ "$lo" -gt 12000 ] 2>/dev/null || lo=32768
    while :; do
        p=$(( 10000 + (RANDOM * 32768 + RANDOM) % (lo - 10000) ))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}
