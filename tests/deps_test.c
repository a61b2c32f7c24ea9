/* Dependencies between jobs (pgq add --after; migration 010): a job waits
 * until every parent is done, is released exactly once when many parents
 * finish at the same moment on many connections (batched and single
 * completions), and is cancelled with its chain when a parent ends dead
 * or cancelled. Batches whose later items wait for earlier ones, refusals
 * that name the parent, requeue of a chain, an add racing its parent's
 * completion, the CLI, and the invariants that catch a broken graph. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static void setup(void)
{
    tu_reset();
    tu_type("t", "default", "", 5, 1000);
    tu_type("once", "default", "", 0, 1000);   /* dead at its first failure */
}

static int64_t add(pgq_conn *c, const char *type, const int64_t *after, size_t n)
{
    char err[512];
    pgq_add_opts o = PGQ_ADD_OPTS_INIT;
    o.after = after;
    o.n_after = n;
    pgq_add_result r;
    ck_assert_msg(pgq_add(c, type, "{}", &o, &r, err, sizeof err) == 0, "%s", err);
    return r.id;
}

static const char *state_of(int64_t id)
{
    char *s = tu_text("SELECT (SELECT state FROM pgq.jobs WHERE id = $1)", 1,
                      (const char *[]){ tu_lld(id) });
    const char *out = tu_fmt("%s", s ? s : "(none)");
    free(s);
    return out;
}

static const char *error_of(int64_t id)
{
    char *s = tu_text("SELECT last_error FROM pgq.jobs WHERE id = $1", 1,
                      (const char *[]){ tu_lld(id) });
    const char *out = tu_fmt("%s", s ? s : "(null)");
    free(s);
    return out;
}

/* Claim the next job of the default queue (NULL when none is ready);
 * free it with pgq_job_free (complete() does). */
static pgq_job *claim(pgq_conn *c)
{
    char err[512];
    pgq_job *j;
    const char *q[] = { "default" };
    ck_assert_msg(pgq_claim(c, q, 1, "w", 60000, &j, err, sizeof err) == 0, "%s", err);
    return j;
}

static void complete(pgq_conn *c, pgq_job *j)
{
    char err[512];
    bool lost;
    ck_assert_msg(j != NULL, "no job to complete");
    ck_assert_msg(pgq_complete(c, j->id, j->lease_token, NULL, &lost, err, sizeof err) == 0,
                  "%s", err);
    ck_assert(!lost);
    pgq_job_free(j);
}

/* ---- fan-in: 100 parents finishing at once release the child once ---------- */

#define PARENTS 100
#define FINISHERS 8

struct finisher {
    pgq_conn *c;
    tu_barrier *start;
    bool batched;        /* one pgq_complete_claim of all its acks (the pool's path) */
    pgq_job *jobs[PARENTS];
    size_t n;
    char err[512];
    int failed;
};

static void *finish_all(void *arg)
{
    struct finisher *f = arg;
    tu_barrier_wait(f->start);   /* every connection completes its parents at once */
    if (f->batched) {
        pgq_ack acks[PARENTS];
        bool lost[PARENTS];
        for (size_t i = 0; i < f->n; i++)
            acks[i] = (pgq_ack){ f->jobs[i]->id, f->jobs[i]->lease_token, NULL, NULL, NULL };
        size_t got = 0;
        if (pgq_complete_claim(f->c, acks, f->n, lost, NULL, 0, "w", 60000, 0, NULL, &got,
                               f->err, sizeof f->err) < 0)
            f->failed++;
        for (size_t i = 0; i < f->n; i++)
            f->failed += lost[i];
    } else {
        for (size_t i = 0; i < f->n; i++) {
            bool lost;
            if (pgq_complete(f->c, f->jobs[i]->id, f->jobs[i]->lease_token, NULL, &lost, f->err,
                             sizeof f->err) < 0 || lost)
                f->failed++;
        }
    }
    for (size_t i = 0; i < f->n; i++)
        pgq_job_free(f->jobs[i]);
    return NULL;
}

