-- pgq schema, version 6: pausing queues and cancelling running jobs
-- (issue 12). The transitions are in migrations/state_machine.sql
-- (pgq.pause, pgq.resume, pgq.cancel, the claim skipping paused queues).

-- The tables this migration alters, locked up front in the order pools'
-- statements lock them (a completion updates pgq.jobs, then inserts into
-- pgq.job_attempts, then reads pgq.job_types): altering job_attempts
-- first and jobs later made a cycle with a live pool's completion, and
-- PostgreSQL aborted one of them (seen once in the upgrade test: "deadlock
-- detected" in the old pool's heartbeat). Pools wait for the few
-- milliseconds of this transaction instead.
LOCK TABLE pgq.jobs, pgq.job_attempts, pgq.job_types IN ACCESS EXCLUSIVE MODE;

-- A queue's operating state. A queue without a row is not paused; a claim
-- looks here with one index probe.
CREATE TABLE pgq.queues (
    queue      text PRIMARY KEY,
    paused     boolean NOT NULL DEFAULT false,
    changed_at timestamptz NOT NULL DEFAULT now(),
    changed_by text
);

-- An attempt can now end cancelled (an operator cancelled the running job).
ALTER TABLE pgq.job_attempts DROP CONSTRAINT IF EXISTS job_attempts_outcome_check;
ALTER TABLE pgq.job_attempts ADD CONSTRAINT job_attempts_outcome_check
    CHECK (outcome IN ('done', 'failed', 'lease_expired', 'released', 'cancelled'));

-- Who registered each job type's definition (a pool's name, or "pgq types
-- apply"): a pool does not replace a different definition that a pool
-- still alive registered (core/types.c), so two pools with different
-- [job T] sections no longer overwrite each other at every start.
ALTER TABLE pgq.job_types ADD COLUMN registered_by text;

-- Dedup windows (pgq add --unique-for): when a job's idempotency key
-- outlives its window, the next add with the key moves it here and makes a
-- new job; the old job keeps a record of the key it had.
ALTER TABLE pgq.jobs ADD COLUMN idempotency_key_expired text;
