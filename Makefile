# pgq — build, test, run, install. See README.md.
#
#   make                 libpgq.a, libpgq.so, pgq (in $(BUILD)/)
#   make test            Check unit + integration tests against a throwaway PostgreSQL
#   make run             throwaway PostgreSQL (unless DATABASE_URL is set), migrate, demo
#   make bench           benchmarks against a throwaway PostgreSQL -> bench/RESULTS.md
#   make soak            30-minute soak (SOAK_MINUTES, SOAK_RATE) -> bench/SOAK.md
#   make pinned          17-minute pinned-xmin run (PIN_MINUTES, ...) -> bench/PINNED.md
#   make chaos           pools under load and random faults (CHAOS_SECONDS, CHAOS_ARGS)
#   make fuzz            libFuzzer targets (FUZZ_SECONDS per target), make fuzz-check
#   make install         PREFIX=/usr/local DESTDIR= (LIBDIR, MANDIR, UNITDIR, SYSCONFDIR)
#   make deb             Debian packages pgq, libpgq0, libpgq-dev -> build/deb/
#   make deb-test        build them, install them here (root), check, purge
#   make SANITIZER=address|thread [test]   instrumented build in build-address/ etc.
#                        (address is ASan + UBSan)

PREFIX    ?= /usr/local
DESTDIR   ?=
# Where make install puts things (the Debian package sets LIBDIR to the
# multiarch directory and UNITDIR to /lib/systemd/system).
LIBDIR    ?= $(PREFIX)/lib
MANDIR    ?= $(PREFIX)/share/man
UNITDIR   ?= $(PREFIX)/lib/systemd/system
DATADIR   ?= $(PREFIX)/share/pgq
SANITIZER ?=
comma := ,
BUILD     ?= build$(if $(SANITIZER),-$(SANITIZER))

CC      ?= gcc
PKGS     = libpq inih
TESTPKGS = check
WARN     = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat=2 -Wwrite-strings
WERROR  ?= -Werror
OPT     ?= -O2 -g
# address brings UndefinedBehaviorSanitizer along (its checks cost little and
# need no build of their own); an undefined-behaviour report aborts, so a test
# cannot pass over one.
SAN_KINDS = $(strip $(if $(filter address,$(SANITIZER)),address$(comma)undefined,\
            $(if $(filter fuzzer,$(SANITIZER)),fuzzer-no-link$(comma)address$(comma)undefined,\
            $(SANITIZER))))
SAN_FLAGS = $(if $(SANITIZER),-fsanitize=$(SAN_KINDS) -fno-omit-frame-pointer \
            $(if $(filter address fuzzer,$(SANITIZER)),-fno-sanitize-recover=undefined),)
CFLAGS  += -std=c17 -D_GNU_SOURCE -pthread -fPIC $(OPT) $(WARN) $(WERROR) $(SAN_FLAGS) \
           -MMD -MP -Icore -Iconfig -Ipool -Icli -Itui -I$(BUILD) $(shell pkg-config --cflags $(PKGS))
LDFLAGS += -pthread $(SAN_FLAGS)
LIBS     = $(shell pkg-config --libs $(PKGS))
# libsystemd is optional: with its headers pgq-pool speaks sd_notify
# (pool/notify.c, the one file that knows, loads libsystemd.so.0 at run time
# under systemd only) and the unit is Type=notify; without them (SYSTEMD=no,
# or no libsystemd-dev) everything builds, the unit is Type=simple.
SYSTEMD ?= $(if $(shell pkg-config --exists libsystemd && echo y),yes,no)
ifeq ($(SYSTEMD),yes)
$(BUILD)/pool/notify.o: CFLAGS += -DPGQ_HAVE_SYSTEMD $(shell pkg-config --cflags libsystemd)
endif
TESTLIBS = $(shell pkg-config --libs $(TESTPKGS))

