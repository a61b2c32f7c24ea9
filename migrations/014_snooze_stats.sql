-- pgq schema, version 14 (issue 12): the end of a snoozed attempt is
-- reported as snoozed, and pgq.queue_stats reads less. No table changes.
--
-- Snoozes. A pool now reads, for each of its
-- acknowledgements that held, the job's new state that pgq.complete_claim
-- already returned (migrations/state_machine.sql says so in its comment
-- of that function: a done acknowledgement that comes back 'ready' had a
-- snooze applied, e.g. an exec handler's `pgq snooze`, which only the
-- database knew of), and reports, logs and counts it as snoozed. The
-- function's signature and result are unchanged, so pools of the previous
-- release keep calling it as before; this version marks the state
-- machine's new text.
--
-- pgq.queue_stats (migration 011) reads a range less when the done jobs
-- are many: whether done holds more than the cap was a count of the
-- oldest p_cap + 1 entries of its range, read besides the newest ones of
-- the last hour (recent); when recent holds more than the cap, so does
-- done, and the count is skipped. Right after a bulk load (pages not yet
-- all-visible, so every entry read visits the heap) that was a fifth of
-- its cost at 10M jobs (bench/README.md, issue 12). The figures are the
-- same.
CREATE OR REPLACE FUNCTION pgq.queue_stats(p_cap int DEFAULT 5000, p_stale_s float8 DEFAULT 60)
RETURNS TABLE (queue text,
               ready bigint, ready_is text,
               scheduled bigint, retrying bigint, future_is text,
               running bigint,
               dead bigint, dead_is text,
               cancelled bigint, cancelled_is text,
               done bigint, done_is text,
               done_1h bigint, done_1h_is text,
               done_5m bigint, done_5m_window_s float8, failed_5m bigint, failed_5m_window_s float8,
               oldest_ready_s float8, paused boolean, pools int,
               waiting bigint, waiting_is text)
