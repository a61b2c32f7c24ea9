-- pgq schema, version 9: job results and the SQL consumer interface
-- (The same release fences pgq.effect_done and pgq.effect_forget by the
-- job's lease in migrations/state_machine.sql: a zombie's late forget
-- deleted a record another attempt had found in doubt.)
-- (issue 13, items 2 and 5). The transitions are in
-- migrations/state_machine.sql: the completion (pgq.complete_claim) stores
-- a done attempt's result, and the one-job consumer functions pgq.claim,
-- pgq.heartbeat, pgq.complete, pgq.fail and pgq.release take named,
-- defaulted arguments.

-- The tables this migration alters, locked up front in the order a
-- completion locks them (pgq.jobs, then pgq.job_attempts; see migration
-- 006): a live pool's completion waits for this transaction instead of
-- making a lock cycle with it.
LOCK TABLE pgq.jobs, pgq.job_attempts IN ACCESS EXCLUSIVE MODE;

-- A done attempt's result: an exec handler's stdout, or the text an
-- in-process handler gave pgq_ctx_set_result(), or pgq.complete(...,
-- result => ...) from SQL. result_note says what happened to it when it
-- is not the handler's whole output: cut at the type's result_max, or not
-- stored (stdout that is not UTF-8 text). Both NULL on every other
-- attempt (pgq.check_invariants() says so). A done attempt with a result
-- always has its history row; one without keeps the old rule (no row for
-- a first attempt done without anything to record).
ALTER TABLE pgq.job_attempts ADD COLUMN result text, ADD COLUMN result_note text;

-- The results, one row per job that has one (or a note saying why not).
-- pgq.result(id) is the one-value form.
CREATE VIEW pgq.job_results AS
SELECT a.job_id, a.attempt, a.result, a.result_note, a.worker, a.finished_at
  FROM pgq.job_attempts a
 WHERE a.outcome = 'done' AND (a.result IS NOT NULL OR a.result_note IS NOT NULL);
