/* pgq through a real PgBouncer (the Debian package, started here as an
 * unprivileged user), in transaction and in session mode: producers (the
 * library and the CLI) and a real pgq-pool go through it, with fewer
 * server connections than clients so that transactions of different
 * clients share them; every job is done exactly once. Before transaction
 * pooling was supported, `pgq add` failed with "prepared statement
 * pgq_add_one already exists" and the pool logged the same for its claims.
 * Skips, saying why, when pgbouncer is not installed (scripts/deps.sh
 * installs it). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define PGBOUNCER "/usr/sbin/pgbouncer"
#define JOBS 300

static char dir[64];
static pid_t bouncer = -1;
static int bport;

/* The test server's host, port and user, from its URL. */
static void server_params(char *host, char *port, char *user, size_t len)
{
    char *why = NULL;
    PQconninfoOption *o = PQconninfoParse(tu_db_url(), &why);
    ck_assert_msg(o, "%s", why ? why : "?");
    for (PQconninfoOption *p = o; p->keyword; p++) {
        if (!p->val)
            continue;
        if (strcmp(p->keyword, "host") == 0 || strcmp(p->keyword, "hostaddr") == 0)
            snprintf(host, len, "%s", p->val);
        else if (strcmp(p->keyword, "port") == 0)
            snprintf(port, len, "%s", p->val);
        else if (strcmp(p->keyword, "user") == 0)
            snprintf(user, len, "%s", p->val);
    }
    PQconninfoFree(o);
}

/* A loopback port nobody listens on now: the kernel's choice for a socket
 * bound to port 0 (a port picked by pid could be another server's, even
 * another test PostgreSQL with a database of the same name). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Start pgbouncer in pool_mode `mode`: in transaction mode with 2 server
 * connections for the many clients (so that they share them), in session
 * mode with one per client; as root it drops to the user the test server
 * runs as. */