START_TEST(fan_in_of_100_parents_releases_the_child_once)
{
    pgq_conn *c = tu_connect();
    int64_t parents[PARENTS];
    for (int i = 0; i < PARENTS; i++)
        parents[i] = add(c, "t", NULL, 0);
    int64_t child = add(c, "t", parents, PARENTS);
    ck_assert_str_eq(state_of(child), "waiting");
    ck_assert_int_eq(tu_int("SELECT waiting_for FROM pgq.jobs WHERE id = $1", 1,
                            (const char *[]){ tu_lld(child) }), PARENTS);

    /* Every announcement of a job made ready is heard here. */
    PGconn *l = PQconnectdb(tu_db_url());
    ck_assert(PQstatus(l) == CONNECTION_OK);
    PQclear(PQexec(l, "LISTEN pgq_ready"));

    /* The parents, claimed round robin by 8 connections (the child is
     * not claimable: it is waiting). */
    struct finisher f[FINISHERS];
    tu_barrier *b = tu_barrier_new(FINISHERS);
    memset(f, 0, sizeof f);
    for (int k = 0; k < FINISHERS; k++) {
        f[k].c = tu_connect();
        f[k].start = b;
        f[k].batched = k % 2 == 0;
    }
    for (int i = 0; i < PARENTS; i++) {
        pgq_job *j = claim(f[i % FINISHERS].c);
        ck_assert_msg(j, "parent %d not claimable", i);
        ck_assert_int_ne(j->id, child);
        f[i % FINISHERS].jobs[f[i % FINISHERS].n++] = j;
    }
    pgq_job *none = claim(c);
    ck_assert_msg(!none, "the waiting child was claimed");

    pthread_t th[FINISHERS];
    for (int k = 0; k < FINISHERS; k++)
        pthread_create(&th[k], NULL, finish_all, &f[k]);
    for (int k = 0; k < FINISHERS; k++) {
        pthread_join(th[k], NULL);
        ck_assert_msg(f[k].failed == 0, "finisher %d: %s", k, f[k].err);
        pgq_disconnect(f[k].c);
    }
    tu_barrier_free(b);

    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE state = 'done'", 0, NULL),
                     PARENTS);
    ck_assert_str_eq(state_of(child), "ready");
    ck_assert_int_eq(tu_int("SELECT waiting_for FROM pgq.jobs WHERE id = $1", 1,
                            (const char *[]){ tu_lld(child) }), 0);

    /* Released (announced) exactly once: a sentinel note sent after every
     * completion committed marks the end of what there is to hear. */
    tu_exec("NOTIFY pgq_ready, 'end'", 0, NULL);
    int announced = 0;
    bool end = false;
    const char *want = tu_fmt(" %" PRId64 " ", child);
    while (!end) {
        ck_assert(PQconsumeInput(l));
        PGnotify *n;
        while ((n = PQnotifies(l))) {
            if (strcmp(n->extra, "end") == 0)
                end = true;
            else if (strstr(n->extra, want))
                announced++;
            PQfreemem(n);
        }
        if (!end) {
            /* wait for the socket (no sleep: the note is on its way) */
            PQclear(PQexec(l, "SELECT 1"));
        }
    }
    PQfinish(l);
    ck_assert_int_eq(announced, 1);

    /* and it runs after every parent finished */
    pgq_job *j = claim(c);
    ck_assert(j && j->id == child);
    complete(c, j);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs p, pgq.jobs ch WHERE ch.id = $1"
                            " AND p.id <> ch.id AND p.finished_at > ch.started_at", 1,
                            (const char *[]){ tu_lld(child) }), 0);
    pgq_disconnect(c);
}
END_TEST

/* ---- a dead parent cancels the chain below it ----------------------------- */

