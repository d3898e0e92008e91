-- The newest tick periods straux planned, with how each symbol's claim ended.
SELECT p.period_start, p.period, p.status, p.rotation_rounds, p.planned_symbols,
       count(*) FILTER (WHERE c.outcome = 'sampled')   AS sampled,
       count(*) FILTER (WHERE c.outcome = 'failed')    AS failed,
       count(*) FILTER (WHERE c.outcome = 'abandoned') AS abandoned,
       COALESCE(p.reason, '')
  FROM (SELECT * FROM str_aux.tick_periods ORDER BY period_start DESC LIMIT $1) p
  LEFT JOIN str_aux.tick_claims c ON c.period_start = p.period_start
 GROUP BY p.period_start, p.period, p.status, p.rotation_rounds, p.planned_symbols, p.reason
 ORDER BY p.period_start DESC
