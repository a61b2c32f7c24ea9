-- pgq schema, version 17: an exec handler's first-time success keeps its
-- process figures on the job's own row instead of a history row.
--
-- A job done at its first in-process attempt already had no row in
-- pgq.job_attempts (migration 003: the job row holds that attempt). An
-- exec handler's success got one anyway, only to hold its CPU time and
-- maximum RSS (its exit code is 0 and it has no signal): an insert and two
-- index entries per job, and the statement that wrote them was the
-- completion's most expensive step (pg_stat_statements, 10,000 exec jobs:
-- 0.33 ms per batch of acks, as much as the UPDATE that ends them).
--
-- cpu_ms, max_rss_kb: what the handler of the job's last ended attempt
-- reported (NULL for in-process handlers), written by every end of an
-- attempt. A history row, when the attempt gets one (a failure, a retry's
-- success, a snooze, a result), copies them as before. `pgq show` and the
-- dashboard read a first-time success's figures from here (exit code 0).
-- Rows of jobs ended before this version have NULL here; their history
-- rows are kept and still shown.

-- Locked up front in the order a pool's completion locks them (see
-- migration 006): a live pool waits for this transaction instead of
-- deadlocking with it. Adding a nullable column without a default
-- rewrites nothing.
LOCK TABLE pgq.jobs, pgq.job_attempts, pgq.job_types IN ACCESS EXCLUSIVE MODE;

ALTER TABLE pgq.jobs ADD COLUMN cpu_ms bigint, ADD COLUMN max_rss_kb bigint;
