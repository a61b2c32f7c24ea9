-- THE JOB STATE MACHINE, IN ONE HOME.
--
-- This file is not a numbered migration. `pgq migrate` applies the
-- numbered files of this directory once each, in order (tables, indexes,
-- moving data), and then this one whenever its text differs from the text
-- it applied last (pgq.state_machine records its MD5; core/migrate.c). So
-- a change to a transition is an edit here, not a copy of the function in
-- a new migration, and a reader finds every transition in this one file.
-- Every statement is CREATE OR REPLACE (applying it twice changes
-- nothing); a function whose signature changes is dropped here first, and
-- the signatures older pools call keep working (wrappers below), because
-- pools of the previous release run on while a database is migrated.
-- A change here ships with a numbered migration (a comment is enough), so
-- that the schema version tells old and new builds apart. It supersedes the
-- definitions of migrations 001-004, which stay as the record of what
-- those versions installed.
--
-- Every transition of a job is one function in this file, and these
-- functions are the only statements in pgq that write pgq.jobs,
-- pgq.job_attempts or pgq.effects (tests/state_test.c fails when a .c file
-- of the library or the programs writes one of them). Definitions of the
-- same functions in migrations 001-004 are superseded by the ones here.
--
--   state        transition                function                    fenced by
--   (none)       add              -> ready  pgq.add, pgq.enqueue        contract, max_payload, idempotency key
--   (none)       add with after   -> waiting (ready when every parent is done already)
--                                            pgq.enqueue -> pgq.deps_attach  parents' row locks
--   waiting      last parent done -> ready  pgq.deps_settle (from the     the child's row lock,
--                                            completion of the parent)    state
--   waiting      a parent dead or cancelled -> cancelled, and the chain below
--                                            pgq.deps_settle              the child's row lock, state
--   ready        claim            -> running pgq.complete_claim,        FOR UPDATE SKIP LOCKED
--                                            pgq.claim
--   running      renew lease               pgq.renew, pgq.heartbeat    lease token, state
--   running      complete         -> done   pgq.complete (complete_claim) lease token, state
--                (with its result, if any, on the done attempt: pgq.job_results, pgq.result)
--                (keep_done = 0:  -> deleted, with history and effects)
--   running      fail             -> ready (retry) | dead
--                                            pgq.fail                    lease token, state
--   running      release          -> ready  pgq.release                 lease token, state
--   running      reap (expired)   -> ready | dead
--                                            pgq.reap                    lease expired, then token
--   dead/cancelled requeue        -> ready (waiting: parents not done) pgq.requeue,
--                                            pgq.requeue_matching         state, parents' row locks
--   waiting/ready cancel          -> cancelled pgq.cancel               state
--   running      cancel           -> cancelled pgq.cancel (lease revoked: the holder's token read
--                                            under FOR UPDATE, then the end of attempt as below)
--   (queue)      pause / resume            pgq.pause, pgq.resume       (a paused queue is
--                                            claimed by no one; adds go on)
--   (none)       cron tick        -> ready  pgq.cron_fire (via pgq.add)   the schedule's last tick
--                                            (pgq.cron), advanced by a conditional upsert
--   done/dead/cancelled prune     -> (gone) pgq.prune                   state and age
--   running      run_once begin/done/forget (pgq.effects)
--                                            pgq.effect_begin, pgq.effect_done,
--                                            pgq.effect_forget            lease token, live lease
--
-- Three expressions exist once: a lease is given out and an attempt ends
-- (its lease cleared) in pgq.complete_claim(), the hot path, which every
-- other claim and end (complete, fail, release, reap) wraps; a lease's
-- expiry is pgq.lease_expiry(). pgq.check_invariants() lists every row that
-- breaks what these functions make impossible; every test ends with it.
--
-- The claim may start where the caller's previous claim of a queue ended
-- (a "claim hint", see pgq.complete_claim): while another session pins
-- the xmin horizon (pg_dump, a forgotten psql, a long report), the claim
-- index keeps an entry for every job claimed since the pin, none of which
-- vacuum may remove, and a claim that walks from the start of the index
-- visits all of them: claims turned quadratic and throughput fell by 91%.
-- The pool keeps a hint per queue and lowers it when a job appears
-- behind it: the NOTIFY channel pgq_ready carries the position of the
-- first job each transaction made ready in a queue, due or not
-- ("QUEUE PRIORITY RUN_AT_US ID DUE", see pgq.announce), and pgq_jobs
-- carries the queue's name when a job is due now, as in earlier versions
-- (it wakes pools, theirs too).

-- ---- shared expressions ------------------------------------------------

-- When a lease given out or renewed now with ttl_ms expires.
CREATE OR REPLACE FUNCTION pgq.lease_expiry(p_ttl_ms bigint) RETURNS timestamptz
LANGUAGE sql STABLE AS $$ SELECT now() + p_ttl_ms * interval '1 millisecond' $$;

-- A claim position's run_at as microseconds since the epoch, exactly (the
-- hints of core/hints.c carry it as an integer), and back. STABLE, as
-- their bodies are: an IMMUTABLE function with a STABLE body is not
-- inlined, and a call that is not inlined costs more than the expression.
CREATE OR REPLACE FUNCTION pgq.position_us(p_t timestamptz) RETURNS bigint
LANGUAGE sql STABLE AS $$ SELECT (extract(epoch FROM p_t) * 1000000)::bigint $$;

-- Exact (whole seconds, then the microseconds: no rounding through a
-- double). Any bigint is a position: those before the first timestamp (a
-- hint that means "from the start") are -infinity; the last timestamp
-- (294276 AD) lies beyond the largest bigint.
CREATE OR REPLACE FUNCTION pgq.from_position_us(p_us bigint) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_us < -210866716800000000 THEN '-infinity'::timestamptz   -- 4713 BC
                ELSE to_timestamp(p_us / 1000000) + (p_us % 1000000) * interval '1 microsecond'
           END
$$;

-- Announce that a transaction made jobs of a queue ready, the first of
-- them (in claim order) at (priority, run_at, id); p_due: some are due
-- now. pgq_ready tells pools of this version where to look back to (their
-- claim hints), for every job, due or not: a job not due when it is added
-- may be due when its transaction commits. pgq_jobs wakes pools of every
-- version when something is due; it comes second, so that a pool that
-- hears pgq_jobs without a pgq_ready before it knows the writer was an
-- earlier version, which announces no position (core/hints.c).
-- (PL/pgSQL, not SQL: a SQL function that is not inlined is planned anew
-- at every call, which cost every add a quarter of a millisecond.)
CREATE OR REPLACE FUNCTION pgq.announce(p_queue text, p_priority int, p_run_at timestamptz, p_id bigint,
                             p_due boolean)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_notify('pgq_ready', p_queue || ' ' || p_priority || ' '
                                   || pgq.position_us(p_run_at) || ' ' || p_id || ' '
                                   || CASE WHEN p_due THEN '1' ELSE '0' END);
    IF p_due THEN
        PERFORM pg_notify('pgq_jobs', p_queue);
    END IF;
END
$$;

-- The rule of queue names, everywhere: 1 to 100 characters, no ASCII
-- whitespace (the C side: PGQ_QUEUE_NAME_MAX and pgq_queue_name_check() in
-- core/pgq.h). Raises naming the item; true when the name is fine.
CREATE OR REPLACE FUNCTION pgq.check_queue(p_ord int, p_queue text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_queue IS NULL OR length(p_queue) BETWEEN 1 AND 100 AND p_queue !~ '[ \t\n\r\f\v]' THEN
        RETURN true;
    END IF;
    IF length(p_queue) NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION 'queue name must be 1 to 100 characters, not %', length(p_queue)
            USING ERRCODE = '22023', DETAIL = 'item ' || p_ord;
    END IF;
    RAISE EXCEPTION 'queue name "%" contains whitespace', p_queue
        USING ERRCODE = '22023', DETAIL = 'item ' || p_ord;
END
$$;

-- The refusals of an item's options other than its contract, in this
-- order: queue name, max_retries, delay. Raises naming the item; true when
-- they are fine. pgq.add and pgq.enqueue both raise through it.
CREATE OR REPLACE FUNCTION pgq.check_options(p_ord int, p_queue text, p_max_retries int, p_delay_ms bigint)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    PERFORM pgq.check_queue(p_ord, p_queue);
    IF p_max_retries < 0 THEN
        RAISE EXCEPTION 'max_retries must be 0 or more, not %', p_max_retries
            USING ERRCODE = '22023', DETAIL = 'item ' || p_ord;
    END IF;
    IF p_delay_ms < 0 THEN
        RAISE EXCEPTION 'delay must not be negative, not % ms', p_delay_ms
            USING ERRCODE = '22023', DETAIL = 'item ' || p_ord;
    END IF;
    -- run_at = now() + delay must stay a timestamp: a century is the bound.
    IF p_delay_ms > 3155760000000 THEN
        RAISE EXCEPTION 'delay must be at most 100 years (3155760000000 ms), not % ms', p_delay_ms
            USING ERRCODE = '22023', DETAIL = 'item ' || p_ord;
    END IF;
    RETURN true;
END
$$;

-- The bounds of the other options of one item, each refusal naming it:
-- a priority in [-1,000,000, 1,000,000] (what the CLI takes: a wider one
-- is a typo, and ordering by it must not overflow anywhere), an
-- idempotency key of at most 1,000 bytes (a longer one could exceed the
-- unique index's row limit and fail with a btree message), a run_at at
-- most 100 years ahead (as a delay is; year 10000 is a mistake, not a
-- schedule).
CREATE OR REPLACE FUNCTION pgq.check_limits(p_ord int, p_priority int, p_key text,
                                            p_run_at timestamptz)
RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_priority NOT BETWEEN -1000000 AND 1000000 THEN
        RAISE EXCEPTION 'priority must be between -1000000 and 1000000, not %', p_priority
            USING ERRCODE = '22023', DETAIL = 'item ' || p_ord;
    END IF;
    IF octet_length(p_key) > 1000 THEN
        RAISE EXCEPTION 'idempotency key must be at most 1000 bytes, not %', octet_length(p_key)
            USING ERRCODE = '22023', DETAIL = 'item ' || p_ord;
    END IF;
    IF isfinite(p_run_at) AND p_run_at > now() + interval '100 years' THEN
        RAISE EXCEPTION 'run_at must be at most 100 years ahead, not %', p_run_at
            USING ERRCODE = '22023', DETAIL = 'item ' || p_ord;
    END IF;
    RETURN true;
END
$$;

-- What max_payload measures ([job T] max_payload, pgq.job_types,
-- migration 013): the payload's size as jsonb, in bytes, as
-- pg_column_size() reports a jsonb value of its own -- not compressed, with
-- a 4-byte header: pg_column_size('{"n":1}'::jsonb) is 28. A payload read
-- from a table may be compressed, and one that passed through a tuple
-- (unnest's) may have a 1-byte header when it is small; ARRAY[...] expands
-- both (construct_md_array detoasts its elements), so this is the same
-- figure wherever the payload comes from. (A copy of the payload: callers
-- on the hot path first test the plain pg_column_size, which is at most 3
-- bytes less, and ask this only near the limit.) config/jsonb_size.c
-- computes the same figure for [cron NAME] payloads at load.
-- STABLE, as pg_column_size is: an IMMUTABLE function with a STABLE body
-- is not inlined, and one not inlined cost every add 40 us.
CREATE OR REPLACE FUNCTION pgq.payload_size(p_payload jsonb) RETURNS bigint
LANGUAGE sql STABLE AS $$ SELECT pg_column_size((ARRAY[p_payload])[1])::bigint $$;

-- A payload of p_size bytes (pgq.payload_size) against its type's
-- max_payload p_max; 0 or NULL: no limit of pgq's own. Raises naming the
-- type, the size, the limit and the item; true when the payload fits. The
-- callers test the condition themselves and call this only to word the
-- refusal, so the hot path pays a comparison.
CREATE OR REPLACE FUNCTION pgq.check_payload_size(p_ord int, p_type text, p_size bigint,
                                                  p_max bigint)
RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_max IS NULL OR p_max = 0 OR p_size <= p_max THEN
        RETURN true;
    END IF;
    RAISE EXCEPTION '%', format('payload of job type "%s" is %s bytes, over its max_payload of %s%s',
        p_type, to_char(p_size, 'FM999,999,999,999,990'), p_max,
        CASE WHEN p_max % 1048576 = 0 THEN ' (' || p_max / 1048576 || ' MiB)'
             WHEN p_max % 1024 = 0 THEN ' (' || p_max / 1024 || ' KiB)'
             ELSE '' END)
        USING ERRCODE = '22023', DETAIL = 'item ' || p_ord,
              HINT = 'a larger payload can be stored elsewhere and named in the job; or raise '
                     '[job ' || p_type || '] max_payload (0: no limit of pgq''s own)';
END
$$;

-- ---- add -----------------------------------------------------------------

-- Dedup windows: keys of p_keys whose job was created more than the
-- item's window (p_windows[i] ms) ago are moved off that job (to
-- idempotency_key_expired), so that the add that follows makes a new job;
-- within the window the add finds the job, finished or not, as before.
-- Without a window a key lives as long as its job row.
CREATE OR REPLACE FUNCTION pgq.keys_expire(p_keys text[], p_windows bigint[]) RETURNS void
LANGUAGE sql VOLATILE AS $$
    UPDATE pgq.jobs j SET idempotency_key_expired = j.idempotency_key, idempotency_key = NULL
      FROM (SELECT DISTINCT ON (s.key) s.key, s.w
              FROM unnest(p_keys, p_windows) AS s(key, w)
             WHERE s.key IS NOT NULL AND s.w IS NOT NULL
             ORDER BY s.key, s.w) k
     WHERE j.idempotency_key = k.key AND j.created_at <= now() - k.w * interval '1 millisecond'
$$;

-- Debounce: for the items with p_replace[i], a job holding the key that is
-- still waiting (ready, never started: due or scheduled) takes the item's
-- payload and run_at (the last item of a key wins) and is announced at its
-- new position. Returns (ord, id) for every item answered so. Rows are
-- locked in key order, so concurrent replaces cannot deadlock.
CREATE OR REPLACE FUNCTION pgq.keys_replace(p_keys text[], p_replace boolean[],
                                           p_payloads jsonb[], p_due timestamptz[])
RETURNS TABLE (ord int, id bigint)
LANGUAGE sql VOLATILE AS $$
    WITH want AS (
        SELECT DISTINCT ON (s.key) s.key, s.payload, s.due
          FROM unnest(p_keys, p_replace, p_payloads, p_due) WITH ORDINALITY
               AS s(key, rep, payload, due, ord)
         WHERE s.rep AND s.key IS NOT NULL
         ORDER BY s.key, s.ord DESC
    ), locked AS (
        SELECT j.id FROM pgq.jobs j JOIN want w ON j.idempotency_key = w.key
         WHERE j.state = 'ready' AND j.attempts = 0
         ORDER BY j.idempotency_key FOR UPDATE OF j
    ), upd AS (
        UPDATE pgq.jobs j SET payload = w.payload, run_at = w.due
          FROM want w
         WHERE j.id IN (SELECT l.id FROM locked l) AND j.idempotency_key = w.key
           AND j.state = 'ready' AND j.attempts = 0
        RETURNING j.id, j.idempotency_key, j.queue, j.priority, j.run_at
    ), ann AS (
        SELECT count(pgq.announce(u.queue, u.priority, u.run_at, u.id, u.run_at <= now())) AS n
          FROM upd u
    )
    SELECT s.ord::int, u.id
      FROM unnest(p_keys, p_replace) WITH ORDINALITY AS s(key, rep, ord)
      JOIN upd u ON u.idempotency_key = s.key
     WHERE s.rep AND (SELECT a.n FROM ann a) >= 0
$$;

-- The refusals of a window or replace option: raises naming the item.
CREATE OR REPLACE FUNCTION pgq.check_dedup(p_ord int, p_key text, p_window bigint,
                                          p_replace boolean)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_window IS NOT NULL AND p_window <= 0 THEN
        RAISE EXCEPTION 'unique_for must be positive, not % ms', p_window
            USING ERRCODE = '22023', DETAIL = 'item ' || p_ord;
    END IF;
    IF (p_window IS NOT NULL OR p_replace) AND p_key IS NULL THEN
        RAISE EXCEPTION '% needs an idempotency key',
            CASE WHEN p_replace THEN 'replace' ELSE 'unique_for' END
            USING ERRCODE = '22023', DETAIL = 'item ' || p_ord;
    END IF;
    RETURN true;
END
$$;

-- Add one job: the single-job form of pgq.enqueue, with named, defaulted
-- arguments for producers in any language:
--   SELECT * FROM pgq.add('send-email', '{"to":"a@b"}', idempotency_key => 'k');
-- Returns the job's id, and duplicate = true when a job holding the
-- idempotency key existed (then nothing was added). The same checks as
-- pgq.enqueue, in the same order, with the same messages.
-- after: the ids of jobs this one waits for (it is `waiting` until every
-- one of them is done; see pgq.deps_attach); such an add is a batch of one
-- of pgq.enqueue, which knows dependencies.
-- Version 5's form had no unique_for_ms nor replace, version 6's no after
-- (their callers pass eight or ten arguments, which the form below takes
-- as they were).
DROP FUNCTION IF EXISTS pgq.add(text, jsonb, text, int, timestamptz, bigint, int, text);
DROP FUNCTION IF EXISTS pgq.add(text, jsonb, text, int, timestamptz, bigint, int, text, bigint,
                                boolean);
CREATE OR REPLACE FUNCTION pgq.add(type text, payload jsonb, queue text DEFAULT NULL,
                        priority int DEFAULT NULL, run_at timestamptz DEFAULT NULL,
                        delay_ms bigint DEFAULT NULL, max_retries int DEFAULT NULL,
                        idempotency_key text DEFAULT NULL, unique_for_ms bigint DEFAULT NULL,
                        replace boolean DEFAULT false, after bigint[] DEFAULT NULL)
RETURNS TABLE (id bigint, duplicate boolean, replaced boolean)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
    IF cardinality(add.after) > 0 THEN
        RETURN QUERY
        SELECT e.id, e.duplicate, e.replaced
          FROM pgq.enqueue(ARRAY[add.type], ARRAY[add.payload::text], ARRAY[add.queue],
                           ARRAY[add.priority], ARRAY[add.run_at], ARRAY[add.delay_ms],
                           ARRAY[add.max_retries], ARRAY[add.idempotency_key],
                           ARRAY[add.unique_for_ms], ARRAY[add.replace],
                           p_after_ord => array_fill(1, ARRAY[cardinality(add.after)]),
                           p_after_job => add.after) e;
        RETURN;
    END IF;
    IF add.unique_for_ms IS NOT NULL OR add.replace THEN
        PERFORM pgq.check_dedup(1, add.idempotency_key, add.unique_for_ms, add.replace);
        PERFORM pgq.keys_expire(ARRAY[add.idempotency_key], ARRAY[add.unique_for_ms]);
        IF add.replace AND add.payload IS NOT NULL THEN
            -- The new payload meets the type's contract and size before it
            -- replaces a waiting job's (the insert below checks them too
            -- late for this path).
            PERFORM pgq.check_item(1, add.type, add.payload,
                                   coalesce(add.run_at, now() + coalesce(add.delay_ms, 0)
                                                        * interval '1 millisecond'),
                                   jt.required),
                    pgq.check_payload_size(1, add.type, pgq.payload_size(add.payload),
                                           jt.max_payload)
               FROM (SELECT NULL) AS one
               LEFT JOIN pgq.job_types jt ON jt.type = add.type;
            RETURN QUERY
            SELECT r.id, true, true
              FROM pgq.keys_replace(ARRAY[add.idempotency_key], ARRAY[true], ARRAY[add.payload],
                                    ARRAY[coalesce(add.run_at, now() + coalesce(add.delay_ms, 0)
                                                                * interval '1 millisecond')]) r;
            IF FOUND THEN
                RETURN;
            END IF;
        END IF;
    END IF;
    IF add.queue IS NOT NULL OR add.max_retries < 0 OR add.delay_ms < 0
       OR add.delay_ms > 3155760000000 THEN
        PERFORM pgq.check_options(1, add.queue, add.max_retries, add.delay_ms);
    END IF;
    IF add.priority NOT BETWEEN -1000000 AND 1000000 OR octet_length(add.idempotency_key) > 1000
       OR add.run_at > now() + interval '100 years' THEN
        PERFORM pgq.check_limits(1, add.priority, add.idempotency_key, add.run_at);
    END IF;
    IF add.payload IS NULL THEN
        RAISE EXCEPTION 'payload is missing' USING ERRCODE = '22023', DETAIL = 'item 1';
    END IF;
    -- One statement (each statement of a function costs as much as a
    -- small insert): the type's defaults, the contract check (only when
    -- the type has a contract or the time is odd: pgq.check_item raises
    -- the refusal), then the size check (pgq.check_payload_size; the CASE
    -- keeps that order), the insert and the announcement.
    RETURN QUERY
    WITH t AS (
        SELECT jt.queue, jt.priority, jt.max_retries, jt.required, jt.max_payload
          FROM pgq.job_types jt WHERE jt.type = add.type
    ), i AS (
        SELECT coalesce(add.run_at, now() + coalesce(add.delay_ms, 0) * interval '1 millisecond')
               AS due
        OFFSET 0
    ), ins AS (
        INSERT INTO pgq.jobs AS j (queue, type, payload, priority, run_at, max_retries,
                                   idempotency_key)
        SELECT coalesce(add.queue, t.queue), add.type, add.payload,
               coalesce(add.priority, t.priority), i.due, coalesce(add.max_retries, t.max_retries),
               add.idempotency_key
          FROM i LEFT JOIN t ON true
         WHERE CASE WHEN (t.required = '{}' AND isfinite(i.due))
                          OR pgq.check_item(1, add.type, add.payload, i.due, t.required)
                    THEN t.max_payload = 0
                      -- (the plain size first: an uncompressed payload at
                      -- most 3 bytes under the limit fits whatever its
                      -- header, and pgq.payload_size copies the payload)
                      OR (pg_column_size(add.payload) <= t.max_payload - 3
                          AND pg_column_compression(add.payload) IS NULL)
                      OR pgq.payload_size(add.payload) <= t.max_payload
                      OR pgq.check_payload_size(1, add.type, pgq.payload_size(add.payload),
                                                t.max_payload)
               END
        ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
        RETURNING j.id, j.queue, j.priority, j.run_at
    )
    SELECT ins.id, false, false
      FROM ins
     CROSS JOIN LATERAL (SELECT pgq.announce(ins.queue, ins.priority, ins.run_at, ins.id,
                                             ins.run_at <= now())) a;
    IF FOUND THEN
        RETURN;
    END IF;
    -- A new statement, hence a fresh snapshot: it sees the row whose
    -- concurrent insert made ours a duplicate.
    RETURN QUERY SELECT coalesce((SELECT j.id FROM pgq.jobs j
                                   WHERE j.idempotency_key = add.idempotency_key),
                                 pgq.key_vanished(add.idempotency_key, 1)),
                        true, false;
