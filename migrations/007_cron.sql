-- pgq schema, version 7: periodic jobs ([cron NAME] sections, issue 12).
-- The transitions are in migrations/state_machine.sql (pgq.cron_register,
-- pgq.cron_fire).

-- One row per schedule name, shared by every pool that has the section.
-- last_tick is the last tick a job was added for: pgq.cron_fire advances
-- it with a conditional update in the transaction that adds the job, so of
-- all the pools that fire one tick exactly one adds a job (the others wait
-- for its row lock, then find last_tick no longer before their tick).
-- The other columns describe the schedule as the last pool registered it,
-- for `pgq cron list` and the dashboard; last_job is no foreign key (the
-- job is pruned on its retention while the schedule lives on).
CREATE TABLE pgq.cron (
    name          text PRIMARY KEY,
    schedule      text NOT NULL,
    timezone      text NOT NULL DEFAULT 'UTC',
    type          text NOT NULL,
    queue         text,
    last_tick     timestamptz,
    last_job      bigint,
    next_tick     timestamptz,
    registered_by text,
    registered_at timestamptz NOT NULL DEFAULT now(),
    fired_by      text,
    fired_at      timestamptz
);

-- Which schedule and tick a job was added for (NULL for other jobs). The
-- tick stays as it was when a retry moves run_at; pgq.check_invariants()
-- lists two jobs of one schedule with the same tick.
ALTER TABLE pgq.jobs ADD COLUMN cron text, ADD COLUMN cron_tick timestamptz;
