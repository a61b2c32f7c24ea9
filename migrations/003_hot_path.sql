-- pgq schema, version 3: the hot path in one round trip (issue 5).
--
-- 1. pgq.complete_claim(): end any number of attempts as done AND claim up
--    to p_limit next jobs, in one statement and one transaction. A pool
--    worker calls it with its finished job and limit 1 (one transaction per
--    job); a batching pool with many of each.
-- 2. A done attempt gets a pgq.job_attempts row only when it has something
--    the job row does not: the job had earlier attempts (so its history
--    reads through), or the handler reported exit code or resource figures
--    (exec). A job done at its first in-process attempt keeps that attempt
--    on the job row (lease_owner, started_at, finished_at); failures are
--    always recorded. This halves the rows written per job.
-- 3. The CHECK constraints on pgq.jobs go: PostgreSQL re-reads every CHECK
--    expression of a table for each statement that writes it, which was
--    ~15% of the backend's time per job (perf). Rows of pgq.jobs are
--    written only by pgq's own statements, which keep the invariants
--    (state names, running <=> lease); tests check them.
-- 4. Statements that find a job by id and lease token test
--    `(state = 'running') IS TRUE` (state is NOT NULL: the same test). With
--    a plain `state = 'running'` a generic plan picks the partial lease
--    index, which the planner believes tiny, and scans every entry in it:
--    one per job claimed since the last vacuum (thousands under load),
--    instead of one primary-key probe. pgq.fail is redefined for this alone.

ALTER TABLE pgq.jobs
    DROP CONSTRAINT IF EXISTS jobs_queue_check,
    DROP CONSTRAINT IF EXISTS jobs_state_check,
    DROP CONSTRAINT IF EXISTS jobs_max_retries_check,
    DROP CONSTRAINT IF EXISTS jobs_check;

CREATE FUNCTION pgq.complete_claim(p_ids bigint[], p_tokens uuid[], p_exit int[],
                                   p_signal int[], p_cpu_ms bigint[], p_rss_kb bigint[],
                                   p_queues text[], p_owner text, p_ttl_ms bigint,
                                   p_limit int)
RETURNS TABLE (acked bigint, id bigint, queue text, type text, payload text, attempts int,
               max_retries int, priority int, lease_token text, timeout_ms bigint, ord int)