START_TEST(dead_parent_cancels_the_chain)
{
    char err[512];
    pgq_conn *c = tu_connect();
    int64_t a = add(c, "once", NULL, 0);
    int64_t other = add(c, "t", NULL, 0);
    int64_t b = add(c, "t", &a, 1);
    int64_t cc = add(c, "t", &b, 1);
    int64_t d = add(c, "t", (int64_t[]){ b, other }, 2);
    int64_t e = add(c, "t", &d, 1);
    int64_t free_child = add(c, "t", &other, 1);

    pgq_job *j = claim(c);
    ck_assert(j && j->id == a);
    pgq_fail_result fr;
    ck_assert_msg(pgq_fail(c, j->id, j->lease_token, "it broke", NULL, &fr, err, sizeof err) == 0,
                  "%s", err);
    ck_assert(fr.dead);
    pgq_job_free(j);

    ck_assert_str_eq(state_of(a), "dead");
    ck_assert_str_eq(state_of(b), "cancelled");
    ck_assert_str_eq(error_of(b), tu_fmt("parent job %" PRId64 " is dead", a));
    ck_assert_str_eq(state_of(cc), "cancelled");
    ck_assert_str_eq(error_of(cc), tu_fmt("parent job %" PRId64 " is cancelled", b));
    ck_assert_str_eq(state_of(d), "cancelled");
    ck_assert_str_eq(state_of(e), "cancelled");
    ck_assert_str_eq(error_of(e), tu_fmt("parent job %" PRId64 " is cancelled", d));
    /* what does not depend on the dead job goes on */
    ck_assert_str_eq(state_of(other), "ready");
    ck_assert_str_eq(state_of(free_child), "waiting");

    /* a new child of the dead job is refused, naming it */
    pgq_add_opts o = PGQ_ADD_OPTS_INIT;
    o.after = &a;
    o.n_after = 1;
    pgq_add_result r;
    ck_assert(pgq_add(c, "t", "{}", &o, &r, err, sizeof err) < 0);
    ck_assert_str_eq(err, tu_fmt("parent job %" PRId64 " is dead: a job cannot wait for it", a));

    /* requeue: a child alone stays cancelled (its parent is dead); the
     * chain requeued together waits again, and runs when its top is done */
    bool moved[4];
    int64_t count;
    ck_assert(pgq_requeue(c, &b, 1, "test", moved, &count, err, sizeof err) == 0);
    ck_assert(!moved[0]);
    ck_assert_str_eq(state_of(b), "cancelled");
    ck_assert(pgq_requeue(c, (int64_t[]){ cc, b, a }, 3, "test", moved, &count, err,
                          sizeof err) == 0);
    ck_assert(moved[0] && moved[1] && moved[2]);
    ck_assert_str_eq(state_of(a), "ready");
    ck_assert_str_eq(state_of(b), "waiting");
    ck_assert_str_eq(state_of(cc), "waiting");
    tu_check_invariants();
    /* run what is ready (a, other and, once other is done, free_child)
     * until a and other are done; b, waiting for a, is not among them */
    while (strcmp(state_of(a), "done") != 0 || strcmp(state_of(other), "done") != 0) {
        j = claim(c);
        ck_assert(j && (j->id == a || j->id == other || j->id == free_child));
        complete(c, j);
    }
    ck_assert_str_eq(state_of(b), "ready");
    ck_assert_str_eq(state_of(cc), "waiting");
    ck_assert_str_ne(state_of(free_child), "waiting");
    pgq_disconnect(c);
}
END_TEST

/* The same through the reaper: a parent whose lease expired with no
 * retries left is dead, and its child is cancelled. */
START_TEST(reaped_dead_parent_cancels_its_child)
{
    pgq_conn *c = tu_connect();
    int64_t a = add(c, "once", NULL, 0);
    int64_t b = add(c, "t", &a, 1);
    pgq_job *j = claim(c);
    ck_assert(j && j->id == a);
    pgq_job_free(j);
    tu_exec("UPDATE pgq.jobs SET lease_expires_at = now() - interval '1 minute' WHERE id = $1",
            1, (const char *[]){ tu_lld(a) });
    tu_reap_until(c, 1);
    ck_assert_str_eq(state_of(a), "dead");
    ck_assert_str_eq(state_of(b), "cancelled");
    pgq_disconnect(c);
}
END_TEST

/* ---- batches: item 3 waits for item 1 ------------------------------------- */

