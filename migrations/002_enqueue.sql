-- pgq schema, version 2: a faster enqueue with the same contract.
--
-- pgq.enqueue keeps its signature, its checks and its messages; what changes
-- is how much work it does per item. Validation is one set-based statement
-- whose ORDER BY keeps version 1's precedence (first a bad run_at, then an
-- unknown type, then a broken contract; the lowest item within each), and
-- the refusal itself is raised by pgq.check_item, which the single-job
-- statement of libpgq (core/db.c, STMT_ADD_ONE) calls as well. A batch
-- without idempotency keys takes a fast path: no DISTINCT ON, no
-- key-ordered insert and no duplicate lookup.
--
-- pgq.enqueue reads no column by subscript (p_keys[s.ord]): a subscript
-- costs O(i) on an array of text or one holding NULLs (PostgreSQL walks the
-- elements before i), which made a keyed batch of 5,000 spend 70 ms reading
-- its keys. Every statement reads the columns through one multi-argument
-- unnest, trimmed to the number of types.
--
-- The id mapping of a keyed batch, a join of two unnests estimated at
-- 125,000 rows with a subplan per row, crossed jit_above_cost and spent
-- 130 ms compiling; pgq.enqueue runs with jit = off.
--
-- pgq.enqueue plans its statements with the batch's own arrays every call
-- (force_custom_plan): from a session's sixth batch on, PL/pgSQL's cached
-- generic plan of the validation statement, blind to the arrays' sizes,
-- took 430 ms per batch of 5,000 (bulk enqueue fell from 130,000 to 7,000
-- jobs/s past 25,000 jobs). Planning costs well under a millisecond, shared
-- by the batch's items.

-- Raise the refusal of one item, checking in the order of precedence: a
-- run_at that is not finite, an unknown type (p_required NULL), a payload
-- that breaks its type's contract. Returns true when the item is fine.
CREATE FUNCTION pgq.check_item(p_ord int, p_type text, p_payload jsonb,
                               p_run_at timestamptz, p_required jsonb)
RETURNS boolean LANGUAGE plpgsql STABLE AS $$
DECLARE
    bad record;
BEGIN
    IF NOT isfinite(p_run_at) THEN
        RAISE EXCEPTION 'run_at must be a finite time, not %', p_run_at
            USING ERRCODE = '22023', DETAIL = 'item ' || p_ord;
    END IF;
    IF p_required IS NULL THEN
        RAISE EXCEPTION 'unknown job type "%" (register it with pgq types apply)', p_type
            USING ERRCODE = '22023', DETAIL = 'item ' || p_ord;
    END IF;
    IF p_required = '{}' THEN
        RETURN true;   -- no contract: any JSON will do
    END IF;
    SELECT r.key, r.want INTO bad
      FROM jsonb_each_text(p_required) AS r(key, want)
     WHERE jsonb_typeof(p_payload) <> 'object'
        OR NOT p_payload ? r.key
        OR jsonb_typeof(p_payload -> r.key) <> r.want
     LIMIT 1;
    IF NOT FOUND THEN
        RETURN true;
    ELSIF jsonb_typeof(p_payload) <> 'object' THEN
        RAISE EXCEPTION 'payload for job type "%" must be a JSON object, not %',
            p_type, jsonb_typeof(p_payload)
            USING ERRCODE = '22023', DETAIL = 'item ' || p_ord;
    ELSIF NOT p_payload ? bad.key THEN
        RAISE EXCEPTION 'payload for job type "%" is missing required key "%" (%)',
            p_type, bad.key, bad.want
            USING ERRCODE = '22023', DETAIL = 'item ' || p_ord;
    ELSE
        RAISE EXCEPTION 'payload for job type "%": key "%" must be %, not %',
            p_type, bad.key, bad.want, jsonb_typeof(p_payload -> bad.key)
            USING ERRCODE = '22023', DETAIL = 'item ' || p_ord;
    END IF;
END
$$;

-- Parse one payload, or raise naming the item and what is wrong with it.
CREATE FUNCTION pgq.parse_payload(p_payload text, p_ord int)
RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    why text;
BEGIN
    RETURN p_payload::jsonb;
EXCEPTION WHEN invalid_text_representation OR untranslatable_character THEN
    GET STACKED DIAGNOSTICS why = PG_EXCEPTION_DETAIL;
    RAISE EXCEPTION 'payload is not valid JSON: %', coalesce(nullif(why, ''), SQLERRM)
        USING ERRCODE = '22P02', DETAIL = 'item ' || p_ord;
END
$$;