END
$$;

-- Add a batch (see migration 002 for how it is made fast; this version
-- holds queue names to pgq.check_queue's rule and announces positions).
-- Validates types and payload contracts first, so a refused batch stores
-- nothing; then inserts and maps every input item (by ordinal) to its job
-- id and whether it was a duplicate.
-- Dependencies (pgq add --after) come as a list of edges, three arrays of
-- one element per edge: item p_after_ord[k] waits for the job
-- p_after_job[k], or for the earlier item p_after_item[k] of this batch
-- (one of the two, the other NULL). Such items are stored `waiting`, then
-- pgq.deps_attach links them and makes those whose parents are all done
-- ready. An item that is a duplicate gets no edges (the job that holds
-- its key keeps its own); a later item may still wait for it.
-- Version 5's form had no dedup windows nor replace, version 6's no
-- dependencies.
DROP FUNCTION IF EXISTS pgq.enqueue(text[], text[], text[], int[], timestamptz[], bigint[], int[],
                                    text[]);
DROP FUNCTION IF EXISTS pgq.enqueue(text[], text[], text[], int[], timestamptz[], bigint[], int[],
                                    text[], bigint[], boolean[]);
CREATE OR REPLACE FUNCTION pgq.enqueue(p_types text[], p_payloads text[], p_queues text[],
                                       p_priorities int[], p_run_ats timestamptz[],
                                       p_delays_ms bigint[], p_max_retries int[], p_keys text[],
                                       p_unique_for_ms bigint[] DEFAULT NULL,
                                       p_replace boolean[] DEFAULT NULL,
                                       p_after_ord int[] DEFAULT NULL,
                                       p_after_job bigint[] DEFAULT NULL,
                                       p_after_item int[] DEFAULT NULL)
RETURNS TABLE (ord int, id bigint, duplicate boolean, replaced boolean)
LANGUAGE plpgsql VOLATILE SET jit = off SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    n int := coalesce(array_length(p_types, 1), 0);
    bad record;
    payloads jsonb[];
    ids bigint[];
    inserted bigint[];
    rep_ords int[] := '{}';
    rep_ids bigint[] := '{}';
    waiting int[] := '{}';
    res_ids bigint[];
    res_dup boolean[];
    res_rep boolean[];
    seq regclass;
    i int;
BEGIN
    -- The arrays' shape: each one-dimensional from 1; payloads, one per
    -- type; every other column NULL or empty (all defaults) or one element
    -- per type. (A 2x2 types array was read as two items and two of its
    -- four jobs stored; a longer column was cut, a shorter one padded.)
    SELECT c.name, array_ndims(c.a) AS dims, array_lower(c.a, 1) AS lo,
           coalesce(array_length(c.a, 1), 0) AS len INTO bad
      FROM (VALUES (1, 'types', p_types::text[]), (2, 'payloads', p_payloads),
                   (3, 'queues', p_queues), (4, 'priorities', p_priorities::text[]),
                   (5, 'run_ats', p_run_ats::text[]), (6, 'delays_ms', p_delays_ms::text[]),
                   (7, 'max_retries', p_max_retries::text[]), (8, 'keys', p_keys),
                   (9, 'unique_for_ms', p_unique_for_ms::text[]),
                   (10, 'replace', p_replace::text[])) AS c(k, name, a)
     WHERE c.a IS NOT NULL
       AND (array_ndims(c.a) > 1 OR array_lower(c.a, 1) <> 1
            OR (c.k = 2 AND coalesce(array_length(c.a, 1), 0) <> n)
            OR (c.k > 2 AND coalesce(array_length(c.a, 1), 0) NOT IN (0, n)))
     ORDER BY c.k LIMIT 1;
    IF FOUND THEN
        IF bad.dims > 1 THEN
            RAISE EXCEPTION 'pgq.enqueue: % is a %-dimensional array; each column is a list',
                bad.name, bad.dims USING ERRCODE = '22023';
        ELSIF bad.lo <> 1 THEN
            RAISE EXCEPTION 'pgq.enqueue: % starts at index %; arrays start at 1', bad.name,
                bad.lo USING ERRCODE = '22023';
        END IF;
        RAISE EXCEPTION 'pgq.enqueue: % types but % %', n, bad.len, bad.name
            USING ERRCODE = '22023';
    END IF;
    IF n = 0 THEN
        RETURN;
    END IF;

    SELECT s.ord, s.type IS NULL AS no_type, s.payload IS NULL AS no_payload INTO bad
      FROM unnest(p_types, p_payloads) WITH ORDINALITY AS s(type, payload, ord)
     WHERE s.type IS NULL OR s.payload IS NULL
     ORDER BY s.ord LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION '% is NULL', CASE WHEN bad.no_type THEN 'type' ELSE 'payload' END
            USING ERRCODE = '22004', DETAIL = 'item ' || bad.ord;
    END IF;

    SELECT s.ord, s.queue, s.max_retries, s.delay_ms, s.priority, s.key, s.run_at INTO bad
      FROM unnest(p_queues[1:n], p_max_retries[1:n], p_delays_ms[1:n], p_priorities[1:n],
                  p_keys[1:n], p_run_ats[1:n]) WITH ORDINALITY
               AS s(queue, max_retries, delay_ms, priority, key, run_at, ord)
     WHERE length(s.queue) NOT BETWEEN 1 AND 100 OR s.queue ~ '[ \t\n\r\f\v]'
        OR s.max_retries < 0 OR s.delay_ms < 0 OR s.delay_ms > 3155760000000
        OR s.priority NOT BETWEEN -1000000 AND 1000000 OR octet_length(s.key) > 1000
        OR s.run_at > now() + interval '100 years'
     ORDER BY s.ord LIMIT 1;
    IF FOUND THEN
        PERFORM pgq.check_options(bad.ord::int, bad.queue, bad.max_retries, bad.delay_ms);
        PERFORM pgq.check_limits(bad.ord::int, bad.priority, bad.key, bad.run_at);
        RAISE EXCEPTION 'pgq.enqueue: item % refused for no known reason', bad.ord;
    END IF;

    -- Dependencies: the edges' shape, then each edge (refusals name the
    -- item that waits). An item may wait only for an earlier one, so a
    -- batch cannot make a cycle (and parents outside it exist already).
    IF p_after_ord IS NOT NULL OR p_after_job IS NOT NULL OR p_after_item IS NOT NULL THEN
        SELECT c.name, array_ndims(c.a) AS dims, array_lower(c.a, 1) AS lo,
               coalesce(array_length(c.a, 1), 0) AS len INTO bad
          FROM (VALUES (1, 'after_ord', p_after_ord::text[]), (2, 'after_job', p_after_job::text[]),
                       (3, 'after_item', p_after_item::text[])) AS c(k, name, a)
         WHERE c.a IS NOT NULL
           AND (array_ndims(c.a) > 1 OR array_lower(c.a, 1) <> 1
                OR (c.k > 1 AND coalesce(array_length(c.a, 1), 0)
                                <> coalesce(array_length(p_after_ord, 1), 0)))
         ORDER BY c.k LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'pgq.enqueue: % has % elements, after_ord %; an edge is one element of each',
                bad.name, bad.len, coalesce(array_length(p_after_ord, 1), 0)
                USING ERRCODE = '22023';
        END IF;
        SELECT e.k, e.o, e.job, e.item INTO bad
          FROM unnest(p_after_ord, p_after_job, p_after_item) WITH ORDINALITY AS e(o, job, item, k)
         WHERE e.o IS NULL OR e.o NOT BETWEEN 1 AND n OR (e.job IS NULL) = (e.item IS NULL)
            OR e.job <= 0 OR e.item NOT BETWEEN 1 AND e.o - 1
            OR coalesce(p_replace[e.o], false)
         ORDER BY e.o, e.k LIMIT 1;
        IF FOUND THEN
            IF bad.o IS NULL OR bad.o NOT BETWEEN 1 AND n THEN
                RAISE EXCEPTION 'pgq.enqueue: dependency % names item %, but the batch has % items',
                    bad.k, coalesce(bad.o::text, 'NULL'), n USING ERRCODE = '22023';
            ELSIF (bad.job IS NULL) = (bad.item IS NULL) THEN
                RAISE EXCEPTION 'a dependency names a job or an earlier item of the batch, not % of them',
                    CASE WHEN bad.job IS NULL THEN 'neither' ELSE 'both' END
                    USING ERRCODE = '22023', DETAIL = 'item ' || bad.o;
            ELSIF bad.job <= 0 THEN
                RAISE EXCEPTION 'unknown parent job %', bad.job
                    USING ERRCODE = '22023', DETAIL = 'item ' || bad.o;
            ELSIF bad.item IS NOT NULL THEN
                RAISE EXCEPTION 'after item %: an item can wait only for an earlier item of its batch',
                    bad.item USING ERRCODE = '22023', DETAIL = 'item ' || bad.o;
            END IF;
            RAISE EXCEPTION 'replace cannot be combined with after (a debounced job keeps its own dependencies)'
                USING ERRCODE = '22023', DETAIL = 'item ' || bad.o;
        END IF;
        waiting := ARRAY(SELECT DISTINCT e.o FROM unnest(p_after_ord) AS e(o) ORDER BY e.o);
    END IF;

    -- Parse the payloads; on failure find the item at fault (slow path only).
    BEGIN
        payloads := p_payloads::jsonb[];
    EXCEPTION WHEN invalid_text_representation OR untranslatable_character THEN
        FOR i IN 1..n LOOP
            PERFORM pgq.parse_payload(p_payloads[i], i);
        END LOOP;
        RAISE;
    END;

    -- One pass finds the first refusal in version 1's order of precedence
    -- (see pgq.check_item), then a payload over its type's max_payload
    -- (pgq.check_payload_size); the contracts of the batch's types are
    -- unnested once, not per item.
    SELECT s.ord, s.type, s.payload, s.run_at, t.required, t.max_payload,
           pgq.payload_size(s.payload) AS size INTO bad
      FROM unnest(p_types, payloads, p_run_ats) WITH ORDINALITY AS s(type, payload, run_at, ord)
      LEFT JOIN pgq.job_types t ON t.type = s.type
      LEFT JOIN (SELECT c.type, r.key, r.want
                   FROM pgq.job_types c
                  CROSS JOIN LATERAL jsonb_each_text(c.required) AS r(key, want)
                  WHERE c.type = ANY (p_types) AND c.required <> '{}') r
             ON r.type = s.type
            AND (jsonb_typeof(s.payload) <> 'object'
                 OR NOT s.payload ? r.key
                 OR jsonb_typeof(s.payload -> r.key) <> r.want)
     WHERE s.ord <= n
       AND (NOT isfinite(s.run_at) OR t.type IS NULL OR r.key IS NOT NULL
            -- (parsed above, so never compressed; small ones reach here
            -- with a 1-byte header, hence the 3 bytes)
            OR (t.max_payload > 0 AND pg_column_size(s.payload) > t.max_payload - 3
                AND pgq.payload_size(s.payload) > t.max_payload))
     ORDER BY CASE WHEN NOT isfinite(s.run_at) THEN 1 WHEN t.type IS NULL THEN 2
                   WHEN r.key IS NOT NULL THEN 3 ELSE 4 END,
              s.ord
     LIMIT 1;
    IF FOUND THEN
        PERFORM pgq.check_item(bad.ord::int, bad.type, bad.payload, bad.run_at, bad.required);
        PERFORM pgq.check_payload_size(bad.ord::int, bad.type, bad.size, bad.max_payload);
        RAISE EXCEPTION 'pgq.enqueue: item % refused for no known reason', bad.ord;
    END IF;

    -- Dedup windows and debounce (pgq.keys_expire, pgq.keys_replace): keys
    -- past their window are freed, waiting jobs of replace items take the
    -- new payload and run_at; those items are answered by the replaced job.
    IF cardinality(array_remove(p_unique_for_ms, NULL)) > 0
       OR coalesce(true = ANY (p_replace), false) THEN
        PERFORM pgq.check_dedup(s.ord::int, s.key, s.w, coalesce(s.rep, false))
           FROM unnest(p_keys, p_unique_for_ms, p_replace) WITH ORDINALITY AS s(key, w, rep, ord)
          WHERE s.w IS NOT NULL OR s.rep;
        PERFORM pgq.keys_expire(p_keys, p_unique_for_ms);
        IF coalesce(true = ANY (p_replace), false) THEN
            SELECT coalesce(array_agg(r.ord), '{}'), coalesce(array_agg(r.id), '{}')
              INTO rep_ords, rep_ids
              FROM pgq.keys_replace(p_keys, p_replace, payloads,
                                    ARRAY(SELECT coalesce(s.run_at, now() + coalesce(s.delay_ms, 0)
                                                                     * interval '1 millisecond')
                                            FROM unnest(p_run_ats, p_delays_ms) WITH ORDINALITY
                                                 AS s(run_at, delay_ms, k)
                                           ORDER BY s.k)) r;
        END IF;
    END IF;

    seq := pg_get_serial_sequence('pgq.jobs', 'id')::regclass;
    ids := ARRAY(SELECT nextval(seq) FROM generate_series(1, n));

    IF (p_keys IS NULL OR cardinality(array_remove(p_keys[1:n], NULL)) = 0)
       AND cardinality(waiting) = 0 THEN
        -- Fast path: no keys, so every item is a new job, in item order.
        WITH ins AS (
            INSERT INTO pgq.jobs AS j (id, queue, type, payload, priority, run_at, max_retries)
            SELECT s.id, coalesce(s.queue, t.queue), s.type, s.payload,
                   coalesce(s.priority, t.priority),
                   coalesce(s.run_at, now() + coalesce(s.delay_ms, 0) * interval '1 millisecond'),
                   coalesce(s.max_retries, t.max_retries)
              FROM unnest(ids, p_types, payloads, p_queues, p_priorities, p_run_ats,
                          p_delays_ms, p_max_retries)
                   WITH ORDINALITY AS s(id, type, payload, queue, priority, run_at, delay_ms,
                                        max_retries, ord)
              JOIN pgq.job_types t ON t.type = s.type
             WHERE s.ord <= n
            RETURNING j.queue, j.priority, j.run_at, j.id
        )
        -- Announce per queue the first position, and whether any is due.
        SELECT count(pgq.announce(f.queue, f.priority, f.run_at, f.id, f.due)) INTO i
          FROM (SELECT DISTINCT ON (ins.queue) ins.queue, ins.priority, ins.run_at, ins.id,
                       bool_or(ins.run_at <= now()) OVER (PARTITION BY ins.queue) AS due
                  FROM ins
                 ORDER BY ins.queue, ins.priority, ins.run_at, ins.id) f;

        RETURN QUERY SELECT s.ord::int, s.id, false, false
                       FROM unnest(ids) WITH ORDINALITY AS s(id, ord);
        RETURN;
    END IF;

    WITH input AS (
        SELECT s.ord::int AS ord, s.id, s.type, s.payload,
               coalesce(s.queue, t.queue) AS queue,
               coalesce(s.priority, t.priority) AS priority,
               coalesce(s.run_at, now() + coalesce(s.delay_ms, 0) * interval '1 millisecond') AS run_at,
               coalesce(s.max_retries, t.max_retries) AS max_retries,
               s.key, CASE WHEN s.ord = ANY (waiting) THEN 'waiting' ELSE 'ready' END AS state
          FROM unnest(ids, p_types, payloads, p_queues, p_priorities, p_run_ats, p_delays_ms,
                      p_max_retries, p_keys)
               WITH ORDINALITY AS s(id, type, payload, queue, priority, run_at, delay_ms,
                                    max_retries, key, ord)
          JOIN pgq.job_types t ON t.type = s.type
         WHERE s.ord <= n AND s.ord <> ALL (rep_ords)
    ), firsts AS (
        -- within one batch the first item with a key wins; later ones are its duplicates
        SELECT DISTINCT ON (input.key, CASE WHEN input.key IS NULL THEN input.ord END) input.*
          FROM input
         ORDER BY input.key, CASE WHEN input.key IS NULL THEN input.ord END, input.ord
    ), ins AS (
        INSERT INTO pgq.jobs AS j (id, queue, type, payload, priority, run_at, max_retries,
                                   idempotency_key, state)
        SELECT f.id, f.queue, f.type, f.payload, f.priority, f.run_at, f.max_retries, f.key,
               f.state
          -- key order: concurrent batches with the same keys cannot deadlock
          FROM firsts f ORDER BY f.key, f.ord
        ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
        RETURNING j.id, j.queue, j.priority, j.run_at, j.state
    ), woke AS (
        -- (waiting jobs are announced when pgq.deps_attach or their last
        -- parent makes them ready)
        SELECT count(pgq.announce(f.queue, f.priority, f.run_at, f.id, f.due)) AS n
          FROM (SELECT DISTINCT ON (ins.queue) ins.queue, ins.priority, ins.run_at, ins.id,
                       bool_or(ins.run_at <= now()) OVER (PARTITION BY ins.queue) AS due
                  FROM ins WHERE ins.state = 'ready'
                 ORDER BY ins.queue, ins.priority, ins.run_at, ins.id) f
    )
    SELECT array_agg(ins.id), (SELECT woke.n FROM woke) INTO inserted, i
      FROM ins;

    -- A separate statement, hence a fresh snapshot: it sees the rows whose
    -- concurrent insert made ours a duplicate.
    SELECT array_agg(r.id ORDER BY r.ord), array_agg(r.dup ORDER BY r.ord),
           array_agg(r.rep ORDER BY r.ord) INTO res_ids, res_dup, res_rep
      FROM (SELECT s.ord,
                   coalesce(rep.id, mine.id,
                            (SELECT j.id FROM pgq.jobs j WHERE j.idempotency_key = s.key),
                            pgq.key_vanished(s.key, s.ord::int)) AS id,
                   mine.id IS NULL AS dup, rep.id IS NOT NULL AS rep
              FROM unnest(ids, p_keys) WITH ORDINALITY AS s(id, key, ord)
              LEFT JOIN unnest(inserted) AS mine(id) ON mine.id = s.id
              LEFT JOIN unnest(rep_ords, rep_ids) AS rep(ord, id) ON rep.ord = s.ord
             WHERE s.ord <= n) r;

    -- The edges of the items stored now, each parent item as the job that
    -- answers it (new, or the one holding its key).
    IF cardinality(waiting) > 0 THEN
        PERFORM pgq.deps_attach(array_agg(res_ids[e.o]), array_agg(coalesce(e.job, res_ids[e.item])),
                                array_agg(e.o))
           FROM unnest(p_after_ord, p_after_job, p_after_item) AS e(o, job, item)
          WHERE NOT res_dup[e.o]
         HAVING count(*) > 0;
    END IF;

    RETURN QUERY SELECT r.ord::int, r.id, r.dup, r.rep
                   FROM unnest(res_ids, res_dup, res_rep) WITH ORDINALITY AS r(id, dup, rep, ord)
                  ORDER BY r.ord;
