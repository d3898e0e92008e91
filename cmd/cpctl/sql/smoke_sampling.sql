-- cpctl smoke: sampling per enabled symbol at $1 (now). The spacing a symbol's samples should have
-- is the newest tick period's length times its rotation (a universe larger than the weight budget
-- samples each symbol every rotation_rounds ticks). Per symbol: its newest good sample (one with a
-- mid), how many good samples the last hour has, and how many it should have (from the spacing,
-- counted from the symbol's first good sample if that is less than an hour ago). No row at all
-- when no tick period was ever planned.
WITH plan AS (
    SELECT period * rotation_rounds AS spacing
      FROM str_aux.tick_periods ORDER BY period_start DESC LIMIT 1
), syms AS (
    SELECT symbol, added_at FROM settings.coin_universe WHERE COALESCE(enabled, true)
)
SELECT s.symbol, s.added_at, plan.spacing, g.newest, g.first, h.n::int AS last_hour,
       floor(extract(epoch FROM least(interval '1 hour' - plan.spacing, $1::timestamptz - coalesce(g.first, $1::timestamptz)))
             / extract(epoch FROM plan.spacing))::int AS expected
  FROM plan CROSS JOIN syms s
  CROSS JOIN LATERAL (SELECT max(period_start) AS newest, min(period_start) AS first
                        FROM str_aux.samples x WHERE x.symbol = s.symbol AND x.mid IS NOT NULL
                         AND x.period_start <= $1::timestamptz) g
  CROSS JOIN LATERAL (SELECT count(*) AS n FROM str_aux.samples x
                       WHERE x.symbol = s.symbol AND x.mid IS NOT NULL
                         AND x.period_start > $1::timestamptz - interval '1 hour' AND x.period_start <= $1::timestamptz) h
 ORDER BY s.symbol
