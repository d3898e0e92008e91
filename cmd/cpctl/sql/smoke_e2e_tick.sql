-- cpctl smoke: the first tick period planned at or after $1 that is done, with the symbols sampled
-- in it and the vector rows written for it.
SELECT p.period_start, p.period,
       (SELECT count(*)::int FROM str_aux.samples s WHERE s.period_start = p.period_start AND s.mid IS NOT NULL),
       (SELECT count(*)::int FROM str_aux.window_vectors v WHERE v.period_start = p.period_start)
  FROM str_aux.tick_periods p
 WHERE p.planned_at >= $1::timestamptz AND p.status = 'done'
 ORDER BY p.period_start
 LIMIT 1
