-- Least privilege: pgq's group roles, who may call which function, and what
-- each role may read. Not a numbered migration: `pgq migrate` runs this
-- file after the state machine (migrations/state_machine.sql) at every
-- migrate, in the transaction that (re)applies the state machine when that
-- changed, so a function is never callable without its attributes and
-- grants. CREATE OR REPLACE FUNCTION resets SECURITY DEFINER and SET
-- clauses but keeps grants: this file puts the attributes back.
--
-- The design: roles may not write the job tables. The functions a role
-- calls run as their owner (SECURITY DEFINER, with a fixed search_path so
-- that nothing the caller creates can stand in for a pgq or pg_catalog
-- object), and they are the fencing: a producer can only add, a handler
-- can only act with its job's lease token. Every pgq function loses
-- PUBLIC's EXECUTE (PostgreSQL gives it to every new function) and every
-- grant to a pgq_ role, then gets back exactly what the list below says. A
-- function that is not in the list is callable by its owner alone: it
-- fails closed.
--
-- A NEW FUNCTION THAT A ROLE CALLS NEEDS ONE LINE IN THE LIST BELOW (name,
-- roles, whether it runs as its owner). Internal helpers that only other
-- pgq functions call need none. A line covers every overload of the name.

-- The group roles (NOLOGIN; users are granted membership). Roles belong to
-- the cluster, not the database: a migrate that may not create roles (no
-- CREATEROLE) skips them with a warning, which `pgq migrate` prints; a
-- superuser can create them later (README, "Roles and grants"), and the
-- next `pgq migrate` grants to them.
DO $roles$
DECLARE
    r text;
    may boolean;
BEGIN
    SELECT rolsuper OR rolcreaterole INTO may FROM pg_catalog.pg_roles WHERE rolname = current_user;
    FOREACH r IN ARRAY ARRAY['pgq_producer', 'pgq_worker', 'pgq_operator', 'pgq_viewer',
                             'pgq_handler'] LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r);
        IF NOT may THEN
            RAISE WARNING 'pgq: role % does not exist and % may not create roles: skipped '
                          '(see README, "Roles and grants")', r, current_user;
            CONTINUE;
        END IF;
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;   -- a migrate of another database of the cluster made it just now
        END;
    END LOOP;
    -- An operator may do what a viewer may; so may a pool: it can claim any
    -- job and so see any payload anyway, and its metrics endpoint and
    -- events read stats and history (pool/metrics.c, pool/events.c).
    FOREACH r IN ARRAY ARRAY['pgq_operator', 'pgq_worker'] LOOP
        CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r)
                   OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'pgq_viewer')
                   OR pg_catalog.pg_has_role(r, 'pgq_viewer', 'MEMBER');
        BEGIN
            EXECUTE format('GRANT pgq_viewer TO %I', r);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING 'pgq: % may not grant pgq_viewer to %: skipped', current_user, r;
        END;
    END LOOP;
END
$roles$;

DO $grants$
DECLARE
    roles text[] := ARRAY['pgq_producer', 'pgq_worker', 'pgq_operator', 'pgq_viewer',
                                   'pgq_handler'];
    f record;
    t record;
    r text;
    cols text;
