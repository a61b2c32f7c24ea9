-- The cost of a change to pgq.add / pgq.enqueue, measured inside the
-- server (no client round trips): the best of 12 pgq.enqueue calls of
-- 5,000 jobs, and the best of 10 batches of 500 single pgq.add calls.
-- Run it against two databases of one server (one migrated by each build)
-- alternately, several rounds, and compare (bench/README.md, "Issue 15
-- item 8"). Needs a registered type `t` without a contract; it empties
-- pgq.jobs of the database it runs in.
--   psql -q "$URL" -f bench/enqueue_ab.sql
\set QUIET on
TRUNCATE pgq.jobs CASCADE;
DO $$
DECLARE
    t0 timestamptz;
    best float8 := 1e9;
    pl text[] := array_fill('{"to": "someone@example.com", "subject": "hello there", "n": 12345}'::text,
                            ARRAY[5000]);
    ty text[] := array_fill('t'::text, ARRAY[5000]);
BEGIN
    FOR i IN 1..12 LOOP
        t0 := clock_timestamp();
        PERFORM count(*) FROM pgq.enqueue(ty, pl, NULL, NULL, NULL, NULL, NULL, NULL);
        best := least(best, extract(epoch FROM clock_timestamp() - t0));
    END LOOP;
    RAISE NOTICE 'enqueue_best % jobs/s', round(5000 / best);
END $$;
TRUNCATE pgq.jobs CASCADE;
DO $$
DECLARE
    t0 timestamptz;
    best float8 := 1e9;
BEGIN
    FOR j IN 1..10 LOOP
        t0 := clock_timestamp();
        FOR i IN 1..500 LOOP
            PERFORM * FROM pgq.add('t', '{"to": "someone@example.com", "subject": "hello there", "n": 12345}');
        END LOOP;
        best := least(best, extract(epoch FROM clock_timestamp() - t0));
    END LOOP;
    RAISE NOTICE 'add_best % us', round((best * 1e6 / 500)::numeric, 1);
END $$;
TRUNCATE pgq.jobs CASCADE;
