-- Sent in the same implicit transaction as the claim and next-due queries (one pgx batch): the
-- setting is local to it. Those queries want jobs in scheduled_for order, which the jobs_due
-- index gives without sorting. On a table without statistics (a fresh bulk load, before
-- autovacuum has analyzed it) the planner instead estimates a handful of due rows, picks a bitmap
-- scan and sorts every due row: 100 ms instead of 2 ms per claim at 200,000 queued jobs.
-- Disabling sorts for these statements leaves the ordered index scan as the only good plan.
SELECT set_config('enable_sort', 'off', true)