BEGIN
    -- Only the roles that exist (see above) are granted to.
    roles := ARRAY(SELECT u FROM unnest(roles) u
                    WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = u));

    FOR f IN
        SELECT p.oid::regprocedure AS sig, p.prosecdef, g.name IS NOT NULL AS listed,
               coalesce(g.definer, false) AS definer,
               ARRAY(SELECT u FROM unnest(string_to_array(g.who, ' ')) u
                      WHERE u = ANY (roles)) AS who
          FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
          LEFT JOIN (VALUES
            -- name               roles (space-separated)          runs as owner
            -- producers: enqueue through the functions only
            ('add',               'pgq_producer',                  true),
            ('enqueue',           'pgq_producer',                  true),
            -- pools: claim and the transitions fenced by the lease token
            ('complete_claim',    'pgq_worker',                    true),
            ('claim',             'pgq_worker',                    true),
            ('renew',             'pgq_worker',                    true),
            ('complete',          'pgq_worker',                    true),
            ('fail',              'pgq_worker',                    true),
            ('release',           'pgq_worker',                    true),
            ('reap',              'pgq_worker',                    true),
            ('heartbeat',         'pgq_worker',                    true),
            -- pools with [cron NAME] sections: one job per tick
            ('cron_register',     'pgq_worker',                    true),
            ('cron_fire',         'pgq_worker',                    true),
            ('prune',             'pgq_worker pgq_operator',       true),
            -- by lease token, for the job's own handler: pools and exec
            -- handlers (`pgq once`). A new function a handler calls with its
            -- token (snooze, result, ...) gets 'pgq_worker pgq_handler'.
            -- run_once:
            ('effect_begin',      'pgq_worker pgq_handler',        true),
            ('effect_done',       'pgq_worker pgq_handler',        true),
            ('effect_forget',     'pgq_worker pgq_handler',        true),
            ('snooze',            'pgq_worker pgq_handler',        true),
            -- operators: the dashboard's and the CLI's actions
            ('requeue',           'pgq_operator',                  true),
            ('requeue_matching',  'pgq_operator',                  true),
            ('cancel',            'pgq_operator',                  true),
            ('pause',             'pgq_operator',                  true),
            ('resume',            'pgq_operator',                  true),
            -- the dashboard's and `pgq stats`' figures (aggregates only; it
            -- calls pgq.estimate_jobs, an internal helper, as its owner)
            ('queue_stats',       'pgq_viewer',                    true),
            -- reading a job's result (`pgq result`): as the caller, who
            -- must read pgq.job_results (viewers and operators may)
            ('result',            'pgq_viewer',                    false),
            -- pure arithmetic the view pgq.type_use calls (a view's functions
            -- run with the reader's rights)
            ('rate_window',       'pgq_viewer',                    false),
            -- what [job T] max_payload measures, for producers sizing their
            -- payloads (pure: no table access)
            ('payload_size',      'pgq_producer pgq_viewer',       false),
            -- pure arithmetic the C code calls around prune: no table access
            ('position_us',       'pgq_worker pgq_operator',       false),
            ('from_position_us',  'pgq_worker pgq_operator',       false)
          ) AS g (name, who, definer) ON g.name = p.proname
         WHERE n.nspname = 'pgq' AND p.prokind IN ('f', 'p')
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f.sig);
        FOREACH r IN ARRAY roles LOOP
            EXECUTE format('REVOKE ALL ON FUNCTION %s FROM %I', f.sig, r);
        END LOOP;
        IF f.definer THEN
            -- pg_temp last, explicitly: otherwise it is searched first.
            EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = pg_catalog, pgq, pg_temp',
                           f.sig);
        ELSIF f.prosecdef THEN
            EXECUTE format('ALTER FUNCTION %s SECURITY INVOKER', f.sig);
        END IF;
        FOREACH r IN ARRAY f.who LOOP
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f.sig, r);
        END LOOP;
    END LOOP;

    -- Tables: revoke what the roles had, then grant what they read or write
    -- outside the functions.
    FOREACH r IN ARRAY roles LOOP
        EXECUTE format('GRANT USAGE ON SCHEMA pgq TO %I', r);
        EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA pgq FROM %I', r);
        EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgq FROM %I', r);
        -- Every connection checks the schema version and the state machine.
        EXECUTE format('GRANT SELECT ON pgq.migrations, pgq.state_machine TO %I', r);
    END LOOP;
    IF 'pgq_worker' = ANY (roles) THEN
        -- A pool's row in the fleet, and the job types it registers at start
        -- (`pgq types apply` too). Neither holds job rows.
        GRANT SELECT, INSERT, UPDATE, DELETE ON pgq.workers TO pgq_worker;
        GRANT SELECT, INSERT, UPDATE ON pgq.job_types TO pgq_worker;
    END IF;
    IF 'pgq_viewer' = ANY (roles) THEN
        -- Everything in the schema, payloads included (the dashboard's job
        -- detail and its filter show them), but never a lease token: a
        -- token is the capability the fenced functions check.
        FOR t IN
            SELECT c.oid::regclass AS rel,
                   EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                            WHERE a.attrelid = c.oid AND a.attname = 'lease_token'
                              AND NOT a.attisdropped) AS secret
              FROM pg_catalog.pg_class c
              JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'pgq' AND c.relkind IN ('r', 'v', 'm', 'p')
        LOOP
            IF t.secret THEN
                SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO cols
                  FROM pg_catalog.pg_attribute a
                 WHERE a.attrelid = t.rel AND a.attnum > 0 AND NOT a.attisdropped
                   AND a.attname <> 'lease_token';
                EXECUTE format('GRANT SELECT (%s) ON %s TO pgq_viewer', cols, t.rel);
            ELSE
                EXECUTE format('GRANT SELECT ON %s TO pgq_viewer', t.rel);
            END IF;
        END LOOP;
    END IF;
END
$grants$;
