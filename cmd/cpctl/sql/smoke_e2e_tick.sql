-- cpctl smoke: the first tick period planned at or after $1 that is done with at least one good
-- sample, with the symbols sampled in it and the vector rows written for it; and how many periods
-- planned since $1 were done without any good sample. One row once a period planned since $1 is done.
WITH done AS (
    SELECT p.period_start, p.period,
           (SELECT count(*)::int FROM str_aux.samples s WHERE s.period_start = p.period_start AND s.mid IS NOT NULL) AS sampled,
           (SELECT count(*)::int FROM str_aux.window_vectors v WHERE v.period_start = p.period_start) AS vectors
      FROM str_aux.tick_periods p
     WHERE p.planned_at >= $1::timestamptz AND p.status = 'done'
)
SELECT d.period_start, d.period, d.sampled, d.vectors, (SELECT count(*)::int FROM done WHERE sampled = 0)
  FROM done d
 ORDER BY d.sampled > 0 DESC, d.period_start
 LIMIT 1