-- PL/pgSQL for its plan cache (planning this statement took longer than
-- running it on a small queue; an SQL function plans it at every call). No
-- JIT (compiling the plan took 2 s, running it milliseconds); no sequential
-- or bitmap scans: every range is meant to stop at its cap.
LANGUAGE plpgsql STABLE SET jit = off SET enable_seqscan = off SET enable_bitmapscan = off AS $$
#variable_conflict use_column
BEGIN
RETURN QUERY
WITH RECURSIVE
-- (queue, priority) of ready jobs: a skip scan of the claim index, one
-- probe per pair.
qp AS (
    (SELECT j.queue, j.priority FROM pgq.jobs j WHERE j.state = 'ready'
      ORDER BY j.queue, j.priority LIMIT 1)
    UNION ALL
    SELECT n.queue, n.priority FROM qp
     CROSS JOIN LATERAL (SELECT j.queue, j.priority FROM pgq.jobs j
                          WHERE j.state = 'ready' AND (j.queue, j.priority) > (qp.queue, qp.priority)
                          ORDER BY j.queue, j.priority LIMIT 1) n
),
ready AS (
    SELECT qp.queue,
           sum(d.n) AS due, bool_and(d.n <= p_cap) AS due_exact, min(d.first) AS oldest,
           sum(f.n) AS fut, sum(f.retrying) AS retrying, bool_and(f.n <= p_cap) AS fut_exact
      FROM qp
     CROSS JOIN LATERAL (SELECT count(*) AS n, min(x.run_at) AS first
                           FROM (SELECT j.run_at FROM pgq.jobs j
                                  WHERE j.state = 'ready' AND j.queue = qp.queue
                                    AND j.priority = qp.priority AND j.run_at <= now()
                                  ORDER BY j.run_at LIMIT p_cap + 1) x) d
     CROSS JOIN LATERAL (SELECT count(*) AS n, count(*) FILTER (WHERE x.attempts > 0) AS retrying
                           FROM (SELECT j.attempts FROM pgq.jobs j
                                  WHERE j.state = 'ready' AND j.queue = qp.queue
                                    AND j.priority = qp.priority AND j.run_at > now()
                                  ORDER BY j.run_at LIMIT p_cap + 1) x) f
     GROUP BY qp.queue
),
running AS (
    SELECT j.queue, count(*) AS n FROM pgq.jobs j WHERE j.state = 'running' GROUP BY j.queue
),
-- Jobs waiting for others (migration 010): its index holds the queue, so
-- up to the cap per fleet they are counted from the index alone.
wait AS (
    SELECT x.queue, count(*) AS n, sum(count(*)) OVER () AS total
      FROM (SELECT j.queue FROM pgq.jobs j WHERE j.state = 'waiting' LIMIT p_cap + 1) x
     GROUP BY x.queue
),
-- The finished states: first whether each holds more than the cap (an
-- index-only count of the finished index, no heap visit once vacuum has
-- marked the pages visible); those that do are estimated, the others read
-- up to the cap for their queues (each state written out: the index is
-- partial, its predicate must be seen to hold).
-- The newest done jobs of the last hour, newest first; capped: the window
-- they cover is shorter than the hour. (Read first: when they reach the
-- cap, there are more done jobs than the cap, and big need not count.)
recent AS (
    SELECT j.queue, j.finished_at FROM pgq.jobs j
     WHERE j.state = 'done' AND j.finished_at > now() - interval '1 hour'
     ORDER BY j.finished_at DESC LIMIT p_cap + 1
),
big AS (
    SELECT (SELECT count(*) FROM (SELECT 1 FROM pgq.jobs j WHERE j.state = 'dead'
                                   LIMIT p_cap + 1) x) > p_cap AS dead,
           (SELECT count(*) FROM (SELECT 1 FROM pgq.jobs j WHERE j.state = 'cancelled'
                                   LIMIT p_cap + 1) x) > p_cap AS cancelled,
           -- CASE: the second range is read only when the first says nothing
           CASE WHEN (SELECT count(*) FROM recent) > p_cap THEN true
                ELSE (SELECT count(*) FROM (SELECT 1 FROM pgq.jobs j WHERE j.state = 'done'
                                             LIMIT p_cap + 1) x) > p_cap END AS done
),
fin AS (
    SELECT x.state, x.queue, count(*) AS n
      FROM ((SELECT 'dead' AS state, j.queue FROM pgq.jobs j
              WHERE j.state = 'dead' AND NOT (SELECT b.dead FROM big b) LIMIT p_cap + 1)
            UNION ALL
            (SELECT 'cancelled', j.queue FROM pgq.jobs j
              WHERE j.state = 'cancelled' AND NOT (SELECT b.cancelled FROM big b) LIMIT p_cap + 1)
            UNION ALL
            (SELECT 'done', j.queue FROM pgq.jobs j
              WHERE j.state = 'done' AND NOT (SELECT b.done FROM big b) LIMIT p_cap + 1)) x
     GROUP BY x.state, x.queue
),
fin_total AS (
    SELECT s.state, CASE WHEN s.over THEN p_cap + 1 ELSE 0 END AS total
      FROM big b CROSS JOIN LATERAL (VALUES ('dead', b.dead), ('cancelled', b.cancelled),
                                            ('done', b.done)) s(state, over)
),
recent_span AS (
    SELECT count(*) > p_cap AS capped,
           CASE WHEN count(*) > p_cap
                THEN greatest(extract(epoch FROM now() - min(r.finished_at)), 0.001)::float8
                ELSE 3600 END AS span
      FROM recent r
),
-- The newest attempt rows, for the failure rate: a rate needs a sample, not
-- every row, and each failure costs a probe of pgq.jobs for its queue, so
-- at most 1000 whatever the cap.
att AS (
    SELECT a.job_id, a.outcome, a.finished_at FROM pgq.job_attempts a
     ORDER BY a.id DESC LIMIT least(p_cap, 1000) + 1
),
att_span AS (
    SELECT count(*) > least(p_cap, 1000) AS capped,
           CASE WHEN count(*) > least(p_cap, 1000)
                THEN greatest(extract(epoch FROM now() - min(a.finished_at)), 0.001)::float8
                ELSE 3600 END AS span
      FROM att a
),
failed AS (
    SELECT j.queue, count(*) AS n FROM att a JOIN pgq.jobs j ON j.id = a.job_id
     WHERE a.outcome IN ('failed', 'lease_expired') AND a.finished_at > now() - interval '5 minutes'
     GROUP BY j.queue
),
live AS (
    SELECT unnest(w.queues) AS queue FROM pgq.workers w
     WHERE w.last_heartbeat > now() - p_stale_s * interval '1 second'
),
names AS (
    SELECT r.queue FROM ready r
    UNION SELECT r.queue FROM running r
    UNION SELECT w.queue FROM wait w
    UNION SELECT f.queue FROM fin f
    UNION SELECT r.queue FROM recent r
    UNION SELECT f.queue FROM failed f
    UNION SELECT q.queue FROM pgq.queues q WHERE q.paused
    UNION SELECT v.queue FROM (SELECT unnest(s.most_common_vals::text::text[]) AS queue
                                 FROM pg_stats s
                                WHERE s.schemaname = 'pgq' AND s.tablename = 'jobs'
                                  AND s.attname = 'queue') v
     -- only when some finished state is beyond the ranges read (the
     -- statistics may name queues long gone)
     WHERE (SELECT max(t.total) FROM fin_total t) > p_cap
),
est AS (
    -- The planner's estimates, only where a range reached the cap.
    SELECT n.queue,
           CASE WHEN NOT coalesce(r.due_exact, true) THEN pgq.estimate_jobs(n.queue, 'ready', true) END
               AS due,
           CASE WHEN NOT coalesce(r.fut_exact, true) THEN pgq.estimate_jobs(n.queue, 'ready', false) END
               AS fut,
           CASE WHEN (SELECT t.total FROM fin_total t WHERE t.state = 'dead') > p_cap
                THEN pgq.estimate_jobs(n.queue, 'dead') END AS dead,
           CASE WHEN (SELECT t.total FROM fin_total t WHERE t.state = 'cancelled') > p_cap
                THEN pgq.estimate_jobs(n.queue, 'cancelled') END AS cancelled,
           CASE WHEN (SELECT t.total FROM fin_total t WHERE t.state = 'done') > p_cap
                THEN pgq.estimate_jobs(n.queue, 'done') END AS done
      FROM names n LEFT JOIN ready r ON r.queue = n.queue
),
-- A figure and how it is known: exact; else the estimate where it is above
-- what the range held, else what the range held and more.
fig AS (
    SELECT n.queue,
           coalesce(r.due, 0) AS due_seen, r.due_exact, e.due AS due_est,
           coalesce(r.fut, 0) AS fut_seen, coalesce(r.retrying, 0) AS retrying_seen,
           r.fut_exact, e.fut AS fut_est,
           coalesce((SELECT f.n FROM fin f WHERE f.state = 'dead' AND f.queue = n.queue), 0) AS dead_seen,
           e.dead AS dead_est,
           coalesce((SELECT f.n FROM fin f WHERE f.state = 'cancelled' AND f.queue = n.queue), 0)
               AS cancelled_seen, e.cancelled AS cancelled_est,
           coalesce((SELECT f.n FROM fin f WHERE f.state = 'done' AND f.queue = n.queue), 0) AS done_seen,
           e.done AS done_est,
           r.oldest
      FROM names n LEFT JOIN ready r ON r.queue = n.queue LEFT JOIN est e ON e.queue = n.queue
)
SELECT f.queue,
       (CASE WHEN coalesce(f.due_exact, true) THEN f.due_seen
             ELSE greatest(f.due_seen, f.due_est) END)::bigint,
       CASE WHEN coalesce(f.due_exact, true) THEN '=' WHEN f.due_est > f.due_seen THEN '~' ELSE '+' END,
       -- the future ones split as in the range read
       (CASE WHEN coalesce(f.fut_exact, true) THEN f.fut_seen - f.retrying_seen
             ELSE round(greatest(f.fut_seen, f.fut_est)::numeric * (f.fut_seen - f.retrying_seen)
                        / greatest(f.fut_seen, 1)) END)::bigint,
       (CASE WHEN coalesce(f.fut_exact, true) THEN f.retrying_seen
             ELSE round(greatest(f.fut_seen, f.fut_est)::numeric * f.retrying_seen
                        / greatest(f.fut_seen, 1)) END)::bigint,
       CASE WHEN coalesce(f.fut_exact, true) THEN '=' WHEN f.fut_est > f.fut_seen THEN '~' ELSE '+' END,
       coalesce((SELECT r.n FROM running r WHERE r.queue = f.queue), 0)::bigint,
       coalesce(greatest(f.dead_seen, f.dead_est), f.dead_seen)::bigint,
       CASE WHEN f.dead_est IS NULL THEN '=' WHEN f.dead_est > f.dead_seen THEN '~' ELSE '+' END,
       coalesce(greatest(f.cancelled_seen, f.cancelled_est), f.cancelled_seen)::bigint,
       CASE WHEN f.cancelled_est IS NULL THEN '=' WHEN f.cancelled_est > f.cancelled_seen THEN '~'
            ELSE '+' END,
       coalesce(greatest(f.done_seen, f.done_est), f.done_seen)::bigint,
       CASE WHEN f.done_est IS NULL THEN '=' WHEN f.done_est > f.done_seen THEN '~' ELSE '+' END,
       -- done in the last hour / five minutes: what the newest p_cap rows
       -- held, and the seconds of the window they cover
       (CASE WHEN rs.capped THEN least(rq.n_1h, p_cap) ELSE rq.n_1h END)::bigint,
       CASE WHEN rs.capped THEN '+' ELSE '=' END,
       rq.n_5m::bigint, least(rs.span, 300)::float8,
       coalesce((SELECT x.n FROM failed x WHERE x.queue = f.queue), 0)::bigint,
       least(fa.span, 300)::float8,
       coalesce(extract(epoch FROM now() - f.oldest)::float8, -1)::float8,
       coalesce((SELECT q.paused FROM pgq.queues q WHERE q.queue = f.queue), false),
       (SELECT count(*)::int FROM live l WHERE l.queue = f.queue),
       (CASE WHEN coalesce((SELECT max(w.total) FROM wait w), 0) > p_cap
             THEN greatest(coalesce((SELECT w.n FROM wait w WHERE w.queue = f.queue), 0),
                           pgq.estimate_jobs(f.queue, 'waiting'))
             ELSE coalesce((SELECT w.n FROM wait w WHERE w.queue = f.queue), 0) END)::bigint,
       CASE WHEN coalesce((SELECT max(w.total) FROM wait w), 0) > p_cap THEN '~' ELSE '=' END
  FROM fig f
 CROSS JOIN recent_span rs
 CROSS JOIN att_span fa
 CROSS JOIN LATERAL (SELECT count(*) AS n_1h,
                            count(*) FILTER (WHERE r.finished_at > now() - interval '5 minutes') AS n_5m
                       FROM recent r WHERE r.queue = f.queue) rq
 ORDER BY f.queue;
END
$$;