CORE_SRC   = $(wildcard core/*.c)
CONFIG_SRC = $(wildcard config/*.c)
POOL_SRC   = $(wildcard pool/*.c)
# Numbered schema migrations, applied once each in order; then the state
# machine's one home, applied whenever its text changed, and the roles and
# grants, applied after it at every migrate (core/migrate.c).
MIGRATIONS = $(sort $(wildcard migrations/[0-9]*.sql))
STATE_SQL = migrations/state_machine.sql
GRANTS_SQL = migrations/grants.sql
LIB_OBJ    = $(CORE_SRC:%.c=$(BUILD)/%.o) $(CONFIG_SRC:%.c=$(BUILD)/%.o) \
             $(POOL_SRC:%.c=$(BUILD)/%.o) $(BUILD)/migrations_gen.o
# cli/ holds both programs' front ends: pool_main.c is pgq-pool, the rest pgq.
POOL_MAIN  = $(BUILD)/cli/pool_main.o $(BUILD)/cli/dbarg.o
CLI_SRC    = $(filter-out cli/pool_main.c,$(wildcard cli/*.c))
CLI_OBJ    = $(CLI_SRC:%.c=$(BUILD)/%.o) $(BUILD)/cli/typegen_gen.o
# The dashboard goes into the programs only, so libpgq needs no ncurses.
TUI_SRC    = $(wildcard tui/*.c)
TUI_OBJ    = $(TUI_SRC:%.c=$(BUILD)/%.o)
TUI_LIBS   = $(shell pkg-config --libs ncursesw)
# The typed job map (pgq types header): a generated header parses and
# builds payloads with jansson, so the programs that include one (the
# embedding example, the tests' programs) need it; libpgq and pgq do not.
TYPED_PKGS   = jansson
TYPED_CFLAGS = $(shell pkg-config --cflags $(TYPED_PKGS))
TYPED_LIBS   = $(shell pkg-config --libs $(TYPED_PKGS))
TEST_SRC   = $(wildcard tests/*.c)
TEST_OBJ   = $(TEST_SRC:%.c=$(BUILD)/%.o)

LIBA = $(BUILD)/libpgq.a
LIBSO = $(BUILD)/libpgq.so
PGQ  = $(BUILD)/pgq
POOL = $(BUILD)/pgq-pool
TESTBIN = $(BUILD)/pgq-tests
VERSION := $(shell sed -n 's/^\#define PGQ_VERSION "\(.*\)"/\1/p' core/pgq.h)
BENCH = $(BUILD)/pgq-bench

.PHONY: bench-floor bench-cost all test unit run bench soak pinned install uninstall clean deps check-deps man service \
        fuzz fuzz-check fuzz-build chaos valgrind deb deb-test
EXAMPLES = $(BUILD)/examples/embed-demo $(BUILD)/examples/plugin-demo.so

all: $(LIBA) $(LIBSO) $(PGQ) $(POOL) $(EXAMPLES) $(BENCH)

# Man pages: scdoc sources in man/; pool.ini(5)'s keys come from the key
# table that drives parsing (scripts/man-keys.sh over pgq config-reference).
MAN_SRC  = $(wildcard man/*.scd)
MAN_PAGES = $(MAN_SRC:man/%.scd=$(BUILD)/man/%) $(BUILD)/man/pool.ini.5
man: $(MAN_PAGES)

$(BUILD)/man/%: man/%.scd
	@mkdir -p $(dir $@)
	scdoc < $< > $@

$(BUILD)/man/pool.ini.5.scd: man/pool.ini.5.scd.in scripts/man-keys.sh $(PGQ)
	@mkdir -p $(dir $@)
	scripts/man-keys.sh $(PGQ) > $@.keys
	awk -v keys=$@.keys '/^@KEYS@$$/ { while ((getline l < keys) > 0) print l; next } { print }' \
	    man/pool.ini.5.scd.in > $@
	rm -f $@.keys

$(BUILD)/man/pool.ini.5: $(BUILD)/man/pool.ini.5.scd
	scdoc < $< > $@

# The systemd unit, with this install's paths.
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
# The install paths and options baked into generated files, rewritten only
# when they change, so that `make install PREFIX=...` after a plain `make`
# does not install a unit or a pool.ini with the old paths.
INSTALL_VARS = $(PREFIX) $(SYSCONFDIR) $(DATADIR) $(SYSTEMD)
$(BUILD)/install.vars: FORCE
	@mkdir -p $(BUILD)
	@echo '$(INSTALL_VARS)' | cmp -s - $@ || echo '$(INSTALL_VARS)' > $@

$(BUILD)/pgq-pool.service: config/pgq-pool.service.in Makefile $(BUILD)/install.vars
	@mkdir -p $(dir $@)
	sed -e 's|@BINDIR@|$(PREFIX)/bin|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	    -e 's|@TYPE@|$(if $(filter yes,$(SYSTEMD)),notify,simple)|' \
	    -e 's|^@WATCHDOG@|$(if $(filter yes,$(SYSTEMD)),,# no sd_notify in this build: )|' $< > $@
service: $(BUILD)/pgq-pool.service

# The pool.ini make install puts in SYSCONFDIR/pgq/ (the Debian package's
# conffile /etc/pgq/pool.ini): config/pool.ini with its example handlers
# where they are installed, DATADIR/examples/handlers/, so that it passes
# pgq-pool --check as installed.
$(BUILD)/pool.ini: config/pool.ini Makefile $(BUILD)/install.vars
	@mkdir -p $(dir $@)
	sed -e 's|\.\./examples/handlers/|$(DATADIR)/examples/handlers/|g' $< > $@

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# The list of migration files, rewritten only when it changes, so that
# deleting or renaming one rebuilds the embedded table too.
$(BUILD)/migrations.list: FORCE
	@mkdir -p $(BUILD)
	@echo '$(MIGRATIONS)' | cmp -s - $@ || echo '$(MIGRATIONS)' > $@

$(BUILD)/migrations_gen.c: $(MIGRATIONS) $(STATE_SQL) $(GRANTS_SQL) $(BUILD)/migrations.list scripts/embed-sql.sh
	@mkdir -p $(BUILD)
	sh scripts/embed-sql.sh $@ $(STATE_SQL) $(GRANTS_SQL) $(MIGRATIONS)

$(BUILD)/migrations_gen.o: $(BUILD)/migrations_gen.c
	$(CC) $(CFLAGS) -Wno-overlength-strings -c -o $@ $<

# What pgq types header copies into every header it writes: the runtime
# (cli/typed_runtime.h, as a C string; '?' escaped against trigraphs), and
# every pgq_ name of the public headers, which no typed function may take.
API_HEADERS = core/pgq.h pool/pgq_pool.h config/pgq_config.h
$(BUILD)/cli/typegen_gen.c: cli/typed_runtime.h $(API_HEADERS) Makefile
	@mkdir -p $(dir $@)
	{ echo '/* Generated by the Makefile from cli/typed_runtime.h and the public headers: do not edit. */'; \
	  echo '#include "typegen.h"'; \
	  echo 'const char typegen_runtime[] ='; \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/?/\\?/g' -e 's/^/    "/' -e 's/$$/\\n"/' cli/typed_runtime.h; \
	  echo '    ;'; \
	  echo 'const char *const typegen_api_names[] = {'; \
	  grep -ohE '\<pgq_[A-Za-z0-9_]+' $(API_HEADERS) | LC_ALL=C sort -u | sed 's/.*/    "&",/'; \
	  echo '};'; \
	  echo 'const size_t typegen_napi_names = sizeof typegen_api_names / sizeof typegen_api_names[0];'; \
	} > $@.tmp && mv $@.tmp $@

$(BUILD)/cli/typegen_gen.o: $(BUILD)/cli/typegen_gen.c
	$(CC) $(CFLAGS) -Wno-overlength-strings -c -o $@ $<

# The library's objects hide every symbol but the public API (PGQ_API in
# the public headers), so libpgq.so exports pgq_* names only; the static
# library and the programs still link the internal ones among themselves.
# They depend on this file, so that a change of flags rebuilds them.
$(LIB_OBJ): CFLAGS += -fvisibility=hidden
$(LIB_OBJ): Makefile

$(LIBA): $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(LIBSO): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libpgq.so.0 $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tui/%.o: CFLAGS += $(shell pkg-config --cflags ncursesw)

$(PGQ): $(CLI_OBJ) $(TUI_OBJ) $(LIBA)
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(TUI_OBJ) $(LIBA) $(LIBS) $(TUI_LIBS)

$(POOL): $(POOL_MAIN) $(TUI_OBJ) $(LIBA)
	$(CC) $(LDFLAGS) -rdynamic -o $@ $(POOL_MAIN) $(TUI_OBJ) $(LIBA) $(LIBS) $(TUI_LIBS)

# The benchmark driver (bench/README.md): embeds a pool like examples/embed.c.
# The dashboard's model and its ncurses-free helpers: the tests drive them
# directly, pgq-bench dashboard measures refreshes with them.
TUI_MODEL_OBJ = $(BUILD)/tui/model.o $(BUILD)/tui/fetch.o $(BUILD)/tui/snapshot.o \
                $(BUILD)/tui/filter.o $(BUILD)/tui/follow.o
BENCH_OBJ = $(patsubst %.c,$(BUILD)/%.o,$(wildcard bench/*.c))
$(BENCH): $(BENCH_OBJ) $(TUI_MODEL_OBJ) $(LIBA)
	$(CC) $(LDFLAGS) -rdynamic -o $@ $(BENCH_OBJ) $(TUI_MODEL_OBJ) $(LIBA) $(LIBS) -lm

# The embedding and plugin examples; the tests build and run them. pgq-pool
# is linked -rdynamic so that plugins resolve libpgq (pgq_ctx_*) from it.
# embed.c uses the typed job map of its own pool.ini, regenerated whenever
# that file (or pgq) changes.
$(BUILD)/examples/embed_jobs.h: examples/embed.ini $(PGQ)
	@mkdir -p $(dir $@)
	$(PGQ) types header -c examples/embed.ini -o $@
$(BUILD)/examples/embed.o: $(BUILD)/examples/embed_jobs.h
$(BUILD)/examples/embed.o: private CFLAGS += -I$(BUILD)/examples $(TYPED_CFLAGS)
$(BUILD)/examples/embed-demo: $(BUILD)/examples/embed.o $(LIBA)
	$(CC) $(LDFLAGS) -rdynamic -o $@ $< $(LIBA) $(LIBS) $(TYPED_LIBS)

$(BUILD)/examples/plugin-demo.so: examples/plugin.c pool/pgq_pool.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -shared -o $@ $<

# Plugins the pool tests load (tests/plugins/NAME.c -> $(BUILD)/tests/plugins/NAME.so).
TEST_PLUGINS = $(patsubst %.c,$(BUILD)/%.so,$(wildcard tests/plugins/*.c))
$(TEST_PLUGINS): $(BUILD)/tests/plugins/%.so: tests/plugins/%.c pool/pgq_pool.h core/pgq.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -shared -o $@ $< $(LIBS)
$(TESTBIN): $(TEST_PLUGINS)

# The typed job map's round trip (tests/typed_test.c): a producer and a
# handler of every contract type, compiled against a header generated from
# tests/typed/all.ini.
TYPED_TEST = $(BUILD)/tests/typed/roundtrip
$(BUILD)/tests/typed/all_types.h: tests/typed/all.ini $(PGQ)
	@mkdir -p $(dir $@)
	$(PGQ) types header -c tests/typed/all.ini -o $@
$(BUILD)/tests/typed/roundtrip.o: $(BUILD)/tests/typed/all_types.h
$(BUILD)/tests/typed/roundtrip.o: private CFLAGS += -I$(BUILD)/tests/typed $(TYPED_CFLAGS)
$(TYPED_TEST): $(BUILD)/tests/typed/roundtrip.o $(LIBA)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBA) $(LIBS) $(TYPED_LIBS)
$(TESTBIN): $(TYPED_TEST)

# The chaos driver (tests/chaos/chaos.c): pools under load and faults.
CHAOS = $(BUILD)/pgq-chaos
CHAOS_SECONDS ?= 600
$(CHAOS): $(BUILD)/tests/chaos/chaos.o $(LIBA)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBA) $(LIBS)

# The long chaos run (make test holds a short one): a throwaway server with
# room for the idle-connections fault; the report goes to stdout.
chaos: deps all $(CHAOS) $(TEST_PLUGINS)
	PGQ_PG_OPTS="-c fsync=off -c max_connections=500" scripts/with-postgres.sh --env DATABASE_URL -- \
	    sh -c '$(PGQ) migrate >/dev/null && $(CHAOS) --seconds $(CHAOS_SECONDS) $(CHAOS_ARGS)'

$(TESTBIN): $(TEST_OBJ) $(TUI_MODEL_OBJ) $(LIBA)
	$(CC) $(LDFLAGS) -o $@ $(TEST_OBJ) $(TUI_MODEL_OBJ) $(LIBA) $(LIBS) $(TESTLIBS)

# Unit and integration tests; a throwaway PostgreSQL unless
# PGQ_TEST_DATABASE_URL names one. fsync is off there: tests check
# correctness, and crash tests kill processes, not the machine.
# A failed run ends with the list of its failures (after the server log's
# tail that with-postgres prints), so that the last lines name them.
test: deps all man service $(TESTBIN) $(CHAOS)
	@rm -f $(BUILD)/test-failures.txt
	PGQ_PG_OPTS="-c fsync=off -c synchronous_commit=off" \
	PGQ_TEST_DIR=$(CURDIR)/tests PGQ_BIN_DIR=$(CURDIR)/$(BUILD) \
	PGQ_TEST_FAILURES=$(CURDIR)/$(BUILD)/test-failures.txt \
	    scripts/with-postgres.sh --env PGQ_TEST_DATABASE_URL -- $(TESTBIN) || \
	    { rc=$$?; echo "--- make test failed (exit $$rc):"; \
	      cat $(BUILD)/test-failures.txt 2>/dev/null || echo "(no failure list: the runner died)"; \
	      exit $$rc; }

# Unit tests only: no database needed (the layout suite reads every object
# and libpgq.so, so everything is built first).
unit: all man service $(TESTBIN)
	PGQ_TEST_DIR=$(CURDIR)/tests PGQ_BIN_DIR=$(CURDIR)/$(BUILD) PGQ_UNIT_ONLY=1 $(TESTBIN)

run: deps all
	scripts/run-demo.sh $(BUILD)

# Benchmarks with default durability (fsync on); writes bench/RESULTS.md.
# Knobs (RUNS, THROUGHPUT_JOBS, BACKLOG_SIZES, ...) in bench/README.md.
bench: deps all
	bench/run.sh bench $(BUILD)

# Instructions per strict transition (complete one job, claim the next) and
# the floor of two bare UPDATEs, by callgrind: the same figure on a busy
# machine and a quiet one (bench/README.md, "the cost of one transition").
bench-cost: deps all
	bench/transition_cost.sh $(BUILD)

# What any state machine on PostgreSQL can reach here, beside the ceiling:
# the floors under issue 10's open targets; writes bench/FLOOR.md.
bench-floor: deps all
	bench/floor.sh $(BUILD)

# The sustained-load soak, apart from make bench; writes bench/SOAK.md.
soak: deps all
	bench/run.sh soak $(BUILD)

# A transaction held open beside a loaded pool (pgq-bench pinned, sustained);
# writes bench/PINNED.md. The short pinned drain is part of make bench.
pinned: deps all
	bench/run.sh pinned $(BUILD)

deps:
	@scripts/deps.sh

# The CLI and a short pool run under valgrind's memcheck (no sanitizer
# build: valgrind wants the plain one), on a throwaway database.
valgrind: deps all
	scripts/with-postgres.sh --env DATABASE_URL -- scripts/valgrind.sh $(BUILD)

# Fuzzing (tests/fuzz/README.md): libFuzzer targets for every parser of user
# input, built with clang under ASan + UBSan in build-fuzz/, each run for
# FUZZ_SECONDS on its corpus in tests/fuzz/corpus/. `make fuzz-check` only
# replays the corpora (seconds; part of .ci/run).
FUZZ_TARGETS = config duration require words dburl utf8 cron payload
FUZZ_SECONDS ?= 600
fuzz: deps
	$(MAKE) CC=clang SANITIZER=fuzzer BUILD=build-fuzz fuzz-build
	scripts/fuzz.sh run build-fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)
fuzz-check: deps
	$(MAKE) CC=clang SANITIZER=fuzzer BUILD=build-fuzz fuzz-build
	scripts/fuzz.sh check build-fuzz 0 $(FUZZ_TARGETS)
fuzz-build: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz_%)
$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer -Itests/fuzz -o $@ $< $(LIBA) $(LIBS) $(LDFLAGS)

install: all man service $(BUILD)/pool.ini
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PREFIX)/include/pgq \
	    $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(DATADIR)/examples/handlers $(DESTDIR)$(SYSCONFDIR)/pgq
	for p in $(MAN_PAGES); do s=$${p##*.}; install -d $(DESTDIR)$(MANDIR)/man$$s; \
	    install -m 644 $$p $(DESTDIR)$(MANDIR)/man$$s/; done
	install -d $(DESTDIR)$(UNITDIR)
	install -m 644 $(BUILD)/pgq-pool.service $(DESTDIR)$(UNITDIR)/
	install -m 755 $(PGQ) $(POOL) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(LIBA) $(DESTDIR)$(LIBDIR)/
	install -m 644 $(LIBSO) $(DESTDIR)$(LIBDIR)/libpgq.so.0
	ln -sf libpgq.so.0 $(DESTDIR)$(LIBDIR)/libpgq.so
	install -m 644 core/pgq.h pool/pgq_pool.h config/pgq_config.h $(DESTDIR)$(PREFIX)/include/pgq/
	install -m 755 examples/handlers/*.sh $(DESTDIR)$(DATADIR)/examples/handlers/
	# an existing pool.ini is the operator's: never overwritten
	[ -e $(DESTDIR)$(SYSCONFDIR)/pgq/pool.ini ] || \
	    install -m 644 $(BUILD)/pool.ini $(DESTDIR)$(SYSCONFDIR)/pgq/pool.ini
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@REQUIRES@|$(PKGS)|' \
	    -e 's|@VERSION@|$(VERSION)|' pgq.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/pgq.pc
	# the loader learns the new library (a staged DESTDIR install, as the
	# Debian package's, leaves that to ldconfig's trigger on the target)
	if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/pgq $(DESTDIR)$(PREFIX)/bin/pgq-pool \
	    $(DESTDIR)$(LIBDIR)/libpgq.* $(DESTDIR)$(PREFIX)/include/pgq/pgq.h \
	    $(DESTDIR)$(PREFIX)/include/pgq/pgq_pool.h $(DESTDIR)$(PREFIX)/include/pgq/pgq_config.h \
	    $(DESTDIR)$(LIBDIR)/pkgconfig/pgq.pc \
	    $(DESTDIR)$(MANDIR)/man1/pgq.1 $(DESTDIR)$(MANDIR)/man8/pgq-pool.8 \
	    $(DESTDIR)$(MANDIR)/man5/pool.ini.5 $(DESTDIR)$(MANDIR)/man3/libpgq.3 \
	    $(DESTDIR)$(UNITDIR)/pgq-pool.service
	rm -rf $(DESTDIR)$(DATADIR)
	-rmdir $(DESTDIR)$(PREFIX)/include/pgq

# The Debian packages pgq, libpgq0 and libpgq-dev (debian/), built with
# dpkg-buildpackage in a copy of the tree under build/deb/ (it writes its
# results into the parent directory of the tree it builds), checked with
# lintian; the .deb files end up in build/deb/. scripts/deps.sh deb
# installs the tools.
DEB_DIR = build/deb
deb:
	@scripts/deps.sh deb
	@v=$$(dpkg-parsechangelog -S Version); [ "$$v" = "$(VERSION)" ] || { \
	    echo "make deb: debian/changelog is at $$v, core/pgq.h's PGQ_VERSION at $(VERSION):" \
	         "add a changelog entry (dch -v $(VERSION))" >&2; exit 1; }
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/pgq-$(VERSION)
	tar -c --exclude=./build --exclude='./build-*' --exclude=./.git . | tar -x -C $(DEB_DIR)/pgq-$(VERSION)
	cd $(DEB_DIR)/pgq-$(VERSION) && dpkg-buildpackage -us -uc -b
	rm -rf $(DEB_DIR)/pgq-$(VERSION)
	lintian --fail-on error --display-info $(DEB_DIR)/pgq_$(VERSION)_*.changes
	@ls -1 $(DEB_DIR)/*.deb

# Build the packages, install them here (root), check, purge (CI's step).
deb-test:
	sh tests/deb_test.sh

clean:
	rm -rf build build-address build-thread build-undefined

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

.PHONY: FORCE
FORCE:
