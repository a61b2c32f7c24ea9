-- 012: least-privilege roles (migrations/grants.sql, applied after the
-- state machine at every migrate, creates pgq_producer, pgq_worker,
-- pgq_operator, pgq_viewer and pgq_handler and gives each exactly its
-- functions; the functions they call run as their owner).
--
-- An action's author: the functions that record one now run as their
-- owner, where current_user is that owner; session_user is the role that
-- logged in (a member of pgq_operator, say), which is who did it.
ALTER TABLE pgq.actions ALTER COLUMN db_user SET DEFAULT session_user;
