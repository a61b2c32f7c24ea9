#!/bin/sh
# Install what a fresh Debian machine lacks to build, test and run pgq.
# Quiet and quick when everything is there. Needs root (or sudo) to install.
#   scripts/deps.sh        build, test and run
#   scripts/deps.sh deb    also what `make deb` needs (Debian's packaging tools)
set -eu
pkgs=""
need() { pkgs="$pkgs $1"; }
command -v gcc >/dev/null 2>&1 || need gcc
command -v make >/dev/null 2>&1 || need make
command -v pkg-config >/dev/null 2>&1 || need pkg-config
pkg-config --exists libpq 2>/dev/null || need libpq-dev
pkg-config --exists inih 2>/dev/null || need libinih-dev
pkg-config --exists check 2>/dev/null || need check
pkg-config --exists ncursesw 2>/dev/null || need libncurses-dev
# jansson: headers from `pgq types header` parse and build payloads with it
# (the embedding example and the typed tests include one)
pkg-config --exists jansson 2>/dev/null || need libjansson-dev
# sd_notify for Type=notify under systemd (optional at build time; the
# notify test needs it to see READY=1 and STOPPING=1)
pkg-config --exists libsystemd 2>/dev/null || need libsystemd-dev
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need postgresql
command -v psql >/dev/null 2>&1 || need postgresql-client
command -v tmux >/dev/null 2>&1 || need tmux
# man pages: scdoc builds them, man (man-db) renders them in the docs test
command -v scdoc >/dev/null 2>&1 || need scdoc
command -v man >/dev/null 2>&1 || need man-db
# Skytools PgQ, whose extension also lives in a schema "pgq": the migrate
# test shows that pgq refuses to write into it.
ls /usr/share/postgresql/15/extension/pgq.control >/dev/null 2>&1 || need postgresql-15-pgq3
# PgBouncer, which the pgbouncer suite starts (transaction and session mode).
[ -x /usr/sbin/pgbouncer ] || need pgbouncer
# promtool (Debian prometheus), which checks a scrape of a pool's metrics endpoint.
command -v promtool >/dev/null 2>&1 || need prometheus
# pg_auto_failover (monitor extension + pg_autoctl), the HA engine the
# failover suite runs on (tests/failover_test.c, scripts/ha-auto.sh).
ls /usr/share/postgresql/15/extension/pgautofailover.control >/dev/null 2>&1 \
    && command -v pg_autoctl >/dev/null 2>&1 || need postgresql-15-auto-failover
# clang builds the libFuzzer targets (make fuzz, make fuzz-check)
command -v clang >/dev/null 2>&1 || need clang
# make deb: dpkg-buildpackage (dpkg-dev), debhelper (compat 13), fakeroot,
# lintian to check the result. Only for that target and its test.
if [ "${1:-}" = deb ]; then
    command -v dpkg-buildpackage >/dev/null 2>&1 || need dpkg-dev
    command -v dh >/dev/null 2>&1 || need debhelper
    command -v fakeroot >/dev/null 2>&1 || need fakeroot
    command -v lintian >/dev/null 2>&1 || need lintian
fi
[ -z "$pkgs" ] && exit 0

echo "deps: installing$pkgs" >&2
if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo=sudo; else
    echo "deps: missing packages:$pkgs (run as root or install them)" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
