-- pgq schema, version 8: fleet-wide limits per job type and snoozing from
-- the handler (issue 12, items 3 and 5). The transitions are in
-- migrations/state_machine.sql (the claim's limit check in
-- pgq.complete_claim, pgq.limits_sync, pgq.snooze, the snooze applied by
-- the completion).

-- Locked up front in the order a pool's completion locks them (see
-- migration 006): a live pool waits for this transaction instead of
-- deadlocking with it.
LOCK TABLE pgq.jobs, pgq.job_attempts, pgq.job_types IN ACCESS EXCLUSIVE MODE;

-- A type's limits, as registered from its [job T] section: at most
-- `concurrency` jobs running fleet-wide, at most `rate_count` starts per
-- window of `rate_ms` (windows aligned to the epoch). NULL: no limit.
-- max_snoozes: how often one job may snooze (pgq.snooze).
ALTER TABLE pgq.job_types
    ADD COLUMN concurrency int CHECK (concurrency > 0),
    ADD COLUMN rate_count  int CHECK (rate_count > 0),
    ADD COLUMN rate_ms     bigint CHECK (rate_ms > 0),
    ADD COLUMN max_snoozes int NOT NULL DEFAULT 100 CHECK (max_snoozes >= 0),
    ADD CONSTRAINT job_types_rate_check CHECK ((rate_count IS NULL) = (rate_ms IS NULL));

-- The claim's view of the limited types: one row per type with a limit
-- (kept by pgq.limits_sync from pgq.job_types), so that a fleet without
-- limits finds this table empty and its claims do nothing more. The row
-- is the lock the claims of the type serialize on; `window_no` and
-- `window_starts` count the starts in the current rate window.
CREATE TABLE pgq.type_limits (
    type          text PRIMARY KEY REFERENCES pgq.job_types (type) ON DELETE CASCADE,
    concurrency   int,
    rate_count    int,
    rate_ms       bigint,
    window_no     bigint,
    window_starts int NOT NULL DEFAULT 0,
    set_at        timestamptz NOT NULL DEFAULT now()
);

-- A running job of a limited type is marked `limited` by its claim (and
-- by pgq.limits_sync for those running when a limit is set), and this
-- partial index holds exactly those: a claim of the type counts its
-- running jobs here, in a few index entries, under the type's lock. No
-- counter is kept, so no end of an attempt (done, failed, released,
-- reaped, cancelled, snoozed) has anything to update, and nothing can
-- drift. Jobs of other types have no entry (NULL), so the index costs
-- them nothing but its predicate's test on updates that change the state.
ALTER TABLE pgq.jobs ADD COLUMN limited boolean;
CREATE INDEX jobs_limited_running_idx ON pgq.jobs (type) WHERE state = 'running' AND limited;

-- Snoozing: how often the job snoozed (reset by a requeue), and the delay
-- its current attempt asked for (pgq.snooze), applied when the attempt
-- ends done. NULL: no snooze asked.
ALTER TABLE pgq.jobs
    ADD COLUMN snoozes   int NOT NULL DEFAULT 0,
    ADD COLUMN snooze_ms bigint;

-- An attempt can now end snoozed (back to ready later, not counted).
ALTER TABLE pgq.job_attempts DROP CONSTRAINT IF EXISTS job_attempts_outcome_check;
ALTER TABLE pgq.job_attempts ADD CONSTRAINT job_attempts_outcome_check
    CHECK (outcome IN ('done', 'failed', 'lease_expired', 'released', 'cancelled', 'snoozed'));
