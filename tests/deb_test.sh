#!/bin/sh
# The Debian packages, as a user gets them: `make deb` builds pgq, libpgq0
# and libpgq-dev (lintian must find no error), they are installed on this
# machine (dpkg -i, apt-get -f install if something is missing), checked
# as installed, and purged again. CI runs this as a step of its own
# (.ci/run, before make test); `make deb-test` runs it by hand. Needs root
# (it installs packages); skips, saying why, only when it is not root or
# the packaging tools cannot be installed.
#
# Checked: pgq-pool --check -c /etc/pgq/pool.ini (as root and as the user
# pgq the postinst created), man pgq / pgq-pool / pool.ini / libpgq render
# without a warning, the library is known to the loader and a program
# built with pkg-config's flags runs against it, pool.ini is a conffile
# readable by root:pgq only, the unit has /usr/bin and /etc/pgq, passes
# systemd-analyze verify and scores at most 4.0 on systemd-analyze
# security; after the purge nothing is left.
set -u
cd "$(dirname "$0")/.."

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "deb_test: ok: $*"; }
bad() { fail=$((fail + 1)); echo "deb_test: FAILED: $*"; }
check() { # check WHAT CMD...: CMD must exit 0
    what=$1; shift
    if out=$("$@" 2>&1); then ok "$what"; else bad "$what: $out"; fi
}

if [ "$(id -u)" != 0 ]; then
    echo "deb_test: skipped: installing packages needs root"
    exit 0
fi
if ! sh scripts/deps.sh deb; then
    echo "deb_test: skipped: the packaging tools (dpkg-dev, debhelper, fakeroot, lintian) cannot be installed"
    exit 0
fi

version=$(sed -n 's/^#define PGQ_VERSION "\(.*\)"/\1/p' core/pgq.h)
pkgs="pgq libpgq0 libpgq-dev"
purge() { dpkg --purge $pkgs >/dev/null 2>&1; }
if dpkg-query -W -f='${Status}\n' pgq 2>/dev/null | grep -q installed; then
    echo "deb_test: note: pgq was installed before; it is replaced and purged"
fi
trap purge EXIT

# -- build ----------------------------------------------------------------
log=$(mktemp)
if ! make deb > "$log" 2>&1; then
    tail -40 "$log"
    bad "make deb (log above)"
    echo "deb_test: $pass passed, $fail failed"
    exit 1
fi
ok "make deb: $(ls build/deb/*.deb | tr '\n' ' ')"
warnings=$(grep -c '^W: ' "$log")
echo "deb_test: lintian: 0 errors, $warnings warnings"
grep '^[WI]: ' "$log" | sed 's/^/deb_test: lintian: /'
rm -f "$log"

# -- install ----------------------------------------------------------------
export DEBIAN_FRONTEND=noninteractive
debs="build/deb/pgq_${version}_*.deb build/deb/libpgq0_${version}_*.deb build/deb/libpgq-dev_${version}_*.deb"
# shellcheck disable=SC2086
if ! out=$(dpkg -i $debs 2>&1); then
    echo "$out" | tail -5
    echo "deb_test: dpkg -i left dependencies open: apt-get -f install"
    apt-get -f install -y -qq >/dev/null 2>&1
fi
for p in $pkgs; do
    check "$p installed" sh -c "dpkg-query -W -f='\${Status}' $p | grep -qx 'install ok installed'"
done

# -- as installed -----------------------------------------------------------
check "pgq-pool --check -c /etc/pgq/pool.ini" /usr/bin/pgq-pool --check -c /etc/pgq/pool.ini
check "the system user pgq exists" getent passwd pgq
check "pgq-pool --check as the user pgq" runuser -u pgq -- /usr/bin/pgq-pool --check -c /etc/pgq/pool.ini
check "pool.ini is root:pgq 0640" sh -c '[ "$(stat -c %U:%G:%a /etc/pgq/pool.ini)" = root:pgq:640 ]'
check "pool.ini is a conffile" sh -c "dpkg-query -W -f='\${Conffiles}' pgq | grep -q ' /etc/pgq/pool.ini '"
check "pgq --version" sh -c "/usr/bin/pgq --version | grep -q '$version'"
for page in pgq pgq-pool pool.ini libpgq; do
    w=$(MANWIDTH=80 man --warnings "$page" 2>&1 >/dev/null)
    st=$?
    if [ $st = 0 ] && [ -z "$w" ]; then ok "man $page renders without warnings"; else
        bad "man $page (exit $st): $w"; fi
done
check "libpgq.so.0 is known to the loader" sh -c 'ldconfig -p | grep -Eq "libpgq.so.0 .*=> (/usr)?/lib/"'
check "headers in /usr/include/pgq" test -f /usr/include/pgq/pgq.h -a -f /usr/include/pgq/pgq_pool.h
check "pkg-config pgq is $version" sh -c "[ \"\$(pkg-config --modversion pgq)\" = '$version' ]"
tmp=$(mktemp -d)
cat > "$tmp/use.c" <<'EOF'
#include <pgq/pgq.h>
#include <pgq_pool.h>
#include <stdio.h>
int main(void)
{
    char err[512];
    pgq_cfg *cfg;
    if (pgq_cfg_load("/etc/pgq/pool.ini", &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    printf("%zu job types\n", cfg->ntypes);
    pgq_cfg_free(cfg);
    return 0;
}
EOF
# shellcheck disable=SC2046
check "a program built with pkg-config's flags links libpgq.so.0" \
    sh -c "cc -o '$tmp/use' '$tmp/use.c' \$(pkg-config --cflags --libs pgq) && \
           ldd '$tmp/use' | grep -Eq 'libpgq.so.0 => (/usr)?/lib/' && '$tmp/use'"
rm -rf "$tmp"
unit=/lib/systemd/system/pgq-pool.service
check "the unit runs /usr/bin/pgq-pool -c /etc/pgq/pool.ini" \
    grep -qx 'ExecStart=/usr/bin/pgq-pool -c /etc/pgq/pool.ini' "$unit"
check "the unit is Type=notify" grep -qx 'Type=notify' "$unit"
if command -v systemd-analyze >/dev/null 2>&1; then
    check "systemd-analyze verify: no complaint" sh -c \
        "out=\$(systemd-analyze verify '$unit' 2>&1) && [ -z \"\$out\" ] || { echo \"\$out\"; false; }"
    score=$(systemd-analyze security --offline=true "$unit" 2>&1 | grep 'Overall exposure')
    check "systemd-analyze security <= 4.0 (${score#*: })" \
        systemd-analyze security --offline=true --threshold=40 "$unit"
else
    echo "deb_test: systemd-analyze missing: the unit's score is not checked"
fi

# -- removal ------------------------------------------------------------------
check "dpkg --purge $pkgs" dpkg --purge $pkgs
check "nothing left" sh -c '! [ -e /usr/bin/pgq ] && ! [ -e /usr/bin/pgq-pool ] && \
    ! [ -e /etc/pgq/pool.ini ] && ! [ -e /lib/systemd/system/pgq-pool.service ] && \
    ! [ -e /usr/include/pgq ] && ! ldconfig -p | grep -q libpgq'
trap - EXIT

echo "deb_test: $pass passed, $fail failed"
[ "$fail" = 0 ]