END
$$;

-- ---- dependencies: waiting -> ready | cancelled -----------------------------

-- Link new jobs to the jobs they wait for: p_children[k] waits for
-- p_parents[k] (p_ords[k]: the item named in refusals). The children are
-- rows this transaction inserted as `waiting`; each is left waiting for
-- its parents that are not done yet (waiting_for), or made ready (and
-- announced) when all of them are. An unknown parent, or one that is dead
-- or cancelled, is refused, naming it and the item: a child of a parent
-- that can no longer finish would be cancelled at once, and a producer is
-- better told. (A parent that dies after this add cancels the child, see
-- pgq.deps_settle.)
-- Fencing: the parents' row locks, taken in id order (FOR NO KEY UPDATE,
-- which a completion's UPDATE waits for). A parent that ends while this
-- add runs either ended first -- the lock then returns its final state,
-- and a done parent is counted done -- or waits for this transaction, and
-- its completion (pgq.deps_settle, a fresh snapshot) then finds the edge.
-- has_children is set on the parents, so that their completion knows to
-- look; a completion of a job without it does no look-up at all.
CREATE OR REPLACE FUNCTION pgq.deps_attach(p_children bigint[], p_parents bigint[], p_ords int[])
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    bad record;
    n int;
BEGIN
    PERFORM 1 FROM pgq.jobs p WHERE p.id = ANY (p_parents) ORDER BY p.id FOR NO KEY UPDATE;
    SELECT e.ord, e.parent, p.state INTO bad
      FROM unnest(p_children, p_parents, p_ords) AS e(child, parent, ord)
      LEFT JOIN pgq.jobs p ON p.id = e.parent
     WHERE p.id IS NULL OR p.state IN ('dead', 'cancelled')
     ORDER BY e.ord, e.parent LIMIT 1;
    IF FOUND THEN
        IF bad.state IS NULL THEN
            RAISE EXCEPTION 'unknown parent job %', bad.parent
                USING ERRCODE = '22023', DETAIL = 'item ' || bad.ord;
        END IF;
        RAISE EXCEPTION 'parent job % is %: a job cannot wait for it', bad.parent, bad.state
            USING ERRCODE = '22023', DETAIL = 'item ' || bad.ord;
    END IF;
    UPDATE pgq.jobs p SET has_children = true WHERE p.id = ANY (p_parents) AND NOT p.has_children;
    INSERT INTO pgq.job_deps (parent_id, child_id)
    SELECT DISTINCT e.parent, e.child FROM unnest(p_parents, p_children) AS e(parent, child)
    ON CONFLICT DO NOTHING;
    WITH upd AS (
        UPDATE pgq.jobs j
           SET waiting_for = w.n, state = CASE WHEN w.n > 0 THEN 'waiting' ELSE 'ready' END
          FROM (SELECT d.child_id, count(*) FILTER (WHERE p.state IS DISTINCT FROM 'done') AS n
                  FROM pgq.job_deps d LEFT JOIN pgq.jobs p ON p.id = d.parent_id
                 WHERE d.child_id = ANY (p_children)
                 GROUP BY d.child_id) w
         WHERE j.id = w.child_id AND j.state = 'waiting'
        RETURNING j.id, j.state, j.queue, j.priority, j.run_at
    )
    SELECT count(pgq.announce(f.queue, f.priority, f.run_at, f.id, f.due)) INTO n
      FROM (SELECT DISTINCT ON (u.queue) u.queue, u.priority, u.run_at, u.id,
                   bool_or(u.run_at <= now()) OVER (PARTITION BY u.queue) AS due
              FROM upd u WHERE u.state = 'ready'
             ORDER BY u.queue, u.priority, u.run_at, u.id) f;
END
$$;

-- Jobs p_ids ended in p_states[k] ('done', 'dead' or 'cancelled'; others
-- are ignored): their waiting children move on. A done parent takes one
-- off each child's waiting_for, and a child whose count reaches 0 is made
-- ready and announced. A dead or cancelled parent cancels its waiting
-- children ("parent job N is dead") and the waiting jobs below them
-- ("parent job M is cancelled"). Returns how many jobs moved.
-- Called by pgq.complete_claim (hence every completion, failure, reap and
-- cancel of a running job, batched or not) for the ended jobs that have
-- children, and by pgq.cancel for waiting and ready ones, in the
-- transaction that ends the parents. VOLATILE, so each statement here
-- takes a fresh snapshot: it sees the edges of an add that committed
-- while the caller waited for a parent's row lock (pgq.deps_attach).
-- Fencing: the children's row locks, taken in id order before anything is
-- read from them; the decrement is an UPDATE of the locked row (state
-- still 'waiting'), so when many parents end at once, in one statement or
-- in many concurrent ones, each edge counts once and exactly one of them
-- takes the count to 0 and releases the child. The jobs to cancel are
-- looked for again after they are locked, so an add of a child to one of
-- them that was under way finishes first and its child is found, and a
-- later add finds it cancelled and is refused.
CREATE OR REPLACE FUNCTION pgq.deps_settle(p_ids bigint[], p_states text[]) RETURNS int
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    done_ids bigint[];
    frontier bigint[];
    fstates text[];
    kids bigint[];
    victims bigint[] := '{}';
    moved int := 0;
    k int;
BEGIN
    done_ids := ARRAY(SELECT u.id FROM unnest(p_ids, p_states) AS u(id, st) WHERE u.st = 'done');
    SELECT coalesce(array_agg(u.id), '{}'), coalesce(array_agg(u.st), '{}') INTO frontier, fstates
      FROM unnest(p_ids, p_states) AS u(id, st) WHERE u.st IN ('dead', 'cancelled');
    IF cardinality(done_ids) > 0 THEN
        PERFORM 1 FROM pgq.jobs j
         WHERE j.id IN (SELECT d.child_id FROM pgq.job_deps d WHERE d.parent_id = ANY (done_ids))
           AND j.state = 'waiting'
         ORDER BY j.id FOR UPDATE;
        WITH upd AS (
            UPDATE pgq.jobs j
               SET waiting_for = j.waiting_for - c.k,
                   state = CASE WHEN j.waiting_for - c.k > 0 THEN 'waiting' ELSE 'ready' END
              FROM (SELECT d.child_id, count(*)::int AS k FROM pgq.job_deps d
                     WHERE d.parent_id = ANY (done_ids) GROUP BY d.child_id) c
             WHERE j.id = c.child_id AND j.state = 'waiting'
            RETURNING j.id, j.state, j.queue, j.priority, j.run_at
        ), woke AS (
            SELECT count(pgq.announce(f.queue, f.priority, f.run_at, f.id, f.due)) AS n
              FROM (SELECT DISTINCT ON (u.queue) u.queue, u.priority, u.run_at, u.id,
                           bool_or(u.run_at <= now()) OVER (PARTITION BY u.queue) AS due
                      FROM upd u WHERE u.state = 'ready'
                     ORDER BY u.queue, u.priority, u.run_at, u.id) f
        )
        SELECT count(*) FILTER (WHERE u.state = 'ready') INTO k
          FROM upd u WHERE (SELECT w.n FROM woke w) >= 0;
        moved := moved + k;
    END IF;
    -- The waiting jobs below the dead and cancelled ones, all of them
    -- locked in id order (as the releases above lock theirs, so that two
    -- transactions settling overlapping jobs wait for each other instead of
    -- deadlocking); then looked for again, with a fresh snapshot, until no
    -- new one turns up: a child that an add under way gave one of them
    -- (the add held its row) is found once that add committed.
    IF cardinality(frontier) > 0 THEN
        LOOP
            WITH RECURSIVE down(id) AS (
                SELECT d.child_id FROM pgq.job_deps d
                  JOIN pgq.jobs j ON j.id = d.child_id AND j.state = 'waiting'
                 WHERE d.parent_id = ANY (frontier)
                UNION
                SELECT d.child_id FROM down
                  JOIN pgq.job_deps d ON d.parent_id = down.id
                  JOIN pgq.jobs j ON j.id = d.child_id AND j.state = 'waiting'
            )
            SELECT coalesce(array_agg(down.id ORDER BY down.id), '{}') INTO kids
              FROM down WHERE down.id <> ALL (victims);
            EXIT WHEN cardinality(kids) = 0;
            PERFORM 1 FROM pgq.jobs j WHERE j.id = ANY (kids) ORDER BY j.id FOR UPDATE;
            victims := victims || kids;
        END LOOP;
        UPDATE pgq.jobs j
           SET state = 'cancelled', finished_at = now(), waiting_for = 0,
               last_error = (SELECT format('parent job %s is %s', x.id, x.st)
                               FROM pgq.job_deps d
                               JOIN (SELECT f.id, f.st, 0 AS k FROM unnest(frontier, fstates) AS f(id, st)
                                     UNION ALL
                                     SELECT v.id, 'cancelled', 1 FROM unnest(victims) AS v(id)) x
                                 ON x.id = d.parent_id
                              WHERE d.child_id = j.id
                              ORDER BY x.k, d.parent_id LIMIT 1)
         WHERE j.id = ANY (victims) AND j.state = 'waiting';
        GET DIAGNOSTICS k = ROW_COUNT;
        moved := moved + k;
    END IF;
    RETURN moved;
END
$$;

-- ---- limits per job type ---------------------------------------------------

