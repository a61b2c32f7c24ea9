-- pgq schema, version 13: a payload size limit per job type (issue 15,
-- item 8: `[job T] max_payload`). The check is in migrations/state_machine.sql
-- (pgq.check_payload_size, raised from pgq.add and pgq.enqueue; the
-- replace path of pgq.add is checked before it replaces anything).
--
-- max_payload: the most bytes a payload of the type may have, measured as
-- pg_column_size() of the payload as jsonb, uncompressed (what
-- `SELECT pg_column_size('...'::jsonb)` prints for it). 0: no limit of
-- pgq's own (PostgreSQL's limits of jsonb then apply: about 255 MiB).
--
-- Types registered before this version get 0, so that migrating changes
-- no producer's fate: a payload accepted yesterday is accepted after
-- `pgq migrate` until a pool or `pgq types apply` of this version
-- registers the type again, with its [job T] max_payload (1 MiB when the
-- key is absent). Types inserted afterwards by hand get that 1 MiB too.

-- Locked up front in the order a pool's completion locks them (see
-- migration 006): a live pool waits for this transaction instead of
-- deadlocking with it.
LOCK TABLE pgq.jobs, pgq.job_attempts, pgq.job_types IN ACCESS EXCLUSIVE MODE;

ALTER TABLE pgq.job_types
    ADD COLUMN max_payload bigint NOT NULL DEFAULT 0 CHECK (max_payload >= 0);
ALTER TABLE pgq.job_types ALTER COLUMN max_payload SET DEFAULT 1048576;