-- Enqueue a batch (one element for a single add). Validates types and
-- payload contracts first, so a refused batch stores nothing; then inserts
-- and maps every input item (by ordinal) to its job id and whether it was a
-- duplicate. The arrays other than types and payloads may be NULL or short
-- (NULL elements take the type's defaults).
--
-- Every statement walks the arrays with one multi-argument unnest (see
-- above). No JIT: its compile time (100 ms and more) dwarfs any batch.
CREATE OR REPLACE FUNCTION pgq.enqueue(p_types text[], p_payloads text[], p_queues text[],
                                       p_priorities int[], p_run_ats timestamptz[],
                                       p_delays_ms bigint[], p_max_retries int[], p_keys text[])
RETURNS TABLE (ord int, id bigint, duplicate boolean)
LANGUAGE plpgsql VOLATILE SET jit = off SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    n int := coalesce(array_length(p_types, 1), 0);
    bad record;
    payloads jsonb[];
    ids bigint[];
    inserted bigint[];
    due_queues text[];
    seq regclass;
    i int;
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;
    IF array_length(p_payloads, 1) IS DISTINCT FROM n THEN
        RAISE EXCEPTION 'pgq.enqueue: % types but % payloads', n, coalesce(array_length(p_payloads, 1), 0)
            USING ERRCODE = '22023';
    END IF;

    -- What pgq.jobs' CHECKs said until migration 003 dropped them, for
    -- producers that call pgq.enqueue from SQL (libpgq checks before).
    SELECT s.ord, s.queue, s.max_retries INTO bad
      FROM unnest(p_queues[1:n], p_max_retries[1:n]) WITH ORDINALITY
               AS s(queue, max_retries, ord)
     WHERE length(s.queue) NOT BETWEEN 1 AND 200 OR s.max_retries < 0
     ORDER BY s.ord LIMIT 1;
    IF FOUND AND length(bad.queue) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'queue name must be 1 to 200 characters, not %', length(bad.queue)
            USING ERRCODE = '22023', DETAIL = 'item ' || bad.ord;
    ELSIF FOUND THEN
        RAISE EXCEPTION 'max_retries must be 0 or more, not %', bad.max_retries
            USING ERRCODE = '22023', DETAIL = 'item ' || bad.ord;
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
    -- (see pgq.check_item); the contracts of the batch's types are unnested
    -- once, not per item.
    SELECT s.ord, s.type, s.payload, s.run_at, t.required INTO bad
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
       AND (NOT isfinite(s.run_at) OR t.type IS NULL OR r.key IS NOT NULL)
     ORDER BY CASE WHEN NOT isfinite(s.run_at) THEN 1 WHEN t.type IS NULL THEN 2 ELSE 3 END,
              s.ord
     LIMIT 1;
    IF FOUND THEN
        PERFORM pgq.check_item(bad.ord::int, bad.type, bad.payload, bad.run_at, bad.required);
        RAISE EXCEPTION 'pgq.enqueue: item % refused for no known reason', bad.ord;
    END IF;

    seq := pg_get_serial_sequence('pgq.jobs', 'id')::regclass;
    ids := ARRAY(SELECT nextval(seq) FROM generate_series(1, n));

    IF p_keys IS NULL OR cardinality(array_remove(p_keys[1:n], NULL)) = 0 THEN
        -- Fast path: no keys, so every item is a new job, in item order.
        WITH ins AS (
            INSERT INTO pgq.jobs (id, queue, type, payload, priority, run_at, max_retries)
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
            RETURNING queue, run_at <= now() AS due
        )
        SELECT array_agg(q.queue) INTO due_queues
          FROM (SELECT DISTINCT ins.queue FROM ins WHERE ins.due) q;

        PERFORM pg_notify('pgq_jobs', q) FROM unnest(due_queues) AS q;

        RETURN QUERY SELECT s.ord::int, s.id, false
                       FROM unnest(ids) WITH ORDINALITY AS s(id, ord);
        RETURN;
    END IF;

    WITH input AS (
        SELECT s.ord::int AS ord, s.id, s.type, s.payload,
               coalesce(s.queue, t.queue) AS queue,
               coalesce(s.priority, t.priority) AS priority,
               coalesce(s.run_at, now() + coalesce(s.delay_ms, 0) * interval '1 millisecond') AS run_at,
               coalesce(s.max_retries, t.max_retries) AS max_retries,
               s.key
          FROM unnest(ids, p_types, payloads, p_queues, p_priorities, p_run_ats, p_delays_ms,
                      p_max_retries, p_keys)
               WITH ORDINALITY AS s(id, type, payload, queue, priority, run_at, delay_ms,
                                    max_retries, key, ord)
          JOIN pgq.job_types t ON t.type = s.type
         WHERE s.ord <= n
    ), firsts AS (
        -- within one batch the first item with a key wins; later ones are its duplicates
        SELECT DISTINCT ON (input.key, CASE WHEN input.key IS NULL THEN input.ord END) input.*
          FROM input
         ORDER BY input.key, CASE WHEN input.key IS NULL THEN input.ord END, input.ord
    ), ins AS (
        INSERT INTO pgq.jobs AS j (id, queue, type, payload, priority, run_at, max_retries, idempotency_key)
        SELECT f.id, f.queue, f.type, f.payload, f.priority, f.run_at, f.max_retries, f.key
          -- key order: concurrent batches with the same keys cannot deadlock
          FROM firsts f ORDER BY f.key, f.ord
        ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
        RETURNING j.id, j.queue, j.run_at <= now() AS due
    )
    SELECT array_agg(ins.id), array_agg(DISTINCT ins.queue) FILTER (WHERE ins.due)
      INTO inserted, due_queues
      FROM ins;

    -- Wake listening pools, once per queue that got a job due now.
    PERFORM pg_notify('pgq_jobs', q) FROM unnest(due_queues) AS q;

    -- A separate statement, hence a fresh snapshot: it sees the rows whose
    -- concurrent insert made ours a duplicate.
    RETURN QUERY
    SELECT s.ord::int,
           coalesce(mine.id,
                    (SELECT j.id FROM pgq.jobs j WHERE j.idempotency_key = s.key),
                    pgq.key_vanished(s.key, s.ord::int)),
           mine.id IS NULL
      FROM unnest(ids, p_keys) WITH ORDINALITY AS s(id, key, ord)
      LEFT JOIN unnest(inserted) AS mine(id) ON mine.id = s.id
     WHERE s.ord <= n
     ORDER BY s.ord;
END
$$;