START_TEST(batch_item_waits_for_an_earlier_item)
{
    char err[512];
    pgq_conn *c = tu_connect();
    pgq_add_item items[3] = {
        { "t", "{\"n\":1}", PGQ_ADD_OPTS_INIT },
        { "t", "{\"n\":2}", PGQ_ADD_OPTS_INIT },
        { "t", "{\"n\":3}", PGQ_ADD_OPTS_INIT },
    };
    size_t first = 0;
    items[2].opts.after_items = &first;
    items[2].opts.n_after_items = 1;
    pgq_add_result r[3];
    ck_assert_msg(pgq_add_batch(c, items, 3, r, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(state_of(r[0].id), "ready");
    ck_assert_str_eq(state_of(r[1].id), "ready");
    ck_assert_str_eq(state_of(r[2].id), "waiting");
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.job_deps WHERE parent_id = $1"
                            " AND child_id = $2", 2,
                            (const char *[]){ tu_lld(r[0].id), tu_lld(r[2].id) }), 1);

    pgq_job *j = claim(c);
    ck_assert(j && j->id == r[0].id);
    complete(c, j);
    ck_assert_str_eq(state_of(r[2].id), "ready");

    /* refusals name the item, and a refused batch stores nothing */
    long long before = tu_int("SELECT count(*) FROM pgq.jobs", 0, NULL);
    size_t later = 2;
    items[2].opts.n_after_items = 0;
    items[1].opts.after_items = &later;
    items[1].opts.n_after_items = 1;
    ck_assert(pgq_add_batch(c, items, 3, r, err, sizeof err) < 0);
    ck_assert_str_eq(err, "item 2: after item 3: an item can wait only for an earlier item of "
                          "its batch");
    int64_t ghost = 999999;
    items[1].opts.n_after_items = 0;
    items[1].opts.after = &ghost;
    items[1].opts.n_after = 1;
    ck_assert(pgq_add_batch(c, items, 3, r, err, sizeof err) < 0);
    ck_assert_str_eq(err, "item 2: unknown parent job 999999");
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs", 0, NULL), before);

    /* a parent done already counts as done: the child is ready at once */
    items[1].opts.after = &r[0].id;
    ck_assert_msg(pgq_add_batch(c, items, 3, r, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(state_of(r[1].id), "ready");

    /* a single add that names an item of a batch it is not in */
    pgq_add_opts o = PGQ_ADD_OPTS_INIT;
    o.after_items = &first;
    o.n_after_items = 1;
    pgq_add_result one;
    ck_assert(pgq_add(c, "t", "{}", &o, &one, err, sizeof err) < 0);
    ck_assert_str_eq(err, "after item 1: an item can wait only for an earlier item of its batch");
    pgq_disconnect(c);
}
END_TEST

/* ---- an operator's cancel of a parent cancels its children ---------------- */

START_TEST(cancelled_parent_cancels_its_children)
{
    char err[512];
    pgq_conn *c = tu_connect();
    int64_t p = add(c, "t", NULL, 0);
    int64_t k1 = add(c, "t", &p, 1);
    int64_t k2 = add(c, "t", &p, 1);
    int64_t g = add(c, "t", &k2, 1);
    bool done[1];
    int64_t count;
    ck_assert(pgq_cancel(c, &p, 1, "op", done, &count, err, sizeof err) == 0 && done[0]);
    ck_assert_int_eq(count, 1);   /* the jobs asked for */
    ck_assert_str_eq(state_of(k1), "cancelled");
    ck_assert_str_eq(state_of(k2), "cancelled");
    ck_assert_str_eq(error_of(k1), tu_fmt("parent job %" PRId64 " is cancelled", p));
    ck_assert_str_eq(state_of(g), "cancelled");

    /* a running parent: its attempt ends cancelled, and its child too */
    int64_t rp = add(c, "t", NULL, 0);
    int64_t rk = add(c, "t", &rp, 1);
    pgq_job *j = claim(c);
    ck_assert(j && j->id == rp);
    ck_assert(pgq_cancel(c, &rp, 1, "op", done, &count, err, sizeof err) == 0 && done[0]);
    ck_assert_str_eq(state_of(rk), "cancelled");
    bool lost;
    ck_assert(pgq_complete(c, j->id, j->lease_token, NULL, &lost, err, sizeof err) == 0);
    ck_assert(lost);
    pgq_job_free(j);

    /* a waiting job can be cancelled by itself; its parent goes on */
    int64_t wp = add(c, "t", NULL, 0);
    int64_t wk = add(c, "t", &wp, 1);
    ck_assert(pgq_cancel(c, &wk, 1, "op", done, &count, err, sizeof err) == 0 && done[0]);
    ck_assert_str_eq(state_of(wk), "cancelled");
    ck_assert_str_eq(state_of(wp), "ready");
    pgq_disconnect(c);
}
END_TEST

/* ---- keep_done = 0: the parent is deleted as it completes ------------------ */

START_TEST(deleted_done_parent_releases_its_child)
{
    pgq_conn *c = tu_connect();
    int64_t p = add(c, "t", NULL, 0);
    int64_t k = add(c, "t", &p, 1);
    pgq_conn_set_keep_done(c, false);
    pgq_job *j = claim(c);
    ck_assert(j && j->id == p);
    complete(c, j);
    ck_assert_str_eq(state_of(p), "(none)");
    ck_assert_str_eq(state_of(k), "ready");
    /* the child's edge goes with the child */
    j = claim(c);
    ck_assert(j && j->id == k);
    complete(c, j);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.job_deps", 0, NULL), 0);
    pgq_disconnect(c);
}
END_TEST

/* Pruning a child deletes its edges; a pruned parent is "gone" to its
 * child, and counts as done. */
START_TEST(prune_deletes_a_childs_edges)
{
    char err[512];
    pgq_conn *c = tu_connect();
    int64_t p = add(c, "t", NULL, 0);
    int64_t k = add(c, "t", &p, 1);
    int64_t k2 = add(c, "t", &p, 1);
    complete(c, claim(c));   /* p */
    complete(c, claim(c));   /* k (k2 stays ready) */
    tu_exec("UPDATE pgq.jobs SET finished_at = now() - interval '2 days' WHERE id = $1", 1,
            (const char *[]){ tu_lld(k) });
    int64_t deleted;
    ck_assert_msg(pgq_prune(c, 86400000, 86400000, 100, &deleted, err, sizeof err) == 0, "%s",
                  err);
    ck_assert_int_eq(deleted, 1);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.job_deps WHERE child_id = $1", 1,
                            (const char *[]){ tu_lld(k) }), 0);
    tu_exec("UPDATE pgq.jobs SET finished_at = now() - interval '2 days' WHERE id = $1", 1,
            (const char *[]){ tu_lld(p) });
    ck_assert(pgq_prune(c, 86400000, 86400000, 100, &deleted, err, sizeof err) == 0);
    ck_assert_int_eq(deleted, 1);
    pgq_job_detail *d;
    ck_assert(pgq_job_describe(c, k2, &d, err, sizeof err) == 0 && d);
    ck_assert_int_eq((int)d->nparents, 1);
    ck_assert_int_eq(d->parents[0].id, p);
    ck_assert_str_eq(d->parents[0].state, "gone");
    pgq_job_detail_free(d);
    pgq_disconnect(c);
}
END_TEST

