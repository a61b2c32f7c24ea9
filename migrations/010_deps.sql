-- pgq schema, version 10: dependencies between jobs (issue 13, item 3:
-- (The same release bounds an add's priority, idempotency key and run_at in
-- migrations/state_machine.sql: pgq.check_limits.)
-- pgq add --after ID,...). The transitions are in
-- migrations/state_machine.sql (pgq.deps_attach, pgq.deps_settle, called
-- by pgq.enqueue, pgq.complete_claim, pgq.cancel and pgq.requeue_).
--
-- A job that waits for others is in a new state, `waiting`: not ready, so
-- it has no entry in the claim index (jobs_claim_idx holds ready rows
-- only) and no claim ever looks at it; a job without dependencies is made
-- ready as before and its claim is exactly what it was. The child counts
-- the parents it still waits for (waiting_for); a parent's completion
-- decrements that count under the child's row lock, and the completion
-- that takes it to 0 makes the child ready: exactly once, however many
-- parents finish at the same moment.

-- Only pgq.jobs is altered (and referenced), locked up front: the first
-- table a completion locks too, so no cycle with a live pool (migration
-- 006 tells the story of one).
LOCK TABLE pgq.jobs IN ACCESS EXCLUSIVE MODE;

-- The new state needs no constraint change: migration 003 dropped the
-- CHECK on state (checking it cost the hot path), and
-- pgq.check_invariants() names a row in an unknown state.

-- waiting_for: how many of the job's parents are not done yet (0 unless
-- waiting). has_children: some job was added after this one; its
-- completion then looks for children to release or cancel (and a job
-- without children is completed without that look-up, which is the hot
-- path). Constant defaults: no table rewrite.
ALTER TABLE pgq.jobs ADD COLUMN waiting_for int NOT NULL DEFAULT 0,
                     ADD COLUMN has_children boolean NOT NULL DEFAULT false;

-- One row per (parent, child) edge, deleted with its child (by pgq.prune
-- and by a completion that deletes the job, keep_done = 0: in their own
-- statements, not by a foreign key, whose cascade trigger would cost every
-- deleted job a query even when it has no edges). A parent's rows outlive
-- the parent on purpose: a pool with keep_done = 0 deletes a job in the
-- statement that completes it, and its children must still be found after
-- that, and pgq show of a child says which parent was pruned. A row whose
-- parent is gone counts as done (only done parents disappear while a child
-- waits: a dead or cancelled one cancels its children first).
CREATE TABLE pgq.job_deps (
    parent_id bigint NOT NULL,
    child_id  bigint NOT NULL,
    PRIMARY KEY (parent_id, child_id),
    CHECK (parent_id <> child_id)
);
CREATE INDEX job_deps_child_idx ON pgq.job_deps (child_id);

-- pgq stats counts waiting jobs per queue; the dashboard too.
CREATE INDEX jobs_waiting_idx ON pgq.jobs (queue) WHERE state = 'waiting';