-- [job T] concurrency = N and rate = N/DURATION, fleet-wide (issue 12).
-- The design, chosen so that a type without limits pays nothing more on
-- the claim path, and nothing at all when its attempts end:
--   * pgq.type_limits holds one row per limited type only (pgq.limits_sync
--     keeps it equal to pgq.job_types); the claim reads it with its pause
--     check, in the same statement, and with no row it changes nothing.
--   * The row is the lock of the type's claims: a claim that picked jobs
--     of a limited type takes them only as far as pgq.limit_room finds
--     room, earliest first; it locks the limits rows (all of them, in type
--     order, so that two claims taking several types cannot deadlock),
--     then counts, in a statement that sees every claim committed before
--     it got the lock, the type's running jobs (the partial index
--     jobs_limited_running_idx: the claim marks a limited type's jobs
--     `limited`), and the starts of the rate window on the row, which the
--     claim then adds its starts to. Claims of other types never touch it.
--   * No counter of running jobs is kept: the count is the index, so the
--     ends of attempts (complete, fail, release, reap, cancel, snooze) do
--     nothing for limits and cannot leave a count wrong. A completion not
--     yet committed is still running in every snapshot, so a claim can only
--     see too many running, never too few.
--   * Rate windows are fixed, aligned to the epoch (window number
--     floor(epoch ms / window)), counted on the type's row: at most N starts
--     per window. A burst may end one window and open the next, so a span
--     of one window's length that straddles two may see up to 2N starts.
--   * The claim steps over blocked types (at their limit now) in the index
--     walk, and returns no hint position for a job claimed after one of
--     them, so that they are found again once they may start.

-- The number of the rate window that now() lies in, for windows of p_ms.
CREATE OR REPLACE FUNCTION pgq.rate_window(p_ms bigint) RETURNS bigint
LANGUAGE sql STABLE AS $$ SELECT floor(extract(epoch FROM now()) * 1000 / p_ms)::bigint $$;

-- Each limited type's use now: running jobs, starts in the current rate
-- window, and whether it may start a job now (blocked). The claim reads
-- it, and so do the dashboard and `pgq types list`.
CREATE OR REPLACE VIEW pgq.type_use AS
    SELECT t.type, t.concurrency, r.n AS running, t.rate_count, t.rate_ms,
           CASE WHEN t.window_no = pgq.rate_window(t.rate_ms) THEN t.window_starts ELSE 0 END
               AS window_starts,
           (t.concurrency IS NOT NULL AND r.n >= t.concurrency)
           OR (t.rate_count IS NOT NULL AND t.window_no = pgq.rate_window(t.rate_ms)
               AND t.window_starts >= t.rate_count) AS blocked,
           t.set_at
      FROM pgq.type_limits t
     CROSS JOIN LATERAL (SELECT count(*) AS n FROM pgq.jobs j
                          WHERE j.state = 'running' AND j.limited AND j.type = t.type) r;