/* ---- an add racing its parent's completion -------------------------------- */

struct completer {
    pgq_job *j;
    char err[512];
    int rc;
    bool lost;
};

static void *complete_one(void *arg)
{
    struct completer *w = arg;
    pgq_conn *c = tu_connect();
    w->rc = pgq_complete(c, w->j->id, w->j->lease_token, NULL, &w->lost, w->err, sizeof w->err);
    pgq_disconnect(c);
    return NULL;
}

/* The add holds the parent's row lock; the completion that starts then
 * waits for the add to commit, and must then find the new child (its
 * statement's snapshot is older than the child). */
START_TEST(child_added_while_its_parent_completes)
{
    pgq_conn *c = tu_connect();
    int64_t p = add(c, "t", NULL, 0);
    pgq_job *j = claim(c);
    ck_assert(j && j->id == p);

    PGconn *tx = PQconnectdb(tu_db_url());
    ck_assert(PQstatus(tx) == CONNECTION_OK);
    PQclear(tu_query(tx, "BEGIN", 0, NULL));
    PGresult *r = tu_query(tx, "SELECT id FROM pgq.add('t', '{}', after => ARRAY[$1::bigint])",
                           1, (const char *[]){ tu_lld(p) });
    int64_t k = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);

    struct completer w = { .j = j };
    pthread_t th;
    pthread_create(&th, NULL, complete_one, &w);
    /* until the completion waits for the add's lock (a condition, not a time) */
    while (tu_int("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                  " AND query LIKE '%complete_claim%'", 0, NULL) == 0)
        ;
    PQclear(tu_query(tx, "COMMIT", 0, NULL));
    pthread_join(th, NULL);
    PQfinish(tx);
    ck_assert_msg(w.rc == 0 && !w.lost, "%s", w.err);
    pgq_job_free(j);
    ck_assert_str_eq(state_of(p), "done");
    ck_assert_str_eq(state_of(k), "ready");
    pgq_disconnect(c);
}
END_TEST

/* ---- the CLI and SQL -------------------------------------------------------- */

static tu_run pgq_cmd(const char *const *argv, const char *stdin_path)
{
    const char *env[] = { tu_fmt("DATABASE_URL=%s", tu_db_url()), NULL };
    return tu_run_cmd(NULL, env, stdin_path, tu_fmt("%s/pgq", tu_bin_dir()), argv, 60);
}

START_TEST(cli_add_after_show_and_stats)
{
    tu_run r = pgq_cmd((const char *[]){ "pgq", "add", "t", "{}", NULL }, NULL);
    ck_assert_int_eq(r.code, 0);
    long long p1 = atoll(r.out);
    tu_run_free(&r);
    r = pgq_cmd((const char *[]){ "pgq", "add", "t", "{}", NULL }, NULL);
    long long p2 = atoll(r.out);
    tu_run_free(&r);
    r = pgq_cmd((const char *[]){ "pgq", "add", "t", "{}", "--after",
                                  tu_fmt("%lld,%lld", p1, p2), NULL }, NULL);
    ck_assert_msg(r.code == 0, "%s", r.err);
    long long k = atoll(r.out);
    tu_run_free(&r);
    ck_assert_str_eq(state_of(k), "waiting");

    r = pgq_cmd((const char *[]){ "pgq", "show", tu_lld(k), NULL }, NULL);
    ck_assert_msg(strstr(r.out, tu_fmt("\nparents: 2 (waiting for 2)\n  %lld ready\n  %lld ready\n"
                                       "children: 0\n", p1, p2)), "%s", r.out);
    tu_run_free(&r);
    r = pgq_cmd((const char *[]){ "pgq", "show", tu_lld(p1), "--json", NULL }, NULL);
    char *j = tu_text("SELECT jsonb_build_array(d->'children', d->'children_total',"
                      " d->'parents')::text FROM (SELECT $1::jsonb d) x", 1,
                      (const char *[]){ r.out });
    ck_assert_str_eq(j, tu_fmt("[[{\"id\": %lld, \"state\": \"waiting\"}], 1, []]", k));
    free(j);
    tu_run_free(&r);
    r = pgq_cmd((const char *[]){ "pgq", "stats", "--json", NULL }, NULL);
    j = tu_text("SELECT ($1::jsonb->'queues'->0->>'waiting')", 1, (const char *[]){ r.out });
    ck_assert_str_eq(j, "1");
    free(j);
    tu_run_free(&r);

    /* refusals name the parent; a bad list names the item */
    r = pgq_cmd((const char *[]){ "pgq", "add", "t", "{}", "--after", "12345", NULL }, NULL);
    ck_assert_int_ne(r.code, 0);
    ck_assert_str_eq(r.err, "pgq add: unknown parent job 12345\n");
    tu_run_free(&r);
    r = pgq_cmd((const char *[]){ "pgq", "add", "t", "{}", "--after", "1,,2", NULL }, NULL);
    ck_assert_int_ne(r.code, 0);
    ck_assert_str_eq(r.err, "pgq add: --after: \"\" is not a job id (a positive whole number)\n");
    tu_run_free(&r);

    /* JSON lines take "after" too */
    const char *in = tu_fmt("%s/deps-lines.jsonl", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    tu_write_file(in, tu_fmt("{\"type\": \"t\", \"after\": [%lld]}\n{\"type\": \"t\","
                             " \"after\": \"x\"}\n", p1));
    r = pgq_cmd((const char *[]){ "pgq", "add", "-", NULL }, in);
    ck_assert_str_eq(r.err, "pgq add: stdin line 2: \"after\" must be an array, not string\n");
    tu_run_free(&r);
    tu_write_file(in, tu_fmt("{\"type\": \"t\", \"after\": [%lld, %lld]}\n", p1, k));
    r = pgq_cmd((const char *[]){ "pgq", "add", "-", NULL }, in);
    ck_assert_msg(r.code == 0, "%s", r.err);
    ck_assert_str_eq(state_of(atoll(r.out)), "waiting");
    ck_assert_int_eq(tu_int("SELECT waiting_for FROM pgq.jobs WHERE id = $1", 1,
                            (const char *[]){ r.out }), 2);
    tu_run_free(&r);
    remove(in);
}
END_TEST

/* ---- invariants catch a broken graph ---------------------------------------- */

static void expect(const char *sql, int64_t job, const char *invariant)
{
    tu_exec("BEGIN", 0, NULL);
    tu_exec(sql, 0, NULL);
    long long n = tu_int("SELECT count(*) FROM pgq.check_invariants() WHERE job_id = $1"
                         " AND invariant = $2", 2, (const char *[]){ tu_lld(job), invariant });
    tu_exec("ROLLBACK", 0, NULL);
    ck_assert_msg(n == 1, "%s: check_invariants did not report \"%s\"", sql, invariant);
}

START_TEST(invariants_report_broken_dependencies)
{
    pgq_conn *c = tu_connect();
    int64_t p = add(c, "t", NULL, 0);   /* 1 */
    int64_t k = add(c, "t", &p, 1);     /* 2 */
    ck_assert(p == 1 && k == 2);
    tu_check_invariants();
    expect("UPDATE pgq.jobs SET state = 'done', attempts = 1, finished_at = now() WHERE id = 1",
           2, "waiting with every parent done");
    expect("UPDATE pgq.jobs SET waiting_for = 2 WHERE id = 2", 2,
           "waiting_for differs from the parents not done");
    expect("UPDATE pgq.jobs SET state = 'cancelled', finished_at = now() WHERE id = 1", 2,
           "waiting for a dead or cancelled parent");
    expect("UPDATE pgq.jobs SET state = 'ready', waiting_for = 0 WHERE id = 2", 2,
           "ready or running before its parents are done");
    expect("UPDATE pgq.jobs SET waiting_for = 0 WHERE id = 2", 2, "waiting for no parent");
    expect("UPDATE pgq.jobs SET waiting_for = 3 WHERE id = 1", 1,
           "a parent count on a job that is not waiting");
    expect("UPDATE pgq.jobs SET has_children = false WHERE id = 1", 2,
           "a parent without has_children");
    expect("INSERT INTO pgq.job_deps VALUES (1, 99)", 99, "an edge of a job that does not exist");
    pgq_disconnect(c);
}
END_TEST

Suite *deps_suite(void)
{
    Suite *s = suite_create("deps");
    TCase *tc = tcase_create("deps");
    tcase_add_checked_fixture(tc, setup, tu_check_invariants);
    tcase_set_timeout(tc, TU_TIMEOUT);
    tcase_add_test(tc, fan_in_of_100_parents_releases_the_child_once);
    tcase_add_test(tc, dead_parent_cancels_the_chain);
    tcase_add_test(tc, reaped_dead_parent_cancels_its_child);
    tcase_add_test(tc, batch_item_waits_for_an_earlier_item);
    tcase_add_test(tc, cancelled_parent_cancels_its_children);
    tcase_add_test(tc, deleted_done_parent_releases_its_child);
    tcase_add_test(tc, prune_deletes_a_childs_edges);
    tcase_add_test(tc, child_added_while_its_parent_completes);
    tcase_add_test(tc, cli_add_after_show_and_stats);
    tcase_add_test(tc, invariants_report_broken_dependencies);
    suite_add_tcase(s, tc);
    return s;
}