static void bouncer_start(const char *mode)
{
    char host[256] = "127.0.0.1", port[256] = "5432", user[256] = "pgq";
    server_params(host, port, user, sizeof host);
    snprintf(dir, sizeof dir, "/tmp/pgq-bouncer.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    bport = free_port();
    char *dbname = tu_text("SELECT current_database()", 0, NULL);
    tu_write_file(tu_fmt("%s/users.txt", dir), tu_fmt("\"%s\" \"\"\n", user));
    tu_write_file(tu_fmt("%s/pgbouncer.ini", dir),
                  tu_fmt("[databases]\n%s = host=%s port=%s dbname=%s\n"
                         "[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = %d\n"
                         "unix_socket_dir =\nauth_type = trust\nauth_file = %s/users.txt\n"
                         "pool_mode = %s\ndefault_pool_size = %d\nmax_client_conn = 200\n"
                         "logfile = %s/pgbouncer.log\npidfile = %s/pgbouncer.pid\n",
                         dbname, host, port, dbname, bport, dir, mode,
                         strcmp(mode, "transaction") == 0 ? 2 : 20, dir, dir));
    const char *as = NULL;
    if (getuid() == 0) {
        as = getpwnam("postgres") ? "postgres" : "pgqtest";
        struct passwd *pw = getpwnam(as);
        ck_assert_msg(pw, "no user %s to run pgbouncer as", as);
        ck_assert_int_eq(chown(dir, pw->pw_uid, pw->pw_gid), 0);
        ck_assert_int_eq(chown(tu_fmt("%s/users.txt", dir), pw->pw_uid, pw->pw_gid), 0);
        ck_assert_int_eq(chown(tu_fmt("%s/pgbouncer.ini", dir), pw->pw_uid, pw->pw_gid), 0);
    }
    fflush(NULL);
    bouncer = fork();
    ck_assert_int_ge(bouncer, 0);
    if (bouncer == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        if (as)
            execl(PGBOUNCER, "pgbouncer", "-u", as, tu_fmt("%s/pgbouncer.ini", dir), (char *)NULL);
        else
            execl(PGBOUNCER, "pgbouncer", tu_fmt("%s/pgbouncer.ini", dir), (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 300; i++) {
        int st;
        if (waitpid(bouncer, &st, WNOHANG) == bouncer) {
            bouncer = -1;
            ck_abort_msg("pgbouncer exited at start (log: %s/pgbouncer.log)", dir);
        }
        PGconn *pg = PQconnectdb(tu_fmt("postgresql://%s@127.0.0.1:%d/%s", user, bport, dbname));
        bool ok = PQstatus(pg) == CONNECTION_OK;
        PQfinish(pg);
        if (ok) {
            free(dbname);
            return;
        }
        tu_sleep_ms(100);
    }
    ck_abort_msg("pgbouncer did not come up on port %d (log: %s/pgbouncer.log)", bport, dir);
}

static void bouncer_stop(void)
{
    if (bouncer > 0) {
        kill(bouncer, SIGTERM);
        waitpid(bouncer, NULL, 0);
        bouncer = -1;
    }
    if (*dir)
        system(tu_fmt("rm -rf '%s'", dir));
    *dir = '\0';
}

static const char *bouncer_url(void)
{
    char host[256] = "", port[256] = "", user[256] = "pgq";
    server_params(host, port, user, sizeof host);
    char *dbname = tu_text("SELECT current_database()", 0, NULL);
    const char *url = tu_fmt("postgresql://%s@127.0.0.1:%d/%s", user, bport, dbname);
    free(dbname);
    return url;
}

/* Run the pgq CLI with PGQ_POOLER=pooler; its exit status. */
static int run_pgq_add(const char *url, const char *pooler, const char *payload)
{
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 1);
        setenv("PGQ_POOLER", pooler, 1);
        execl(tu_fmt("%s/pgq", tu_bin_dir()), "pgq", "--db", url, "add", "bouncer", payload,
              (char *)NULL);
        _exit(127);
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* JOBS jobs added through the bouncer (one by one, a batch, the CLI), run
 * by a pgq-pool that goes through it too; each appends its id to a ledger. */
static void run_through(const char *mode, const char *pooler, bool listen_direct)
{
    bouncer_start(mode);
    tu_reset();
    tu_type("bouncer", "default", "", 0, 0);
    const char *url = bouncer_url();
    char err[512];
    pgq_conn *c = NULL;
    ck_assert_msg(pgq_connect_via(url, strcmp(pooler, "transaction") == 0
                                  ? PGQ_POOLER_TRANSACTION : PGQ_POOLER_NONE, &c, err,
                                  sizeof err) == 0, "%s", err);
    ck_assert_msg(pgq_schema_check(c, err, sizeof err) == 0, "%s", err);
    for (int i = 0; i < JOBS / 2; i++) {
        pgq_add_result r;
        ck_assert_msg(pgq_add(c, "bouncer", "{}", NULL, &r, err, sizeof err) == 0,
                      "add %d: %s", i, err);
    }
    pgq_add_item items[JOBS / 2 - 6];
    pgq_add_result res[JOBS / 2 - 6];
    for (size_t i = 0; i < sizeof items / sizeof items[0]; i++)
        items[i] = (pgq_add_item){ "bouncer", "{}", PGQ_ADD_OPTS_INIT };
    ck_assert_msg(pgq_add_batch(c, items, sizeof items / sizeof items[0], res, err,
                                sizeof err) == 0, "%s", err);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(run_pgq_add(url, pooler, "{}"), 0);
    pgq_disconnect(c);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs", 0, NULL), JOBS);

    const char *ledger = tu_fmt("%s/ledger", dir), *ini = tu_fmt("%s/pool.ini", dir);
    tu_write_file(ini, tu_fmt("[database]\nurl = %s\npooler = %s\n%s"
                           "[pool]\nworkers = 4\npoll = 50ms\nheartbeat = 200ms\nlease_ttl = 5s\n"
                           "[job bouncer]\nhandler = exec /bin/sh -c 'echo $PGQ_JOB_ID >> %s'\n",
                           url, pooler,
                           listen_direct ? tu_fmt("listen_url = %s\n", tu_db_url()) : "",
                           ledger));
    fflush(NULL);
    pid_t pool = fork();
    ck_assert_int_ge(pool, 0);
    if (pool == 0) {
        int log = open(tu_fmt("%s/pool.log", dir), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(log, 2);
        execl(tu_fmt("%s/pgq-pool", tu_bin_dir()), "pgq-pool", "-c", ini, (char *)NULL);
        _exit(127);
    }
    long long done = 0;
    for (int i = 0; i < 600 && done < JOBS; i++) {
        tu_sleep_ms(100);
        done = tu_int("SELECT count(*) FROM pgq.jobs WHERE state = 'done'", 0, NULL);
    }
    kill(pool, SIGTERM);
    int st;
    ck_assert_int_eq(waitpid(pool, &st, 0), pool);
    char *log = tu_slurp(tu_fmt("%s/pool.log", dir));
    ck_assert_msg(done == JOBS, "%s: %lld of %d jobs done; pool log:\n%s", mode, done, JOBS, log);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: the pool exited %d:\n%s", mode, st,
                  log);
    ck_assert_msg(!strstr(log, "prepared statement"), "%s: pool log:\n%s", mode, log);
    free(log);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE attempts <> 1", 0, NULL), 0);
    /* exactly once: JOBS ledger lines, JOBS distinct ids */
    tu_exec("CREATE TEMP TABLE IF NOT EXISTS ledger (id bigint)", 0, NULL);
    tu_exec("TRUNCATE ledger", 0, NULL);
    char *text = tu_slurp(ledger);
    long lines = 0;
    for (char *p = text, *save = NULL, *tok; (tok = strtok_r(p, "\n", &save)); p = NULL) {
        tu_exec("INSERT INTO ledger VALUES ($1::bigint)", 1, (const char *[]){ tok });
        lines++;
    }
    free(text);
    ck_assert_int_eq(lines, JOBS);
    ck_assert_int_eq(tu_int("SELECT count(DISTINCT l.id) FROM ledger l JOIN pgq.jobs j"
                            " ON j.id = l.id", 0, NULL), JOBS);
    fprintf(stderr, "pgbouncer_test: pool_mode %s, pooler %s%s: %d jobs done once each\n", mode,
            pooler, listen_direct ? ", listen_url direct" : "", JOBS);
    bouncer_stop();
}

static bool have_bouncer(void)
{
    if (access(PGBOUNCER, X_OK) == 0)
        return true;
    fprintf(stderr, "pgbouncer_test: skipped: %s is not installed (apt-get install pgbouncer; "
                    "scripts/deps.sh does)\n", PGBOUNCER);
    return false;
}

START_TEST(transaction_mode_polling)
{
    if (have_bouncer())
        run_through("transaction", "transaction", false);
}
END_TEST

START_TEST(transaction_mode_listening_directly)
{
    if (have_bouncer())
        run_through("transaction", "transaction", true);
}
END_TEST

START_TEST(session_mode)
{
    if (have_bouncer())
        run_through("session", "session", false);
}
END_TEST

Suite *pgbouncer_suite(void)
{
    Suite *s = suite_create("pgbouncer");
    TCase *tc = tcase_create("pgbouncer");
    tcase_set_timeout(tc, TU_TIMEOUT);
    tcase_add_checked_fixture(tc, NULL, tu_check_invariants);
    tcase_add_unchecked_fixture(tc, NULL, bouncer_stop);
    tcase_add_test(tc, transaction_mode_polling);
    tcase_add_test(tc, transaction_mode_listening_directly);
    tcase_add_test(tc, session_mode);
    suite_add_tcase(s, tc);
    return s;
}