-- How many jobs of each limited type in p_types a claim may start now
-- (and whether the type has a rate limit, whose starts the claim counts):
-- below its concurrency (the type's running jobs counted) and within its
-- rate window's starts, the smaller (a type with one limit only: that
-- one's). Locks the limits rows first (all of them, in type order, so that
-- two claims of several types cannot deadlock; held to commit), then
-- counts in a statement of its own, whose snapshot sees every claim that
-- held the lock before us. A type without a row (its limits were removed
-- meanwhile) is not returned: not limited. The transaction start time
-- (now(), also the jobs' started_at) chooses the window; a claim whose
-- now() lies in a window before the one already counted has no room (its
-- window is over), so starts never count into a past window. Called once
-- per lease-out of the claim with limits (pgq.complete_claim), which takes
-- that many of each type's picks, earliest first, and records their
-- starts; an empty p_types locks nothing.
-- (Until migration 019 pgq.limit_take admitted one job at a time from
-- inside the lease-out UPDATE: in the order the UPDATE reached the rows,
-- id order, not claim order.)
DROP FUNCTION IF EXISTS pgq.limit_take(text, bigint, text, int, timestamptz);
CREATE OR REPLACE FUNCTION pgq.limit_room(p_types text[])
RETURNS TABLE (type text, room bigint, rated boolean) LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
    IF coalesce(cardinality(p_types), 0) = 0 THEN
        RETURN;
    END IF;
    PERFORM 1 FROM pgq.type_limits l ORDER BY l.type FOR UPDATE;
    -- A new statement, hence a snapshot taken after the lock.
    RETURN QUERY
    SELECT l.type,
           greatest(least(CASE WHEN l.concurrency IS NULL THEN NULL
                               ELSE l.concurrency - (SELECT count(*) FROM pgq.jobs j
                                                      WHERE j.state = 'running' AND j.limited
                                                        AND j.type = l.type) END,
                          CASE WHEN l.rate_count IS NULL THEN NULL
                               WHEN l.window_no IS NULL
                                    OR l.window_no < pgq.rate_window(l.rate_ms) THEN l.rate_count
                               WHEN l.window_no = pgq.rate_window(l.rate_ms)
                               THEN l.rate_count - l.window_starts
                               ELSE 0 END), 0)::bigint,
           l.rate_count IS NOT NULL
      FROM pgq.type_limits l
     WHERE l.type = ANY (p_types);
END
$$;

-- Keep pgq.type_limits equal to the limits registered in pgq.job_types
-- (a trigger after every statement that writes pgq.job_types: `pgq types
-- apply`, a pool's registration, an operator's UPDATE). Nothing happens
-- unless some type's limits changed. Then, under an ACCESS EXCLUSIVE lock
-- of pgq.type_limits (every claim that read it has committed, and none can
-- start until this transaction does), the changed types' rows are
-- replaced and their running jobs marked as limited or not, so that the
-- count of running jobs a claim makes includes those that started before
-- the limit was set. (Claims wait for that lock for the milliseconds of a
-- registration that changed a limit; one that changes nothing takes no
-- lock.)
CREATE OR REPLACE FUNCTION pgq.limits_sync() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    changed text[];
BEGIN
    FOR i IN 1..2 LOOP
        changed := ARRAY(
            SELECT coalesce(t.type, l.type)
              FROM (SELECT * FROM pgq.job_types jt
                     WHERE jt.concurrency IS NOT NULL OR jt.rate_count IS NOT NULL) t
              FULL JOIN pgq.type_limits l ON l.type = t.type
             WHERE (t.type, t.concurrency, t.rate_count, t.rate_ms)
                   IS DISTINCT FROM (l.type, l.concurrency, l.rate_count, l.rate_ms));
        IF cardinality(changed) = 0 THEN
            RETURN NULL;
        END IF;
        EXIT WHEN i = 2;
        -- Changed: look again under the lock.
        LOCK TABLE pgq.type_limits IN ACCESS EXCLUSIVE MODE;
    END LOOP;
    DELETE FROM pgq.type_limits l
     WHERE l.type = ANY (changed)
       AND NOT EXISTS (SELECT 1 FROM pgq.job_types t WHERE t.type = l.type
                          AND (t.concurrency IS NOT NULL OR t.rate_count IS NOT NULL));
    INSERT INTO pgq.type_limits AS l (type, concurrency, rate_count, rate_ms, window_no,
                                      window_starts, set_at)
    SELECT t.type, t.concurrency, t.rate_count, t.rate_ms, NULL, 0, now()
      FROM pgq.job_types t
     WHERE t.type = ANY (changed) AND (t.concurrency IS NOT NULL OR t.rate_count IS NOT NULL)
    ON CONFLICT (type) DO UPDATE
       SET concurrency = excluded.concurrency, rate_count = excluded.rate_count,
           rate_ms = excluded.rate_ms, set_at = excluded.set_at,
           -- the starts of the current window stay counted when the window is the same
           window_no = CASE WHEN l.rate_ms = excluded.rate_ms THEN l.window_no END,
           window_starts = CASE WHEN l.rate_ms = excluded.rate_ms THEN l.window_starts ELSE 0 END;
    UPDATE pgq.jobs j
       SET limited = EXISTS (SELECT 1 FROM pgq.type_limits l WHERE l.type = j.type)
     WHERE j.state = 'running' AND j.type = ANY (changed);
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER job_types_limits_sync
    AFTER INSERT OR UPDATE OR DELETE ON pgq.job_types
    FOR EACH STATEMENT EXECUTE FUNCTION pgq.limits_sync();

-- ---- snooze --------------------------------------------------------------

-- A handler asks that its job go back to ready p_delay_ms after this
-- attempt ends, without spending the attempt (`pgq snooze D` of an exec
-- handler, pgq_ctx_snooze() in process). Recorded on the running job,
-- fenced by its lease token and a live lease; applied when the attempt
-- ends done (pgq.complete_claim: ready at now() + the delay, the attempt
-- not counted, a `snoozed` history row); any other end (a failure, a
-- timeout, a release, an expired lease, a cancel) drops it. A later call
-- in the same attempt replaces the delay. held: the lease holds;
-- recorded: the snooze is asked; refused: not asked, because the job has
-- snoozed max_snoozes times already (its type's [job T] max_snoozes).
CREATE OR REPLACE FUNCTION pgq.snooze(p_id bigint, p_token uuid, p_delay_ms bigint)
RETURNS TABLE (held boolean, recorded boolean, snoozes int, max_snoozes int)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    cur record;
BEGIN
    IF p_delay_ms IS NULL OR p_delay_ms < 0 OR p_delay_ms > 3155760000000 THEN
        RAISE EXCEPTION 'snooze: the delay must be 0 to 100 years (3155760000000 ms), not % ms',
            coalesce(p_delay_ms::text, 'NULL') USING ERRCODE = '22023';
    END IF;
    SELECT j.snoozes, coalesce(t.max_snoozes, 100) AS max INTO cur
      FROM pgq.jobs j LEFT JOIN pgq.job_types t ON t.type = j.type
     WHERE j.id = p_id AND j.lease_token = p_token AND (j.state = 'running') IS TRUE
       AND j.lease_expires_at > now()
       FOR UPDATE OF j;
    IF NOT FOUND THEN
        RETURN QUERY SELECT false, false, NULL::int, NULL::int;
        RETURN;
    END IF;
    IF cur.snoozes >= cur.max THEN
        RETURN QUERY SELECT true, false, cur.snoozes, cur.max;
        RETURN;
    END IF;
    UPDATE pgq.jobs j SET snooze_ms = p_delay_ms
     WHERE j.id = p_id AND j.lease_token = p_token AND (j.state = 'running') IS TRUE;
    RETURN QUERY SELECT true, true, cur.snoozes, cur.max;
END
$$;

-- ---- the hot path: end attempts, claim the next, in one statement -------

-- pgq.complete_claim is the one home of the two halves of a job's run: it
-- ends attempts (p_ids[i] with lease p_tokens[i], all with one outcome)
-- and claims up to p_limit next jobs, in one statement and one
-- transaction (migration 003: a pool worker passes its finished job and
-- limit 1, one commit per job; a batching pool many of each). Both halves
-- live in this one function so that the hot path runs no nested function:
-- each level cost the pool a fifth of its throughput. pgq.end_attempts,
-- pgq.complete, pgq.fail, pgq.release, pgq.reap and pgq.claim are thin
-- wrappers over it.
--
-- Ending an attempt -- the one place a lease is cleared. p_outcome: 'done';
-- 'failed' (retried after a backoff, or dead after max_retries; p_errors[i]
-- becomes last_error); 'lease_expired' (the same, but retried at once in its
-- old place, its run_at unchanged: its worker died, the job did nothing
-- wrong, and the lease's expiry already paced it; with a backoff it went
-- behind the whole backlog, 35 s of waiting at the median with 2,500 jobs
-- queued); 'released' (back to ready,
-- the attempt not counted). A token that no longer holds its job changes
-- nothing and is not listed; the others come back as rows with acked set
-- (and their new state, attempts and run_at: a 'done' ack whose state is
-- 'ready' is one whose done end applied a snooze asked during the attempt,
-- which is how a pool learns of an exec handler's `pgq snooze` and reports
-- it snoozed, not done; migration 14). History: every attempt that
-- did not end 'done', and a done one when the job had earlier attempts or
-- the caller reported exit code or resources (migration 003). Jobs made
-- ready again (a release, a retry) are announced (pgq.announce). With
-- p_keep_done false (a pool with keep_done = 0) a job done is deleted
-- here instead of updated, with its history and effects (ON DELETE
-- CASCADE): one small delete record instead of a new row version and its
-- index entries, and nothing left for pgq.prune. 'cancelled' (pgq.cancel
-- of a running job): the job ends cancelled with p_errors[i] ("cancelled by
-- WHO") as its last error and its attempt's, and the holder's later end
-- finds its token gone.
--
-- Results (migration 9): p_results[i] is attempt i's result and
-- p_result_notes[i] what happened to it (cut, not stored); kept only for
-- 'done' (pgq.job_results), on its history row, which a result makes
-- necessary. The pool passes them with its acks, several workers' at once.
--
-- Claiming -- the one place a lease is given out: lowest priority, then
-- earliest run_at, then id; FOR UPDATE SKIP LOCKED. The claim index is
-- (queue, priority, run_at, id) over ready rows; the loop walks the
-- distinct priorities in order (a skip scan), so a claim costs O(priorities
-- x queues) index probes however many jobs are queued or scheduled.
--
-- Claim hints (p_hint_*: one element per queue, NULL for none): the
-- position (priority, run_at in microseconds, id) of the last job this
-- caller claimed from the queue. The claim starts after it instead of at
-- the start of the index, which under a pinned xmin is full of entries of
-- claimed jobs (see the top of this file). A hint is a promise by the
-- caller that no ready job of that priority lies before it; pools keep it
-- true by lowering the hint to every position announced on pgq_ready and
-- by dropping it on any error and every few seconds. Better priorities
-- than the hint's are not searched unless p_better (a pool asks so once
-- per poll interval: that is how a scheduled job of a better priority
-- coming due is found). Without hints the claim searches everything.
-- Version 4's form had no p_keep_done, version 6's no p_results nor
-- p_result_notes (their callers pass at most 17 arguments, which the form
-- below takes as they were).
DROP FUNCTION IF EXISTS pgq.complete_claim(bigint[], uuid[], int[], int[], bigint[], bigint[],
                                           text[], text, bigint, int, int[], bigint[], bigint[],
                                           boolean, text, text[]);
DROP FUNCTION IF EXISTS pgq.complete_claim(bigint[], uuid[], int[], int[], bigint[], bigint[],
                                           text[], text, bigint, int, int[], bigint[], bigint[],
                                           boolean, text, text[], boolean);
-- The delay before the retry of a job of type p_type that failed its
-- attempt p_attempts: its type's backoff (defaults for a type without a
-- row). A function of its own, not a subquery of the completion's UPDATE,
-- so that only a failing attempt pays for it: a subquery's plan is set up
-- at every execution of the statement, and a call of a PL/pgSQL function
-- keeps its plan (migration 015).
CREATE OR REPLACE FUNCTION pgq.retry_delay_ms(p_type text, p_attempts int) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    base bigint;
    cap bigint;
BEGIN
    SELECT t.backoff_base_ms, t.backoff_max_ms INTO base, cap
      FROM pgq.job_types t WHERE t.type = p_type;
    RETURN pgq.backoff_ms(p_attempts, coalesce(base, 1000), coalesce(cap, 3600000));
END
$$;

CREATE OR REPLACE FUNCTION pgq.complete_claim(p_ids bigint[], p_tokens uuid[], p_exit int[],
                                   p_signal int[], p_cpu_ms bigint[], p_rss_kb bigint[],
                                   p_queues text[], p_owner text, p_ttl_ms bigint,
                                   p_limit int, p_hint_prio int[], p_hint_run_at bigint[],
                                   p_hint_id bigint[], p_better boolean,
                                   p_outcome text DEFAULT 'done', p_errors text[] DEFAULT NULL,
                                   p_keep_done boolean DEFAULT true,
                                   p_results text[] DEFAULT NULL,
                                   p_result_notes text[] DEFAULT NULL)
RETURNS TABLE (acked bigint, id bigint, queue text, type text, payload text, attempts int,
               max_retries int, priority int, lease_token text, timeout_ms bigint, ord int,
               run_at bigint, state text)
-- Generic plans and no sequential scans: see migration 003. Every hint
-- condition below is on parameters only, so that the plan keeps walking
-- the claim index from the bound (a gate, not a filter). No JIT: the
-- read of pgq.type_limits (a few rows, no index worth walking) is a
-- sequential scan whose disabled cost alone passes jit_above_cost, and
-- compiling it took 230 ms per claim.
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan SET enable_seqscan = off
SET jit = off AS $$
#variable_conflict use_column
DECLARE
    n int := coalesce(cardinality(p_ids), 0);
    failing boolean := p_outcome IN ('failed', 'lease_expired');
    gone boolean := p_outcome = 'done' AND p_keep_done IS FALSE;
    want int := greatest(coalesce(p_limit, 0), 0);
    nq int := coalesce(cardinality(p_queues), 0);
    prio int;
    picks bigint[];      -- the jobs a claim picked (and locked), before their lease
    admitted bigint[];   -- ... those of them that limits admit, in claim order
    refused bigint[];    -- ... and those they do not
    rated boolean;       -- ... and whether a type with a rate limit is among those admitted
    pick_types text[];   -- the picks' types (with limits in the fleet)
    turn int[];
    k int;
    got int := 0;
    taken bigint;
    paused boolean;
    limited_types text[];  -- the types with limits (NULL: none, the common case)
    blocked_types text[];  -- those that may not start now (NULL: none)
    nb text[];
    retry boolean;
    e_ids bigint[];      -- the attempts ended here: job, attempts, position, state
    e_attempts int[];
    e_pos bigint[];
    e_states text[];
    h_ids bigint[];      -- those that get an attempt row
    s_ids bigint[];      -- those snoozed
    c_ids bigint[];      -- those whose children are settled, and their states
    c_states text[];
    limits boolean;      -- any type with limits in the fleet
    detail boolean;      -- the caller reported more than the outcome of some attempt
    one boolean := false; -- one plain success (see below)
    f_id bigint;         -- ... and what its UPDATE returned
    f_state text;
    f_run_at timestamptz;
    f_attempts int;
    f_children boolean;
BEGIN
    IF n > 0 THEN
        IF p_outcome IS NULL
           OR p_outcome NOT IN ('done', 'failed', 'lease_expired', 'released', 'cancelled') THEN
            RAISE EXCEPTION 'pgq.complete_claim: unknown outcome "%"', p_outcome
                USING ERRCODE = '22023';
        END IF;
        -- The end of each attempt is this one UPDATE, fenced by the lease
        -- token. What only some ends need -- a history row, the release of
        -- dependants, a snoozed job's announcement, the removal of a done
        -- job when done jobs are not kept -- runs after it as statements
        -- of their own, and only when a row of this call needs them: a
        -- plain done job (the common case) costs this one statement.
        -- (Until migration 015 all of it was one statement with a CTE per
        -- step; every step's plan was set up at every call, needed or not,
        -- which cost a strict-profile job more server CPU than the update.)
        -- A result or its note: a done attempt that reports one gets its
        -- history row (where results are kept). An exec handler's CPU time
        -- and RSS go on the job row (migration 017), whose UPDATE below
        -- writes them for every end; a done attempt's exit status is 0.
        detail := coalesce(cardinality(array_remove(p_results[1:n], NULL)), 0) > 0
                  OR coalesce(cardinality(array_remove(p_result_notes[1:n], NULL)), 0) > 0;
        -- Rows are locked in id order, as pgq.renew and pgq.cancel lock
        -- them: acks of several workers in one call, in the order they
        -- finished, against the heartbeat's renewal of the same leases in
        -- another order, deadlocked (a stall of deadlock_timeout and a
        -- retry; seen in the exec benchmark).
        -- One plain success (a strict worker's every call, a lone ack):
        -- the same end as the statement below, for one row, written for
        -- it. That statement's plan (a join, a sort, eight aggregates) is
        -- set up at every call, and its set-up cost a strict job more than
        -- its execution (callgrind: bench/README.md, issue 10).
        one := n = 1 AND p_outcome = 'done' AND NOT gone AND NOT detail
               AND p_ids[1] IS NOT NULL;
        IF one THEN
            UPDATE pgq.jobs j
               SET state = CASE WHEN j.snooze_ms IS NOT NULL THEN 'ready' ELSE 'done' END,
                   attempts = CASE WHEN j.snooze_ms IS NOT NULL THEN j.attempts - 1
                                   ELSE j.attempts END,
                   snoozes = CASE WHEN j.snooze_ms IS NOT NULL THEN j.snoozes + 1
                                  ELSE j.snoozes END,
                   snooze_ms = NULL,
                   run_at = CASE WHEN j.snooze_ms IS NOT NULL
                                 THEN now() + j.snooze_ms * interval '1 millisecond'
                                 ELSE j.run_at END,
                   finished_at = CASE WHEN j.snooze_ms IS NULL THEN now() END,
                   lease_token = NULL,
                   lease_expires_at = NULL,
                   cpu_ms = p_cpu_ms[1],
                   max_rss_kb = p_rss_kb[1]
             WHERE j.id = p_ids[1] AND j.lease_token = p_tokens[1]
               AND (j.state = 'running') IS TRUE
            RETURNING j.id, j.state, j.run_at, j.attempts, j.has_children
                 INTO f_id, f_state, f_run_at, f_attempts, f_children;
            IF f_id IS NOT NULL AND (f_attempts > 1 OR f_state = 'ready' OR f_children) THEN
                -- the rarer follow-ups, as the statement below would name them
                e_ids := ARRAY[f_id];
                e_states := ARRAY[f_state];
                IF f_attempts > 1 OR f_state = 'ready' THEN
                    h_ids := e_ids;
                END IF;
                IF f_state = 'ready' THEN
                    s_ids := e_ids;
                END IF;
                IF f_children AND f_state = 'done' THEN
                    c_ids := e_ids;
                    c_states := e_states;
                END IF;
            END IF;
        ELSE
            WITH a AS (
                SELECT * FROM unnest(p_ids, p_tokens, p_errors[1:n], p_cpu_ms[1:n], p_rss_kb[1:n])
                                  AS a(id, tok, error, cpu_ms, rss_kb)
                 WHERE a.id IS NOT NULL
                 ORDER BY a.id
            ), upd AS (
                UPDATE pgq.jobs j
                   SET state = CASE WHEN p_outcome = 'done' AND j.snooze_ms IS NOT NULL THEN 'ready'
                                    WHEN p_outcome IN ('done', 'cancelled') THEN p_outcome
                                    WHEN p_outcome = 'released' OR j.attempts <= j.max_retries
                                    THEN 'ready' ELSE 'dead' END,
                       attempts = CASE WHEN p_outcome = 'released'
                                         OR (p_outcome = 'done' AND j.snooze_ms IS NOT NULL)
                                       THEN j.attempts - 1 ELSE j.attempts END,
                       snoozes = CASE WHEN p_outcome = 'done' AND j.snooze_ms IS NOT NULL
                                      THEN j.snoozes + 1 ELSE j.snoozes END,
                       snooze_ms = NULL,
                       run_at = CASE WHEN p_outcome = 'done' AND j.snooze_ms IS NOT NULL
                                     THEN now() + j.snooze_ms * interval '1 millisecond'
                                     WHEN p_outcome = 'failed' AND j.attempts <= j.max_retries
                                     THEN now() + pgq.retry_delay_ms(j.type, j.attempts)
                                                  * interval '1 millisecond'
                                     ELSE j.run_at END,
                       finished_at = CASE WHEN (p_outcome = 'done' AND j.snooze_ms IS NULL)
                                            OR p_outcome = 'cancelled'
                                            OR (failing AND j.attempts > j.max_retries)
                                          THEN now() END,
                       last_error = CASE WHEN failing OR p_outcome = 'cancelled' THEN a.error
                                         ELSE j.last_error END,
                       lease_token = NULL,
                       lease_expires_at = NULL,
                       cpu_ms = a.cpu_ms,
                       max_rss_kb = a.rss_kb
                  FROM a
                 WHERE j.id = a.id AND j.lease_token = a.tok AND (j.state = 'running') IS TRUE
                   AND (NOT gone OR j.snooze_ms IS NOT NULL)
             RETURNING j.id, j.state, j.run_at, j.attempts, j.has_children,
                       p_outcome = 'done' AND j.state = 'ready' AS snoozed,
                       -- an attempt row is written for every end but the plain
                       -- first-time done (whose record is the job row itself)
                       -- (a candidate: with a result, the INSERT below decides)
                       p_outcome <> 'done' OR j.attempts > 1 OR j.state = 'ready' OR detail
                         AS hist
            )
            SELECT array_agg(u.id), array_agg(u.attempts), array_agg(pgq.position_us(u.run_at)),
                   array_agg(u.state),
                   array_agg(u.id) FILTER (WHERE u.hist),
                   array_agg(u.id) FILTER (WHERE u.snoozed),
                   array_agg(u.id) FILTER (WHERE u.has_children
                                              AND u.state IN ('done', 'dead', 'cancelled')),
                   array_agg(u.state) FILTER (WHERE u.has_children
                                                 AND u.state IN ('done', 'dead', 'cancelled'))
              INTO e_ids, e_attempts, e_pos, e_states, h_ids, s_ids, c_ids, c_states
              FROM upd u;
        END IF;
        IF gone THEN
            -- keep_done = 0: a done job leaves at once (a snoozed one was
            -- updated above instead). Its own dependency edges go with it
            -- (pgq.job_deps has no foreign key: see migration 010).
            WITH del AS (
                DELETE FROM pgq.jobs j
                 USING (SELECT * FROM unnest(p_ids, p_tokens) AS u(id, tok) ORDER BY u.id) a
                 WHERE j.id = a.id AND j.lease_token = a.tok
                   AND (j.state = 'running') IS TRUE AND j.snooze_ms IS NULL
             RETURNING j.id, j.run_at, j.attempts, j.has_children
            ), undep AS (
                DELETE FROM pgq.job_deps d USING del WHERE d.child_id = del.id
            )
            SELECT coalesce(e_ids, '{}') || coalesce(array_agg(d.id), '{}'),
                   coalesce(e_attempts, '{}') || coalesce(array_agg(d.attempts), '{}'),
                   coalesce(e_pos, '{}') || coalesce(array_agg(pgq.position_us(d.run_at)), '{}'),
                   coalesce(e_states, '{}') || coalesce(array_agg('done'::text), '{}'),
                   coalesce(c_ids, '{}') || coalesce(array_agg(d.id) FILTER (WHERE d.has_children), '{}'),
                   coalesce(c_states, '{}')
                     || coalesce(array_agg('done'::text) FILTER (WHERE d.has_children), '{}')
              INTO e_ids, e_attempts, e_pos, e_states, c_ids, c_states
              FROM del d;
        END IF;
        IF h_ids IS NOT NULL THEN
            -- The attempt's record, read back from the row just written (its
            -- owner and start are kept by the UPDATE) with what the caller
            -- reported for it.
            INSERT INTO pgq.job_attempts (job_id, attempt, outcome, worker, error, exit_code,
                                          term_signal, cpu_ms, max_rss_kb, started_at, duration_ms,
                                          result, result_note)
            SELECT j.id,
                   CASE WHEN p_outcome = 'released' OR s.snoozed THEN j.attempts + 1
                        ELSE j.attempts END,
                   CASE WHEN s.snoozed THEN 'snoozed' ELSE p_outcome END, j.lease_owner,
                   CASE WHEN p_outcome = 'released' THEN 'released (not counted)'
                        WHEN s.snoozed THEN 'snoozed until ' || j.run_at || ' (not counted)'
                        ELSE a.error END,
                   a.exit_code, a.sig, a.cpu_ms, a.rss_kb, j.started_at,
                   extract(epoch FROM clock_timestamp() - j.started_at) * 1000,
                   CASE WHEN p_outcome = 'done' THEN a.result END,
                   CASE WHEN p_outcome = 'done' THEN a.note END
              FROM (SELECT DISTINCT ON (a.id) a.*
                      FROM unnest(p_ids, p_errors[1:n], p_exit[1:n], p_signal[1:n],
                                  p_cpu_ms[1:n], p_rss_kb[1:n], p_results[1:n],
                                  p_result_notes[1:n])
                               AS a(id, error, exit_code, sig, cpu_ms, rss_kb, result, note)
                     WHERE a.id = ANY (h_ids)
                     ORDER BY a.id) a
              JOIN pgq.jobs j ON j.id = a.id
             CROSS JOIN LATERAL (SELECT coalesce(a.id = ANY (s_ids), false) AS snoozed) s
             WHERE p_outcome <> 'done' OR j.attempts > 1 OR s.snoozed
                OR a.result IS NOT NULL OR a.note IS NOT NULL;
        END IF;
        IF c_ids IS NOT NULL AND cardinality(c_ids) > 0 THEN
            -- Dependencies (migration 010): the children of jobs that end
            -- here done, dead or cancelled are released or cancelled in
            -- this transaction. Only jobs that have children pay for it.
            -- (has_children is read from the row the UPDATE wrote: an add
            -- of a child that held the row made the UPDATE wait and see
            -- its flag.)
            PERFORM pgq.deps_settle(c_ids, c_states);
        END IF;
        IF s_ids IS NOT NULL THEN
            -- Snoozed jobs are ready again (later): announced like retries.
            PERFORM pgq.announce(j.queue, j.priority, j.run_at, j.id, false)
               FROM pgq.jobs j WHERE j.id = ANY (s_ids);
        END IF;
        IF one THEN
            IF f_id IS NOT NULL THEN
                acked := f_id;
                attempts := f_attempts;
                run_at := pgq.position_us(f_run_at);
                state := f_state;
                RETURN NEXT;
                acked := NULL;
                attempts := NULL;
                run_at := NULL;
                state := NULL;
            END IF;
        ELSE
        RETURN QUERY
        SELECT u.id, NULL::bigint, NULL::text, NULL::text, NULL::text, u.attempts, NULL::int,
               NULL::int, NULL::text, NULL::bigint, NULL::int, u.pos, u.state
          FROM unnest(e_ids, e_attempts, e_pos, e_states) AS u(id, attempts, pos, state);
        END IF;
        IF p_outcome <> 'done' THEN
            -- Announce the jobs made ready again (a job of p_ids that is
            -- ready for another reason is announced too: harmless).
            PERFORM pgq.announce(f.queue, f.priority, f.run_at, f.id, f.due)
               FROM (SELECT DISTINCT ON (j.queue) j.queue, j.priority, j.run_at, j.id,
                            bool_or(j.run_at <= now()) OVER (PARTITION BY j.queue) AS due
                       FROM pgq.jobs j
                      WHERE j.id = ANY (p_ids) AND j.state = 'ready'
                      ORDER BY j.queue, j.priority, j.run_at, j.id) f;
        END IF;
    ELSIF want > 0 THEN
        -- A claim that completes nothing does not wait for its WAL flush
        -- (migration 003: losing it in a crash only makes the job ready).
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    IF want = 0 OR nq = 0 THEN
        RETURN;
    END IF;
    -- A paused queue is claimed by no one: its name is blanked here, so
    -- that the hints stay aligned with the queues (every search below
    -- skips a NULL name). One probe of pgq.queues' primary key per claim.
    -- The same statement reads the limited types (pgq.type_use: none in a
    -- fleet without limits, and then nothing below changes) and those of
    -- them that may not start now, which the picks step over.
    SELECT EXISTS (SELECT 1 FROM pgq.queues pq WHERE pq.queue = ANY (p_queues) AND pq.paused),
           EXISTS (SELECT 1 FROM pgq.type_limits)
      INTO paused, limits;
    IF limits THEN
        SELECT array_agg(t.type), array_agg(t.type) FILTER (WHERE t.blocked)
          INTO limited_types, blocked_types
          FROM pgq.type_use t;
    END IF;
    IF paused THEN
        p_queues := ARRAY(SELECT CASE WHEN EXISTS (SELECT 1 FROM pgq.queues pq
                                                     WHERE pq.queue = u.q AND pq.paused)
                                      THEN NULL ELSE u.q END
                            FROM unnest(p_queues) WITH ORDINALITY AS u(q, k) ORDER BY u.k);
        IF (SELECT bool_and(u.q IS NULL) FROM unnest(p_queues) AS u(q)) THEN
            RETURN;
        END IF;
    END IF;
    -- The first priority with a ready job after each queue's hint; with
    -- p_better also any better priority than the hint's. One queue with a
    -- hint (a pool worker's every claim after its first) starts at its
    -- hint's priority without asking: the search below takes what is due
    -- there after the hint and otherwise moves on to the next priority,
    -- which is what the statement would have found.
    IF nq = 1 AND p_hint_prio[1] IS NOT NULL AND p_queues[1] IS NOT NULL
       AND p_better IS NOT TRUE THEN
        prio := p_hint_prio[1];
    ELSE
    SELECT min(least(b.priority, x.priority)) INTO prio
      FROM unnest(p_queues, p_hint_prio[1:nq], p_hint_run_at[1:nq], p_hint_id[1:nq])
               AS q(name, hp, hr, hi)
      LEFT JOIN LATERAL (SELECT j.priority FROM pgq.jobs j
                          WHERE j.state = 'ready' AND j.queue = q.name
                            AND (j.priority, j.run_at, j.id)
                                > (coalesce(q.hp, -2147483648),
                                   coalesce(pgq.from_position_us(q.hr), '-infinity'),
                                   coalesce(q.hi, 0))
                          ORDER BY j.priority, j.run_at, j.id LIMIT 1) x ON true
      LEFT JOIN LATERAL (SELECT j.priority FROM pgq.jobs j
                          WHERE p_better AND q.hp IS NOT NULL
                            AND j.state = 'ready' AND j.queue = q.name AND j.priority < q.hp
                          ORDER BY j.priority LIMIT 1) b ON true
     WHERE q.name IS NOT NULL;
    END IF;
    WHILE prio IS NOT NULL AND want > 0 LOOP
        -- The queues in the order of their next due job of this priority.
        -- Nothing is locked here: a claim that locked one row per queue and
        -- took one would leave the others locked for a moment, concurrent
        -- claims would skip them and move their hints past them, and they
        -- would be ready behind every hint. A queue whose hint lies at a
        -- later priority is not searched at this one (unless p_better).
        IF nq = 1 THEN
            turn := ARRAY[1];
        ELSE
            turn := ARRAY(
                SELECT q.k
                  FROM unnest(p_queues, p_hint_prio[1:nq], p_hint_run_at[1:nq], p_hint_id[1:nq])
                           WITH ORDINALITY AS q(name, hp, hr, hi, k)
                 CROSS JOIN LATERAL (
                        SELECT j.run_at, j.id FROM pgq.jobs j
                         WHERE (q.hp IS NULL OR p_better OR q.hp <= prio)
                           AND j.state = 'ready' AND j.queue = q.name AND j.priority = prio
                           AND j.run_at <= now()
                           AND (j.run_at, j.id)
                               > (CASE WHEN q.hp = prio THEN pgq.from_position_us(q.hr)
                                       ELSE '-infinity' END,
                                  CASE WHEN q.hp = prio THEN q.hi ELSE 0 END)
                         ORDER BY j.run_at, j.id LIMIT 1) c
                 WHERE q.name IS NOT NULL
                 ORDER BY c.run_at, c.id);
        END IF;
        -- Take from each in turn, locking only what is taken.
        FOREACH k IN ARRAY turn LOOP
          LOOP   -- once more when a limited type's job was refused (see below)
            -- The picks, one or several: the generic plan walks the claim
            -- index from the hint (its ORDER BY is the index's own after
            -- the equalities; at 3M ready jobs it reads 12 buffers for 8
            -- jobs). Until migration 018 several were an EXECUTE, parsed
            -- and planned afresh at every claim of the default and exec
            -- profiles, and one job was picked inside each lease-out
            -- statement.
            picks := ARRAY(
                SELECT j.id FROM pgq.jobs j
                 WHERE j.state = 'ready' AND j.queue = p_queues[k] AND j.priority = prio
                   AND j.run_at <= now()
                   AND (j.run_at, j.id)
                       > (CASE WHEN p_hint_prio[k] = prio
                               THEN pgq.from_position_us(p_hint_run_at[k])
                               ELSE '-infinity' END,
                          CASE WHEN p_hint_prio[k] = prio THEN p_hint_id[k] ELSE 0 END)
                   AND (blocked_types IS NULL OR j.type <> ALL (blocked_types))
                 ORDER BY j.run_at, j.id
                 LIMIT want FOR UPDATE SKIP LOCKED);
            EXIT WHEN cardinality(picks) = 0;
            -- The one place a lease is given out, to the jobs just picked
            -- (and locked): one statement without limits in the fleet, one
            -- with them. ord: claim order, the picks' ordinality (joined, not
            -- searched for: array_position per job made a claim of n jobs
            -- compare n^2/2 ids; migration 019).
            --
            -- Limits (a fleet without them skips all of this: `limited_types`
            -- is NULL): the picks step over the blocked types, and picked
            -- jobs of a limited type are taken only as far as
            -- pgq.limit_room finds room, under the lock of the limits' rows
            -- (so the limit holds however many pools claim at once; a job
            -- refused stays ready and is announced). A claimed job's position is its
            -- caller's new hint; when a job of a blocked type was stepped
            -- over before it, the position is NULL instead, so that no
            -- hint moves past a job that will be claimable again.
            -- Without limits in the fleet none of their steps run: a type
            -- without limits costs its claims nothing more (bench/LIMITS.md),
            -- and the picks above, one or several, are leased by one UPDATE
            -- returned as it is (no CTE, no outer query: migration 018).
            IF limited_types IS NULL THEN
            RETURN QUERY
                UPDATE pgq.jobs j
                   SET state = 'running', attempts = j.attempts + 1, lease_owner = p_owner,
                       lease_token = gen_random_uuid(),
                       lease_expires_at = pgq.lease_expiry(p_ttl_ms), started_at = now()
                  FROM unnest(picks) WITH ORDINALITY AS p(id, ord)
                 WHERE j.id = p.id
             RETURNING NULL::bigint, j.id, j.queue, j.type, j.payload::text, j.attempts,
                       j.max_retries, j.priority, j.lease_token::text,
                       coalesce((SELECT t.timeout_ms FROM pgq.job_types t WHERE t.type = j.type),
                                60000),
                       got + p.ord::int, pgq.position_us(j.run_at), NULL::text;
            ELSE
            -- Admission, in claim order: of each limited type among the
            -- picks, the earliest, as many as pgq.limit_room finds room for
            -- (under the lock of the limits' rows, held to commit); the
            -- others stay ready and are announced, since other claims may
            -- have skipped them while we held them. (A type without room
            -- at all was a blocked type, which the picks stepped over,
            -- unless it filled up since the blocked types were read.)
            -- Picks of other types only (most claims of a fleet with a
            -- limited type somewhere) are all admitted after one look at
            -- their types.
            pick_types := ARRAY(SELECT j.type FROM unnest(picks) WITH ORDINALITY AS p(id, ord)
                                  JOIN pgq.jobs j ON j.id = p.id ORDER BY p.ord);
            admitted := picks;
            rated := false;
            IF pick_types && limited_types THEN
                SELECT coalesce(array_agg(x.id ORDER BY x.ord) FILTER (WHERE x.admit), '{}'),
                       coalesce(array_agg(x.id) FILTER (WHERE NOT x.admit), '{}'),
                       coalesce(bool_or(x.rated AND x.admit), false)
                  INTO admitted, refused, rated
                  FROM (SELECT p.id, p.ord, r.type IS NOT NULL AND r.rated AS rated,
                               r.type IS NULL
                               OR row_number() OVER (PARTITION BY p.type ORDER BY p.ord) <= r.room
                                 AS admit
                          FROM unnest(picks, pick_types) WITH ORDINALITY AS p(id, type, ord)
                          LEFT JOIN pgq.limit_room(ARRAY(
                                        SELECT DISTINCT t.t FROM unnest(pick_types) AS t(t)
                                         WHERE t.t = ANY (limited_types)))
                                    AS r ON r.type = p.type) x;
                IF cardinality(refused) > 0 THEN
                    PERFORM pgq.announce(j.queue, j.priority, j.run_at, j.id, true)
                       FROM pgq.jobs j WHERE j.id = ANY (refused);
                END IF;
            END IF;
            -- The starts of the rate windows, counted on the types' rows.
            IF rated THEN
                UPDATE pgq.type_limits l
                   SET window_starts = CASE WHEN l.window_no = pgq.rate_window(l.rate_ms)
                                            THEN l.window_starts + s.n ELSE s.n END,
                       window_no = pgq.rate_window(l.rate_ms)
                  FROM (SELECT t.type, count(*) AS n
                          FROM unnest(picks, pick_types) AS t(id, type)
                         WHERE t.id = ANY (admitted) AND t.type = ANY (limited_types)
                         GROUP BY t.type) s
                 WHERE l.type = s.type AND l.rate_count IS NOT NULL;
            END IF;
            RETURN QUERY
            WITH upd AS (
                UPDATE pgq.jobs j
                   SET state = 'running', attempts = j.attempts + 1, lease_owner = p_owner,
                       lease_token = gen_random_uuid(),
                       lease_expires_at = pgq.lease_expiry(p_ttl_ms), started_at = now(),
                       limited = j.type = ANY (limited_types)
                  FROM unnest(admitted) WITH ORDINALITY AS p(id, ord)
                 WHERE j.id = p.id
             RETURNING j.*, p.ord AS pick_ord
            )
            SELECT NULL::bigint, u.id, u.queue, u.type, u.payload::text, u.attempts,
                   u.max_retries, u.priority, u.lease_token::text,
                   coalesce((SELECT t.timeout_ms FROM pgq.job_types t WHERE t.type = u.type),
                            60000),
                   got + u.pick_ord::int,   -- dense: the admitted, in claim order
                   CASE WHEN blocked_types IS NULL THEN pgq.position_us(u.run_at)
                        WHEN EXISTS (
                            SELECT 1 FROM pgq.jobs s
                             WHERE s.state = 'ready' AND s.queue = u.queue
                               AND s.priority = u.priority AND s.type = ANY (blocked_types)
                               AND (s.run_at, s.id) < (u.run_at, u.id)
                               AND (s.run_at, s.id)
                                   > (CASE WHEN p_hint_prio[k] = prio
                                           THEN pgq.from_position_us(p_hint_run_at[k])
                                           ELSE '-infinity' END,
                                      CASE WHEN p_hint_prio[k] = prio THEN p_hint_id[k] ELSE 0 END))
                        THEN NULL
                        ELSE pgq.position_us(u.run_at) END,
                   NULL::text
              FROM upd u;
            END IF;
            GET DIAGNOSTICS taken = ROW_COUNT;
            -- Fewer taken than picked (or none for one) with limits: a type
            -- may have reached its limit meanwhile; once the blocked types
            -- are read again, this queue is searched once more without them.
            retry := limited_types IS NOT NULL AND want - taken > 0
                     AND taken < cardinality(picks);
            got := got + taken;
            want := want - taken;
            EXIT WHEN NOT retry;
            nb := ARRAY(SELECT t.type FROM pgq.type_use t WHERE t.blocked ORDER BY t.type);
            EXIT WHEN cardinality(nb) = 0 OR (blocked_types IS NOT NULL AND nb <@ blocked_types);
            blocked_types := nb;
          END LOOP;
            EXIT WHEN want = 0;
        END LOOP;
        EXIT WHEN want = 0;
        -- The next priority: after this one, or, for a queue whose hint
        -- lies further on, after its hint.
        SELECT min(least(x.priority, y.priority)) INTO prio
          FROM unnest(p_queues, p_hint_prio[1:nq], p_hint_run_at[1:nq], p_hint_id[1:nq])
                   AS q(name, hp, hr, hi)
          LEFT JOIN LATERAL (SELECT j.priority FROM pgq.jobs j
                              WHERE (q.hp IS NULL OR p_better OR q.hp <= prio)
                                AND j.state = 'ready' AND j.queue = q.name AND j.priority > prio
                              ORDER BY j.priority LIMIT 1) x ON true
          LEFT JOIN LATERAL (SELECT j.priority FROM pgq.jobs j
                              WHERE NOT (q.hp IS NULL OR p_better OR q.hp <= prio)
                                AND j.state = 'ready' AND j.queue = q.name
                                AND (j.priority, j.run_at, j.id)
                                    > (q.hp, pgq.from_position_us(q.hr), q.hi)
                              ORDER BY j.priority, j.run_at, j.id LIMIT 1) y ON true
         WHERE q.name IS NOT NULL;
    END LOOP;
END
$$;

-- Version 3's form, for pools of that version during an upgrade: no hints.
CREATE OR REPLACE FUNCTION pgq.complete_claim(p_ids bigint[], p_tokens uuid[], p_exit int[],
                                              p_signal int[], p_cpu_ms bigint[],
                                              p_rss_kb bigint[], p_queues text[], p_owner text,
                                              p_ttl_ms bigint, p_limit int)
RETURNS TABLE (acked bigint, id bigint, queue text, type text, payload text, attempts int,
               max_retries int, priority int, lease_token text, timeout_ms bigint, ord int)
LANGUAGE sql VOLATILE AS $$
    SELECT c.acked, c.id, c.queue, c.type, c.payload, c.attempts, c.max_retries, c.priority,
           c.lease_token, c.timeout_ms, c.ord
      FROM pgq.complete_claim(p_ids, p_tokens, p_exit, p_signal, p_cpu_ms, p_rss_kb, p_queues,
                              p_owner, p_ttl_ms, p_limit, NULL, NULL, NULL, false) c
$$;

-- End attempts without claiming (see pgq.complete_claim): the rows whose
-- lease held, with their new state, run_at and attempts.
CREATE OR REPLACE FUNCTION pgq.end_attempts(p_outcome text, p_ids bigint[], p_tokens uuid[],
                                 p_errors text[] DEFAULT NULL, p_exit int[] DEFAULT NULL,
                                 p_signal int[] DEFAULT NULL, p_cpu_ms bigint[] DEFAULT NULL,
                                 p_rss_kb bigint[] DEFAULT NULL)
RETURNS TABLE (id bigint, state text, run_at timestamptz, attempts int)
LANGUAGE sql VOLATILE AS $$
    SELECT c.acked, c.state, pgq.from_position_us(c.run_at), c.attempts
      FROM pgq.complete_claim(p_ids, p_tokens, p_exit, p_signal, p_cpu_ms, p_rss_kb, NULL,
                              NULL, NULL, 0, NULL, NULL, NULL, false, p_outcome, p_errors) c
     WHERE c.acked IS NOT NULL
$$;

-- ---- the SQL consumer interface --------------------------------------------
--
-- A worker in any language, through SQL alone, with the pool's fencing:
--   SELECT * FROM pgq.claim(queues => '{emails}', worker => 'node-1');
--   SELECT pgq.heartbeat(id, lease_token);              -- true: still ours
--   SELECT pgq.complete(id, lease_token, result => 'sent');
--   SELECT * FROM pgq.fail(id, lease_token, error => 'smtp 451');
--   SELECT pgq.release(id, lease_token);
-- One function per name (no overloads: a driver that sends untyped
-- parameters, as node-postgres and pgx do, could not choose between two).
-- Each call that touches the job is fenced by its lease token: a token that
-- no longer holds the job changes nothing and answers false (or no row).
-- Batches of completions go through pgq.end_attempts('done', ids, tokens).

-- Claim one job of the queues (lowest priority, then run_at, then id;
-- paused queues skipped), leased to worker for lease_ttl_ms. The job's row
-- with its lease_token, or no row when nothing is ready. Version 6's form
-- (p_queues, p_owner, p_ttl_ms, no defaults) took the same arguments in
-- the same order.
DROP FUNCTION IF EXISTS pgq.claim(text[], text, bigint);
CREATE OR REPLACE FUNCTION pgq.claim(queues text[] DEFAULT '{default}', worker text DEFAULT NULL,
                                     lease_ttl_ms bigint DEFAULT 30000)
RETURNS SETOF pgq.jobs LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    pick bigint;
BEGIN
    IF claim.lease_ttl_ms IS NULL OR claim.lease_ttl_ms <= 0 THEN
        RAISE EXCEPTION 'lease_ttl_ms must be positive, not %', coalesce(claim.lease_ttl_ms::text, 'NULL')
            USING ERRCODE = '22023';
    END IF;
    SELECT c.id INTO pick
      FROM pgq.complete_claim(NULL, NULL, NULL, NULL, NULL, NULL, claim.queues,
                              coalesce(claim.worker, 'sql:' || pg_backend_pid()),
                              claim.lease_ttl_ms, 1, NULL, NULL, NULL, false) c;
    IF pick IS NOT NULL THEN
        RETURN QUERY SELECT * FROM pgq.jobs j WHERE j.id = pick;
    END IF;
END
$$;

-- Mark the job done, fenced by its lease token, with an optional result
-- (pgq.result(id) reads it back). True when the token still held the job.
-- Version 6's array form, pgq.complete(ids, tokens, ...), is
-- pgq.end_attempts('done', ids, tokens, ...) (kept as two overloads it
-- made pgq.complete($1, $2) ambiguous for untyped parameters).
DROP FUNCTION IF EXISTS pgq.complete(bigint[], uuid[], int[], int[], bigint[], bigint[]);
CREATE OR REPLACE FUNCTION pgq.complete(id bigint, lease_token uuid, result text DEFAULT NULL)
RETURNS boolean LANGUAGE sql VOLATILE AS $$
    SELECT count(*) > 0
      FROM pgq.complete_claim(ARRAY[complete.id], ARRAY[complete.lease_token], NULL, NULL, NULL,
                              NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, false, 'done', NULL,
                              true, ARRAY[complete.result]) c
     WHERE c.acked IS NOT NULL
$$;

-- End a running attempt as failed, fenced by its lease token: retried with
-- backoff or dead after max_retries. No row when the token no longer holds
-- the job (lease lost). error: the attempt's error (NULL: 'failed');
-- outcome: 'failed' (NULL too) or 'lease_expired' (the previous release's
-- reaper passes it); the rest is what is known of the execution, for the
-- history. Versions up to 6 had this form without defaults (pools call
-- it with eight arguments) and a three-argument one, both replaced by this.
DROP FUNCTION IF EXISTS pgq.fail(bigint, uuid, text);
DROP FUNCTION IF EXISTS pgq.fail(bigint, uuid, text, text, int, int, bigint, bigint);
CREATE OR REPLACE FUNCTION pgq.fail(id bigint, lease_token uuid, error text DEFAULT 'failed',
                                    outcome text DEFAULT 'failed', exit_code int DEFAULT NULL,
                                    term_signal int DEFAULT NULL, cpu_ms bigint DEFAULT NULL,
                                    max_rss_kb bigint DEFAULT NULL)
RETURNS TABLE (state text, run_at timestamptz, attempts int)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF fail.outcome IS NOT NULL AND fail.outcome NOT IN ('failed', 'lease_expired') THEN
        RAISE EXCEPTION 'pgq.fail: outcome must be failed or lease_expired, not "%"', fail.outcome
            USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    SELECT e.state, e.run_at, e.attempts
      FROM pgq.end_attempts(coalesce(fail.outcome, 'failed'), ARRAY[fail.id],
                            ARRAY[fail.lease_token], ARRAY[coalesce(fail.error, 'failed')],
                            ARRAY[fail.exit_code], ARRAY[fail.term_signal], ARRAY[fail.cpu_ms],
                            ARRAY[fail.max_rss_kb]) e;
END
$$;

-- Give a running job back (ready, attempt not counted), e.g. at shutdown.
-- True when the token still held it. Version 6's form named its arguments
-- p_id, p_token.
DROP FUNCTION IF EXISTS pgq.release(bigint, uuid);
CREATE OR REPLACE FUNCTION pgq.release(id bigint, lease_token uuid) RETURNS boolean
LANGUAGE sql VOLATILE AS $$
    SELECT count(*) > 0 FROM pgq.end_attempts('released', ARRAY[release.id],
                                              ARRAY[release.lease_token]) e
$$;

-- A job's result: the text its done attempt stored (an exec handler's
-- stdout, pgq_ctx_set_result, pgq.complete(..., result => ...)); NULL when
-- there is no such job, it is not done, it ended without a result, or the
-- result was not stored (pgq.job_results has the note saying why).
CREATE OR REPLACE FUNCTION pgq.result(id bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT r.result FROM pgq.job_results r WHERE r.job_id = result.id
     ORDER BY r.attempt DESC LIMIT 1
$$;

-- Turn up to p_limit expired leases of any pool into failed attempts
-- ("lease expired"), retried or dead-lettered like any failure. Rows
-- locked by their holder right now (a completion racing the expiry) are
-- skipped; the token read here fences the end as usual.
CREATE OR REPLACE FUNCTION pgq.reap(p_limit int) RETURNS TABLE (id bigint, state text)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    ids bigint[];
    toks uuid[];
BEGIN
    SELECT array_agg(x.id), array_agg(x.lease_token) INTO ids, toks
      FROM (SELECT j.id, j.lease_token FROM pgq.jobs j
             WHERE j.state = 'running' AND j.lease_expires_at < now()
             ORDER BY j.lease_expires_at LIMIT greatest(p_limit, 0)
               FOR UPDATE SKIP LOCKED) x;
    RETURN QUERY
    SELECT e.id, e.state
      FROM pgq.end_attempts('lease_expired', ids, toks,
                            array_fill('lease expired'::text, ARRAY[coalesce(cardinality(ids), 0)])) e;
END
$$;

-- ---- leases --------------------------------------------------------------

-- Renew the leases of running jobs (ids[i] with tokens[i]) to now + ttl.
-- Returns the ones still held. Rows are locked in id order, as the
-- completions of pgq.complete_claim lock them (a join that walked the
-- table's order deadlocked with a batch of acks): each id is looked up by
-- the primary key in turn.
CREATE OR REPLACE FUNCTION pgq.renew(p_ids bigint[], p_tokens uuid[], p_ttl_ms bigint)
RETURNS TABLE (id bigint, lease_token text)
LANGUAGE sql VOLATILE SET enable_seqscan = off SET enable_hashjoin = off
SET enable_mergejoin = off SET enable_bitmapscan = off AS $$
    UPDATE pgq.jobs j SET lease_expires_at = pgq.lease_expiry(p_ttl_ms)
      FROM (SELECT * FROM unnest(p_ids, p_tokens) AS u(id, token) ORDER BY u.id) h
     WHERE j.id = h.id AND j.lease_token = h.token AND (j.state = 'running') IS TRUE
    RETURNING j.id, j.lease_token::text
$$;

-- The SQL consumer's heartbeat (see pgq.claim): renew one job's lease to
-- now + lease_ttl_ms. True while the token holds
-- the job; false: the lease is lost (reaped, cancelled, reclaimed) and the
-- worker should stop.
CREATE OR REPLACE FUNCTION pgq.heartbeat(id bigint, lease_token uuid,
                                         lease_ttl_ms bigint DEFAULT 30000)
RETURNS boolean LANGUAGE sql VOLATILE AS $$
    SELECT count(*) > 0 FROM pgq.renew(ARRAY[heartbeat.id], ARRAY[heartbeat.lease_token],
                                       heartbeat.lease_ttl_ms)
$$;

-- ---- run_once: the effects ledger (promise 7) -----------------------------

-- Record effect p_key of the job as started, only while p_token holds a
-- live lease. held: the lease holds; inserted: recorded now (run it);
-- existing: the state of an earlier record ('done': skip it; 'started':
-- in doubt). The job row is locked FOR SHARE so that a concurrent reap or
-- re-claim either waits for us or makes us see the new token.
CREATE OR REPLACE FUNCTION pgq.effect_begin(p_job bigint, p_token uuid, p_key text)
RETURNS TABLE (held boolean, inserted boolean, existing text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY
    WITH lease AS (
        SELECT j.id, j.attempts, j.lease_owner FROM pgq.jobs j
         WHERE j.id = p_job AND j.lease_token = p_token AND (j.state = 'running') IS TRUE
           AND j.lease_expires_at > now() FOR SHARE
    ), ins AS (
        INSERT INTO pgq.effects (job_id, key, state, attempt, lease_token, worker)
        SELECT l.id, p_key, 'started', l.attempts, p_token, l.lease_owner FROM lease l
        ON CONFLICT (job_id, key) DO NOTHING RETURNING pgq.effects.job_id
    )
    SELECT (SELECT count(*) FROM lease) > 0, (SELECT count(*) FROM ins) > 0,
           (SELECT e.state FROM pgq.effects e WHERE e.job_id = p_job AND e.key = p_key);
END
$$;

-- effect_done and effect_forget are fenced by the job's lease, not only by
-- the record's token: a zombie (lease expired, job reaped and claimed
-- again) must change nothing, and the next attempt may already have found
-- the record in doubt (and completed the job on that). The job row is
-- locked FOR SHARE, as in effect_begin, so a concurrent reap either waits
-- for us or makes us see the new token. The lease need not be unexpired:
-- as with complete, an expired lease nobody took over still holds.

-- The effect ran: started -> done (only the record this lease started).
CREATE OR REPLACE FUNCTION pgq.effect_done(p_job bigint, p_token uuid, p_key text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM 1 FROM pgq.jobs j
     WHERE j.id = p_job AND j.lease_token = p_token AND (j.state = 'running') IS TRUE FOR SHARE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE pgq.effects e SET state = 'done', finished_at = now()
     WHERE e.job_id = p_job AND e.key = p_key AND e.lease_token = p_token
       AND e.state = 'started';
    RETURN FOUND;
END
$$;

-- The effect failed cleanly: forget the record so a retry may run it.
CREATE OR REPLACE FUNCTION pgq.effect_forget(p_job bigint, p_token uuid, p_key text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM 1 FROM pgq.jobs j
     WHERE j.id = p_job AND j.lease_token = p_token AND (j.state = 'running') IS TRUE FOR SHARE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    DELETE FROM pgq.effects e
     WHERE e.job_id = p_job AND e.key = p_key AND e.lease_token = p_token
       AND e.state = 'started';
    RETURN FOUND;
END
$$;

-- ---- operators: requeue, cancel, prune ------------------------------------

-- Move dead or cancelled jobs back to ready with fresh retries; the
-- history stays. p_ids: these jobs; else every job in p_state ('dead' or
-- 'cancelled') of p_queue / p_type (NULL: any). The state condition is
-- re-checked by the UPDATE itself, so two operators at once move each job
-- once. Recorded in pgq.actions with p_who; announced.
-- A job that waits for others (migration 010) goes back to `waiting` for
-- those of its parents that are not done, or to ready when all are; one
-- with a dead or cancelled parent that is not requeued in the same call
-- stays where it is (it could never run). So a chain is requeued from its
-- top in one call (pgq requeue PARENT CHILD ...), or parent first. A
-- requeued parent does not requeue its cancelled children by itself.
-- Fencing for the parents: their row locks (as in pgq.deps_attach).
CREATE OR REPLACE FUNCTION pgq.requeue_(p_ids bigint[], p_state text, p_queue text, p_type text,
                             p_who text)
RETURNS TABLE (id bigint)
-- Planned with the values every call: a generic plan of the UPDATE walks
-- every dead and cancelled entry, and the matching SELECT can only scan.
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_custom_plan AS $$
#variable_conflict use_column
DECLARE
    targets bigint[];
    blocked bigint[];
BEGIN
    IF p_ids IS NULL THEN
        IF p_state IS NULL OR p_state NOT IN ('dead', 'cancelled') THEN
            RAISE EXCEPTION 'requeue: state must be dead or cancelled, not "%"',
                coalesce(p_state, '') USING ERRCODE = '22023';
        END IF;
        targets := ARRAY(SELECT j.id FROM pgq.jobs j
                          WHERE j.state = p_state AND (p_queue IS NULL OR j.queue = p_queue)
                            AND (p_type IS NULL OR j.type = p_type));
    ELSE
        targets := p_ids;
    END IF;
    IF EXISTS (SELECT 1 FROM pgq.job_deps d WHERE d.child_id = ANY (targets)) THEN
        PERFORM 1 FROM pgq.jobs p
         WHERE p.id IN (SELECT d.parent_id FROM pgq.job_deps d WHERE d.child_id = ANY (targets))
         ORDER BY p.id FOR NO KEY UPDATE;
        LOOP
            blocked := ARRAY(SELECT DISTINCT d.child_id
                               FROM pgq.job_deps d JOIN pgq.jobs p ON p.id = d.parent_id
                              WHERE d.child_id = ANY (targets) AND p.state IN ('dead', 'cancelled')
                                AND p.id <> ALL (targets));
            EXIT WHEN cardinality(blocked) = 0;
            targets := ARRAY(SELECT t.id FROM unnest(targets) AS t(id) WHERE t.id <> ALL (blocked));
        END LOOP;
    END IF;
    -- The jobs themselves locked in id order first: the UPDATE below takes
    -- its rows in the join's order, so two requeues of overlapping sets
    -- (two operators, --dead twice) deadlocked about one run in three.
    -- A job another requeue moved meanwhile is re-checked and skipped.
    PERFORM 1 FROM pgq.jobs j
     WHERE j.id = ANY (targets) AND j.state IN ('dead', 'cancelled')
     ORDER BY j.id FOR NO KEY UPDATE;
    RETURN QUERY
    WITH w AS (
        SELECT t.id, count(d.parent_id) FILTER (WHERE p.state <> 'done')::int AS n
          FROM unnest(targets) AS t(id)
          LEFT JOIN pgq.job_deps d ON d.child_id = t.id
          LEFT JOIN pgq.jobs p ON p.id = d.parent_id
         GROUP BY t.id
    ), upd AS (
        UPDATE pgq.jobs j
           SET state = CASE WHEN w.n > 0 THEN 'waiting' ELSE 'ready' END, waiting_for = w.n,
               run_at = now(), attempts = 0, snoozes = 0, finished_at = NULL
          FROM w
         WHERE j.id = w.id AND j.state IN ('dead', 'cancelled')
        RETURNING j.id, j.queue, j.priority, j.run_at, j.state
    ), act AS (
        INSERT INTO pgq.actions (action, job_count, job_ids, detail)
        SELECT 'requeue', count(*), CASE WHEN p_ids IS NOT NULL THEN array_agg(u.id) END, p_who
          FROM upd u HAVING count(*) > 0
    ), woke AS (
        SELECT pgq.announce(f.queue, f.priority, f.run_at, f.id, true)
          FROM (SELECT DISTINCT ON (u.queue) u.queue, u.priority, u.run_at, u.id FROM upd u
                 WHERE u.state = 'ready'
                 ORDER BY u.queue, u.priority, u.run_at, u.id) f
    )
    SELECT u.id FROM upd u LEFT JOIN (SELECT count(*) FROM woke) w ON true;
END
$$;

CREATE OR REPLACE FUNCTION pgq.requeue(p_ids bigint[], p_who text) RETURNS TABLE (id bigint)
LANGUAGE sql VOLATILE AS $$
    SELECT r.id FROM pgq.requeue_(coalesce(p_ids, '{}'), NULL, NULL, NULL, p_who) r
$$;

CREATE OR REPLACE FUNCTION pgq.requeue_matching(p_state text, p_queue text, p_type text, p_who text)
RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT count(*) FROM pgq.requeue_(NULL, p_state, p_queue, p_type, p_who) r
$$;

-- Cancel waiting, ready (or scheduled) and running jobs; recorded in
-- pgq.actions with p_who. The jobs waiting for them are cancelled with
-- them, and the chain below (pgq.deps_settle; for running ones through
-- pgq.complete_claim), but not listed: the result is the jobs asked for.
CREATE OR REPLACE FUNCTION pgq.cancel(p_ids bigint[], p_who text) RETURNS TABLE (id bigint)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    ids bigint[];
    toks uuid[];
    ready bigint[];
    stopped bigint[];
BEGIN
    -- Waiting, ready (or scheduled) jobs: cancelled outright, and what
    -- waits for them with them.
    WITH upd AS (
        UPDATE pgq.jobs SET state = 'cancelled', finished_at = now(), waiting_for = 0
         WHERE pgq.jobs.id = ANY (p_ids) AND state IN ('ready', 'waiting')
        RETURNING pgq.jobs.id
    )
    SELECT coalesce(array_agg(u.id), '{}') INTO ready FROM upd u;
    IF cardinality(ready) > 0 THEN
        PERFORM pgq.deps_settle(ready, array_fill('cancelled'::text, ARRAY[cardinality(ready)]));
    END IF;
    -- Running jobs: their holders' tokens, read under a row lock (a
    -- completion in progress finishes first, and the job is then no longer
    -- running), end the attempt as 'cancelled': the lease is revoked in this
    -- transaction, and the holder's later completion or failure finds its
    -- token gone and changes nothing. Its pool is told (NOTIFY pgq_cancel,
    -- the job's id) and stops the handler; the heartbeat, which finds the
    -- lease lost, is the fallback.
    SELECT array_agg(x.id), array_agg(x.lease_token) INTO ids, toks
      FROM (SELECT j.id, j.lease_token FROM pgq.jobs j
             WHERE j.id = ANY (p_ids) AND (j.state = 'running') IS TRUE
             ORDER BY j.id FOR UPDATE) x;
    SELECT coalesce(array_agg(e.id), '{}') INTO stopped
      FROM pgq.end_attempts('cancelled', ids, toks,
                            array_fill('cancelled by ' || coalesce(p_who, 'an operator'),
                                       ARRAY[coalesce(cardinality(ids), 0)])) e;
    PERFORM pg_notify('pgq_cancel', s.id::text) FROM unnest(stopped) AS s(id);
    IF cardinality(ready) + cardinality(stopped) > 0 THEN
        INSERT INTO pgq.actions (action, job_count, job_ids, detail)
        VALUES ('cancel', cardinality(ready) + cardinality(stopped), ready || stopped,
                p_who || CASE WHEN cardinality(stopped) > 0
                              THEN format(' (%s running)', cardinality(stopped)) ELSE '' END);
    END IF;
    RETURN QUERY SELECT r.id FROM unnest(ready || stopped) AS r(id);
END
$$;

-- Pause queues: no pool claims from them (jobs already running finish;
-- adds are still accepted). Returns the queues that were not paused.
-- Recorded in pgq.actions.
CREATE OR REPLACE FUNCTION pgq.pause(p_queues text[], p_who text) RETURNS TABLE (queue text)
LANGUAGE sql VOLATILE AS $$
    WITH chk AS (
        SELECT pgq.check_queue(k::int, coalesce(q, '')) FROM unnest(p_queues) WITH ORDINALITY AS u(q, k)
    ), up AS (
        INSERT INTO pgq.queues AS pq (queue, paused, changed_by)
        SELECT DISTINCT u.q, true, p_who FROM unnest(p_queues) AS u(q)
         WHERE (SELECT count(*) FROM chk) >= 0
        ON CONFLICT (queue) DO UPDATE SET paused = true, changed_at = now(),
                                          changed_by = excluded.changed_by
         WHERE NOT pq.paused
        RETURNING pq.queue
    ), act AS (
        INSERT INTO pgq.actions (action, job_count, detail)
        SELECT 'pause', 0, format('%s: %s', p_who, string_agg(u.queue, ', ' ORDER BY u.queue))
          FROM up u HAVING count(*) > 0
    )
    SELECT u.queue FROM up u ORDER BY u.queue
$$;

-- Resume paused queues, and wake the pools (NOTIFY pgq_jobs with each
-- queue's name). Returns the queues that were paused.
CREATE OR REPLACE FUNCTION pgq.resume(p_queues text[], p_who text) RETURNS TABLE (queue text)
LANGUAGE sql VOLATILE AS $$
    WITH up AS (
        UPDATE pgq.queues pq SET paused = false, changed_at = now(), changed_by = p_who
         WHERE pq.queue = ANY (p_queues) AND pq.paused
        RETURNING pq.queue
    ), act AS (
        INSERT INTO pgq.actions (action, job_count, detail)
        SELECT 'resume', 0, format('%s: %s', p_who, string_agg(u.queue, ', ' ORDER BY u.queue))
          FROM up u HAVING count(*) > 0
    ), wake AS (
        SELECT pg_notify('pgq_jobs', u.queue) FROM up u
    )
    SELECT u.queue FROM up u WHERE (SELECT count(*) FROM wake) >= 0 ORDER BY u.queue
$$;

-- ---- periodic jobs ([cron NAME] sections) ----------------------------------

-- A pool with the section registers it at start: the row is made with
-- last_tick = the latest tick at or before now, so a new schedule starts
-- with the next tick, not by firing one from the past. An existing row
-- keeps its last tick (after downtime the pool then fires the latest
-- missed tick, once), unless its schedule or zone changed: a new schedule
-- starts afresh from now as well. Returns the row's last tick.
CREATE OR REPLACE FUNCTION pgq.cron_register(p_name text, p_schedule text, p_timezone text,
                                             p_type text, p_queue text, p_prev timestamptz,
                                             p_next timestamptz, p_who text)
RETURNS timestamptz
LANGUAGE sql VOLATILE AS $$
    INSERT INTO pgq.cron AS c (name, schedule, timezone, type, queue, last_tick, next_tick,
                               registered_by)
    VALUES (p_name, p_schedule, p_timezone, p_type, p_queue, least(p_prev, now()), p_next, p_who)
    ON CONFLICT (name) DO UPDATE
       SET last_tick = CASE WHEN (c.schedule, c.timezone)
                                 IS DISTINCT FROM (excluded.schedule, excluded.timezone)
                            THEN greatest(c.last_tick, excluded.last_tick) ELSE c.last_tick END,
           schedule = excluded.schedule, timezone = excluded.timezone, type = excluded.type,
           queue = excluded.queue, next_tick = excluded.next_tick,
           registered_by = excluded.registered_by, registered_at = now()
    RETURNING c.last_tick
$$;

-- Add the job of tick p_tick of schedule p_name, once across the fleet:
-- every pool with the section calls this at each tick, and the conditional
-- upsert of the schedule's row lets exactly one through (a concurrent
-- caller waits for the winner's row lock, then finds last_tick no longer
-- before its tick). The job is added by pgq.add, in the same transaction,
-- with run_at = the tick; it records its schedule and tick. The database's
-- clock decides whether the tick is due (a pool whose clock runs ahead is
-- told 'early'). Outcomes: 'added' (with the job's id), 'taken' (this tick
-- or a later one was added already), 'early'. The pool passes the latest
-- tick at or before now, so after downtime the missed ticks in between
-- are never added (the README says why).
CREATE OR REPLACE FUNCTION pgq.cron_fire(p_name text, p_schedule text, p_timezone text,
                                         p_type text, p_payload jsonb, p_queue text,
                                         p_priority int, p_tick timestamptz, p_next timestamptz,
                                         p_who text)
RETURNS TABLE (outcome text, job_id bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_id bigint;
BEGIN
    IF p_tick IS NULL OR NOT isfinite(p_tick) THEN
        RAISE EXCEPTION 'cron %: tick is missing or not finite', p_name USING ERRCODE = '22023';
    END IF;
    IF p_tick > now() THEN
        RETURN QUERY SELECT 'early'::text, NULL::bigint;
        RETURN;
    END IF;
    INSERT INTO pgq.cron AS c (name, schedule, timezone, type, queue, last_tick, next_tick,
                               registered_by, fired_by, fired_at)
    VALUES (p_name, p_schedule, p_timezone, p_type, p_queue, p_tick, p_next, p_who, p_who, now())
    ON CONFLICT (name) DO UPDATE
       SET last_tick = excluded.last_tick, next_tick = excluded.next_tick,
           fired_by = excluded.fired_by, fired_at = excluded.fired_at
     WHERE c.last_tick IS NULL OR c.last_tick < excluded.last_tick;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'taken'::text, NULL::bigint;
        RETURN;
    END IF;
    SELECT a.id INTO v_id
      FROM pgq.add(p_type, coalesce(p_payload, '{}'), queue => p_queue, priority => p_priority,
                   run_at => p_tick) a;
    UPDATE pgq.jobs j SET cron = p_name, cron_tick = p_tick WHERE j.id = v_id;
    UPDATE pgq.cron c SET last_job = v_id WHERE c.name = p_name;
    RETURN QUERY SELECT 'added'::text, v_id;
END
$$;

-- Delete up to p_limit done jobs finished over p_keep_done_ms ago and up
-- to p_limit dead or cancelled ones finished over p_keep_dead_ms ago (with
-- their history and effects). The conditions are repeated in the DELETE's
-- own WHERE: a job requeued after the subqueries' snapshot is kept.
-- p_done_after: where the previous round of the same pass ended (done_upto
-- of its result; done jobs go in finished_at order), so that a pass of many
-- rounds does not walk again, each round, the index entries of the rows
-- the rounds before it deleted (vacuum may not have removed them yet, and
-- cannot while the xmin horizon is pinned). Dead and cancelled jobs are
-- few; their rounds start at the beginning.
CREATE OR REPLACE FUNCTION pgq.prune(p_keep_done_ms bigint, p_keep_dead_ms bigint, p_limit int,
                          p_done_after timestamptz DEFAULT NULL)
RETURNS TABLE (deleted bigint, done_upto timestamptz)
LANGUAGE sql VOLATILE AS $$
    WITH gone AS (
        DELETE FROM pgq.jobs WHERE id IN (
            (SELECT id FROM pgq.jobs WHERE state = 'done'
                AND finished_at < now() - p_keep_done_ms * interval '1 millisecond'
                AND finished_at >= coalesce(p_done_after, '-infinity')
              ORDER BY state, finished_at LIMIT p_limit)
            UNION ALL
            (SELECT id FROM pgq.jobs WHERE state IN ('dead', 'cancelled')
                AND finished_at < now() - p_keep_dead_ms * interval '1 millisecond'
              LIMIT p_limit))
          AND ((state = 'done' AND finished_at < now() - p_keep_done_ms * interval '1 millisecond')
            OR (state IN ('dead', 'cancelled')
                AND finished_at < now() - p_keep_dead_ms * interval '1 millisecond'))
        RETURNING id, state, finished_at
    ), undep AS (
        -- their edges as children (pgq.job_deps has no foreign key)
        DELETE FROM pgq.job_deps d WHERE d.child_id IN (SELECT g.id FROM gone g)
    )
    SELECT count(*), max(finished_at) FILTER (WHERE state = 'done') FROM gone
$$;

-- ---- invariants ------------------------------------------------------------

-- One row per violation of what the functions above make impossible; no
-- rows: consistent. Every test ends by asserting it returns nothing.
CREATE OR REPLACE FUNCTION pgq.check_invariants()
RETURNS TABLE (job_id bigint, invariant text, detail text)
LANGUAGE sql STABLE AS $$
    SELECT j.id, v.invariant, v.detail
      FROM pgq.jobs j
     CROSS JOIN LATERAL (VALUES
        (j.state NOT IN ('waiting', 'ready', 'running', 'done', 'dead', 'cancelled'),
         'unknown state', format('state %L', j.state)),
        (j.state = 'running' AND (j.lease_token IS NULL OR j.lease_expires_at IS NULL
                                  OR j.lease_owner IS NULL),
         'running without a lease',
         format('token %s, expires %s, owner %s', j.lease_token, j.lease_expires_at, j.lease_owner)),
        (j.state <> 'running' AND (j.lease_token IS NOT NULL OR j.lease_expires_at IS NOT NULL),
         'lease on a job that is not running',
         format('state %s, token %s, expires %s', j.state, j.lease_token, j.lease_expires_at)),
        (j.max_retries < 0 OR j.attempts < 0, 'negative attempts or max_retries',
         format('attempts %s, max_retries %s', j.attempts, j.max_retries)),
        (j.attempts > j.max_retries + 1, 'attempts beyond max_retries + 1',
         format('attempts %s, max_retries %s', j.attempts, j.max_retries)),
        (j.state = 'running' AND j.attempts < 1, 'running without an attempt',
         format('attempts %s', j.attempts)),
        (j.state = 'ready' AND j.attempts > j.max_retries, 'ready with no retries left',
         format('attempts %s, max_retries %s', j.attempts, j.max_retries)),
        (j.state = 'dead' AND j.attempts <= j.max_retries, 'dead with retries left',
         format('attempts %s, max_retries %s', j.attempts, j.max_retries)),
        (j.state = 'done' AND j.attempts < 1, 'done without an attempt',
         format('attempts %s', j.attempts)),
        (j.state IN ('done', 'dead', 'cancelled') AND j.finished_at IS NULL,
         'finished without finished_at', format('state %s', j.state)),
        (j.state IN ('waiting', 'ready', 'running') AND j.finished_at IS NOT NULL,
         'unfinished with finished_at', format('state %s, finished_at %s', j.state, j.finished_at)),
        (NOT isfinite(j.run_at), 'run_at not finite', format('run_at %s', j.run_at)),
        (length(j.queue) = 0, 'empty queue name', ''),
        (j.state = 'waiting' AND j.waiting_for < 1, 'waiting for no parent',
         format('waiting_for %s', j.waiting_for)),
        (j.state <> 'waiting' AND j.waiting_for <> 0, 'a parent count on a job that is not waiting',
         format('state %s, waiting_for %s', j.state, j.waiting_for))
     ) AS v(broken, invariant, detail)
     WHERE v.broken
    UNION ALL
    -- Dependencies (pgq.deps_attach, pgq.deps_settle): a parent that is
    -- gone counts as done (only done jobs vanish while a child waits).
    SELECT c.id, v.invariant, v.detail
      FROM (SELECT j.id, j.state, j.waiting_for,
                   count(*) FILTER (WHERE p.state <> 'done') AS open,
                   count(*) FILTER (WHERE p.state IN ('dead', 'cancelled')) AS lost,
                   count(*) FILTER (WHERE p.id IS NOT NULL AND NOT p.has_children) AS unflagged,
                   string_agg(d.parent_id || ' ' || coalesce(p.state, 'gone'), ', '
                              ORDER BY d.parent_id) AS parents
              FROM pgq.job_deps d JOIN pgq.jobs j ON j.id = d.child_id
              LEFT JOIN pgq.jobs p ON p.id = d.parent_id
             GROUP BY j.id) c
     CROSS JOIN LATERAL (VALUES
        (c.state = 'waiting' AND c.open = 0, 'waiting with every parent done',
         format('parents: %s', c.parents)),
        (c.state = 'waiting' AND c.waiting_for <> c.open,
         'waiting_for differs from the parents not done',
         format('waiting_for %s; parents: %s', c.waiting_for, c.parents)),
        (c.state = 'waiting' AND c.lost > 0, 'waiting for a dead or cancelled parent',
         format('parents: %s', c.parents)),
        (c.state IN ('ready', 'running') AND c.open > 0, 'ready or running before its parents are done',
         format('state %s; parents: %s', c.state, c.parents)),
        (c.unflagged > 0, 'a parent without has_children', format('parents: %s', c.parents))
     ) AS v(broken, invariant, detail)
     WHERE v.broken
    UNION ALL
    -- an edge is deleted with its child (pgq.prune, a completion that
    -- deletes the job): one left behind names a job that is gone
    SELECT d.child_id, 'an edge of a job that does not exist', format('parent %s', d.parent_id)
      FROM pgq.job_deps d
     WHERE NOT EXISTS (SELECT 1 FROM pgq.jobs j WHERE j.id = d.child_id)
    UNION ALL
    SELECT e.job_id, 'effect started under the current lease at another attempt',
           format('key %L: effect attempt %s, job attempt %s', e.key, e.attempt, j.attempts)
      FROM pgq.effects e JOIN pgq.jobs j ON j.id = e.job_id
     WHERE e.state = 'started' AND j.state = 'running' AND e.lease_token = j.lease_token
       AND e.attempt <> j.attempts
    UNION ALL
    SELECT e.job_id, 'effect done without finished_at', format('key %L', e.key)
      FROM pgq.effects e WHERE e.state = 'done' AND e.finished_at IS NULL
    UNION ALL
    SELECT h.job_id, v.invariant, v.detail
      FROM (SELECT a.*, lag(a.finished_at) OVER w AS prev_finished,
                   lag(a.outcome) OVER w AS prev_outcome
              FROM pgq.job_attempts a
            WINDOW w AS (PARTITION BY a.job_id ORDER BY a.id)) h
     CROSS JOIN LATERAL (VALUES
        (h.finished_at < h.prev_finished, 'history out of order',
         format('attempt row %s finished %s, before the row before it (%s)',
                h.id, h.finished_at, h.prev_finished)),
        (h.prev_outcome = 'done', 'history after a done attempt', format('attempt row %s', h.id)),
        (h.attempt < 1, 'history of attempt 0', format('attempt row %s', h.id)),
        (h.started_at > h.finished_at, 'history row ends before it starts',
         format('attempt row %s', h.id))
     ) AS v(broken, invariant, detail)
     WHERE v.broken
    UNION ALL
    SELECT j.id, 'an expired idempotency key still held', format('key %L', j.idempotency_key)
      FROM pgq.jobs j
     WHERE j.idempotency_key IS NOT NULL AND j.idempotency_key_expired IS NOT NULL
    UNION ALL
    -- Only a done attempt keeps a result (pgq.complete_claim).
    SELECT a.job_id, 'result on an attempt that did not end done',
           format('attempt row %s, outcome %s', a.id, a.outcome)
      FROM pgq.job_attempts a
     WHERE a.outcome <> 'done' AND (a.result IS NOT NULL OR a.result_note IS NOT NULL)
    UNION ALL
    -- pgq.cancel revokes the lease with the cancelled attempt: the job
    -- cannot be running in the attempt it was cancelled in.
    SELECT j.id, 'running after its attempt was cancelled',
           format('attempt row %s cancelled %s; the job started %s', a.id, a.finished_at,
                  j.started_at)
      FROM pgq.jobs j JOIN pgq.job_attempts a ON a.job_id = j.id
     WHERE j.state = 'running' AND a.outcome = 'cancelled' AND a.finished_at >= j.started_at
    UNION ALL
    -- pgq.cron_fire lets one job through per tick of a schedule, never a
    -- tick after the one it recorded, never one the database's clock has
    -- not reached.
    SELECT min(j.id), 'two jobs for one cron tick',
           format('cron %L, tick %s: jobs %s', j.cron, j.cron_tick,
                  string_agg(j.id::text, ', ' ORDER BY j.id))
      FROM pgq.jobs j WHERE j.cron IS NOT NULL
     GROUP BY j.cron, j.cron_tick HAVING count(*) > 1
    UNION ALL
    SELECT j.id, 'cron job after its schedule''s last tick',
           format('cron %L: job tick %s, last tick %s', j.cron, j.cron_tick, c.last_tick)
      FROM pgq.jobs j JOIN pgq.cron c ON c.name = j.cron
     WHERE j.cron_tick > c.last_tick OR c.last_tick IS NULL
    UNION ALL
    SELECT c.last_job, 'cron tick in the future', format('cron %L: last tick %s', c.name, c.last_tick)
      FROM pgq.cron c WHERE c.last_tick > now()
    UNION ALL
    -- Snoozes: asked only by a running attempt (every end clears it), and
    -- counted from 0.
    SELECT j.id, 'snooze asked by a job that is not running',
           format('state %s, snooze_ms %s', j.state, j.snooze_ms)
      FROM pgq.jobs j WHERE j.snooze_ms IS NOT NULL AND j.state <> 'running'
    UNION ALL
    SELECT j.id, 'negative snooze count', format('snoozes %s', j.snoozes)
      FROM pgq.jobs j WHERE j.snoozes < 0
    UNION ALL
    -- Limits (pgq.limit_room, pgq.limits_sync): every running job of a
    -- limited type is counted (marked limited); no more of a type started
    -- since its limit was set are running than its concurrency; no more
    -- starts in the current rate window than its rate; the limited types
    -- are those registered with limits.
    SELECT j.id, 'running job of a limited type not counted',
           format('type %s, limited %s', j.type, j.limited)
      FROM pgq.jobs j JOIN pgq.type_limits l ON l.type = j.type
     WHERE j.state = 'running' AND j.limited IS NOT TRUE
    UNION ALL
    SELECT NULL::bigint, 'more running than the concurrency of the type',
           format('type %s: %s started since its limit was set (%s) are running, concurrency %s',
                  u.type, r.n, u.set_at, u.concurrency)
      FROM pgq.type_use u
     CROSS JOIN LATERAL (SELECT count(*) AS n FROM pgq.jobs j
                          WHERE j.state = 'running' AND j.type = u.type
                            AND j.started_at >= u.set_at) r
     WHERE u.concurrency IS NOT NULL AND r.n > u.concurrency
    UNION ALL
    SELECT NULL::bigint, 'more starts in a rate window than the rate of the type',
           format('type %s: %s starts in the window, rate %s per %s ms', u.type,
                  u.window_starts, u.rate_count, u.rate_ms)
      FROM pgq.type_use u WHERE u.window_starts > u.rate_count
    UNION ALL
    SELECT NULL::bigint, 'limits out of step with the registered ones',
           format('type %s: registered %s/%s/%s, the claim''s %s/%s/%s',
                  coalesce(t.type, l.type), t.concurrency, t.rate_count, t.rate_ms,
                  l.concurrency, l.rate_count, l.rate_ms)
      FROM (SELECT * FROM pgq.job_types jt
             WHERE jt.concurrency IS NOT NULL OR jt.rate_count IS NOT NULL) t
      FULL JOIN pgq.type_limits l ON l.type = t.type
     WHERE (t.type, t.concurrency, t.rate_count, t.rate_ms)
           IS DISTINCT FROM (l.type, l.concurrency, l.rate_count, l.rate_ms)
$$;

COMMENT ON FUNCTION pgq.claim(text[], text, bigint) IS
    'Claim one job (no hints) for SQL consumers; pools use pgq.complete_claim.';
