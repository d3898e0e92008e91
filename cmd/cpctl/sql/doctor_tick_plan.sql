-- cpctl doctor: the newest tick period straux planned (str_aux.tick_periods), its age against its
-- own period ($1: now), and the weight plan straux's plan code made for it.
SELECT period_start, period, status, universe_size, planned_symbols, rotation_rounds, planned_weight, tick_budget,
       $1::timestamptz - (period_start + period) AS overdue
  FROM str_aux.tick_periods
 ORDER BY period_start DESC
 LIMIT 1