-- Generic plans, planned once per connection: re-planning each statement
-- on every call (custom plans, plpgsql's default while they look cheaper)
-- was a third of the backend's CPU per job (perf) and cost 35% of the
-- default profile's throughput. Each plan must then be right for any value:
-- the one-job claim says LIMIT 1 outright (a LIMIT the planner cannot see
-- made the generic plan sort every ready row of a priority: claim 18x
-- slower at 1M than at 10k), and a claim of several jobs, which is rare and
-- shares its cost among them, is planned afresh with its values (EXECUTE).
-- Sequential scans are off for the same reason: a connection that first
-- calls this on an empty or small pgq.jobs (a pool started before its
-- producers) would otherwise keep a seq-scan plan until the next ANALYZE;
-- in the soak that held the first minute to a quarter of the rate and left
-- a 100,000-job backlog behind. Every statement here has an index to walk.
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
#variable_conflict use_column
DECLARE
    want int := greatest(coalesce(p_limit, 0), 0);
    prio int;
    picks bigint[];
    got int := 0;
BEGIN
    -- Completions, each fenced by its lease token: a token that no longer
    -- holds its job changes nothing and is simply not listed as acked.
    IF coalesce(cardinality(p_ids), 0) > 0 THEN
        RETURN QUERY
        WITH a AS (
            SELECT * FROM unnest(p_ids, p_tokens, p_exit, p_signal, p_cpu_ms, p_rss_kb)
                       AS a(id, tok, exit_code, sig, cpu_ms, rss_kb)
        ), upd AS (
            UPDATE pgq.jobs j
               SET state = 'done', finished_at = now(), lease_token = NULL,
                   lease_expires_at = NULL
              FROM a
             WHERE j.id = a.id AND j.lease_token = a.tok AND (j.state = 'running') IS TRUE
         RETURNING j.id, j.attempts, j.lease_owner, j.started_at,
                   a.exit_code, a.sig, a.cpu_ms, a.rss_kb
        ), hist AS (
            INSERT INTO pgq.job_attempts (job_id, attempt, outcome, worker, exit_code,
                                          term_signal, cpu_ms, max_rss_kb, started_at,
                                          duration_ms)
            SELECT u.id, u.attempts, 'done', u.lease_owner, u.exit_code, u.sig, u.cpu_ms,
                   u.rss_kb, u.started_at,
                   extract(epoch FROM clock_timestamp() - u.started_at) * 1000
              FROM upd u
             WHERE u.attempts > 1 OR u.exit_code IS NOT NULL OR u.sig IS NOT NULL
                OR u.cpu_ms IS NOT NULL OR u.rss_kb IS NOT NULL
        )
        SELECT u.id, NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::int, NULL::int,
               NULL::int, NULL::text, NULL::bigint, NULL::int
          FROM upd u;
    END IF;
    IF want = 0 OR coalesce(cardinality(p_queues), 0) = 0 THEN
        RETURN;
    END IF;
    -- A claim that completes nothing does not wait for its WAL flush (an
    -- idle worker's first claim: the latency path). Losing it in a server
    -- crash loses nothing promised: the job is simply ready again, and
    -- anything the holder makes durable later (a run_once effect, its
    -- completion) flushes the claim before itself, since WAL is flushed in
    -- order. Completions keep synchronous_commit as configured.
    IF coalesce(cardinality(p_ids), 0) = 0 THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;

    -- Claims: the same skip scan over priorities as pgq.claim(). With
    -- several queues each queue's probe may lock up to `want` rows of which
    -- only the best `want` overall are claimed; the others are unlocked at
    -- commit, a moment later.
    SELECT min(x.priority) INTO prio
      FROM unnest(p_queues) AS q(name)
     CROSS JOIN LATERAL (SELECT j.priority FROM pgq.jobs j
                          WHERE j.state = 'ready' AND j.queue = q.name
                          ORDER BY j.priority LIMIT 1) x;
    WHILE prio IS NOT NULL AND want > 0 LOOP
        IF want = 1 THEN
            -- One job (a pool worker's every call): pick and lease in one
            -- statement.
            RETURN QUERY
            WITH c AS (
                SELECT c.id
                  FROM unnest(p_queues) AS q(name)
                 CROSS JOIN LATERAL (SELECT j.id, j.run_at FROM pgq.jobs j
                                      WHERE j.state = 'ready' AND j.queue = q.name
                                        AND j.priority = prio AND j.run_at <= now()
                                      ORDER BY j.run_at, j.id
                                      LIMIT 1 FOR UPDATE SKIP LOCKED) c
                 ORDER BY c.run_at, c.id LIMIT 1
            ), upd AS (
                UPDATE pgq.jobs j
                   SET state = 'running', attempts = j.attempts + 1, lease_owner = p_owner,
                       lease_token = gen_random_uuid(),
                       lease_expires_at = now() + p_ttl_ms * interval '1 millisecond',
                       started_at = now()
                  FROM c
                 WHERE j.id = c.id
             RETURNING j.*
            )
            SELECT NULL::bigint, u.id, u.queue, u.type, u.payload::text, u.attempts,
                   u.max_retries, u.priority, u.lease_token::text,
                   coalesce((SELECT t.timeout_ms FROM pgq.job_types t WHERE t.type = u.type),
                            60000),
                   got + 1   -- after those of better priorities, when several were wanted
              FROM upd u;
            IF FOUND THEN
                RETURN;
            END IF;
        ELSE
            EXECUTE $q$
                SELECT ARRAY(
                    SELECT c.id
                      FROM unnest($1) AS q(name)
                     CROSS JOIN LATERAL (SELECT j.id, j.run_at FROM pgq.jobs j
                                          WHERE j.state = 'ready' AND j.queue = q.name
                                            AND j.priority = $2 AND j.run_at <= now()
                                          ORDER BY j.run_at, j.id
                                          LIMIT $3 FOR UPDATE SKIP LOCKED) c
                     ORDER BY c.run_at, c.id LIMIT $3)
            $q$ INTO picks USING p_queues, prio, want;
            IF cardinality(picks) > 0 THEN
                RETURN QUERY
                WITH upd AS (
                    UPDATE pgq.jobs j
                       SET state = 'running', attempts = j.attempts + 1,
                           lease_owner = p_owner, lease_token = gen_random_uuid(),
                           lease_expires_at = now() + p_ttl_ms * interval '1 millisecond',
                           started_at = now()
                     WHERE j.id = ANY (picks)
                 RETURNING j.*
                )
                SELECT NULL::bigint, u.id, u.queue, u.type, u.payload::text, u.attempts,
                       u.max_retries, u.priority, u.lease_token::text,
                       coalesce((SELECT t.timeout_ms FROM pgq.job_types t
                                  WHERE t.type = u.type), 60000),
                       got + array_position(picks, u.id)
                  FROM upd u;
                got := got + cardinality(picks);
                want := want - cardinality(picks);
            END IF;
        END IF;
        EXIT WHEN want = 0;
        SELECT min(x.priority) INTO prio
          FROM unnest(p_queues) AS q(name)
         CROSS JOIN LATERAL (SELECT j.priority FROM pgq.jobs j
                              WHERE j.state = 'ready' AND j.queue = q.name AND j.priority > prio
                              ORDER BY j.priority LIMIT 1) x;
    END LOOP;
END
$$;

-- As in version 1, but finding the job by primary key (see 4. above).
CREATE OR REPLACE FUNCTION pgq.fail(p_id bigint, p_token uuid, p_error text, p_outcome text,
                         p_exit int, p_signal int, p_cpu_ms bigint, p_rss_kb bigint)
RETURNS TABLE (state text, run_at timestamptz, attempts int)
LANGUAGE sql VOLATILE AS $$
    WITH cur AS (
        SELECT j.id, j.attempts, j.max_retries, j.lease_owner, j.started_at,
               coalesce(t.backoff_base_ms, 1000) AS base_ms,
               coalesce(t.backoff_max_ms, 3600000) AS cap_ms
          FROM pgq.jobs j
          LEFT JOIN pgq.job_types t ON t.type = j.type
         WHERE j.id = p_id AND j.lease_token = p_token AND (j.state = 'running') IS TRUE
           FOR UPDATE OF j
    ), upd AS (
        UPDATE pgq.jobs j
           SET state = CASE WHEN cur.attempts > cur.max_retries THEN 'dead' ELSE 'ready' END,
               run_at = CASE WHEN cur.attempts > cur.max_retries THEN j.run_at
                             ELSE now() + pgq.backoff_ms(cur.attempts, cur.base_ms, cur.cap_ms)
                                          * interval '1 millisecond' END,
               finished_at = CASE WHEN cur.attempts > cur.max_retries THEN now() END,
               last_error = p_error,
               lease_token = NULL,
               lease_expires_at = NULL
          FROM cur
         WHERE j.id = cur.id
     RETURNING j.id, j.state, j.run_at, j.attempts, cur.lease_owner, cur.started_at
    ), hist AS (
        INSERT INTO pgq.job_attempts (job_id, attempt, outcome, worker, error, exit_code,
                                      term_signal, cpu_ms, max_rss_kb, started_at, duration_ms)
        SELECT upd.id, upd.attempts, p_outcome, upd.lease_owner, p_error, p_exit, p_signal,
               p_cpu_ms, p_rss_kb, upd.started_at,
               extract(epoch FROM clock_timestamp() - upd.started_at) * 1000
          FROM upd
    )
    SELECT upd.state, upd.run_at, upd.attempts FROM upd
$$;
