-- cpctl smoke: window coverage at $1 (now), per enabled symbol and window: the good samples inside
-- the window, how many there should be (window length less the period in progress, or the time since
-- the symbol's first good sample if shorter, over the expected spacing; see smoke_sampling.sql), and the longest gap
-- between two consecutive good samples inside it, with where it ends.
WITH plan AS (
    SELECT period * rotation_rounds AS spacing
      FROM str_aux.tick_periods ORDER BY period_start DESC LIMIT 1
), pairs AS (
    SELECT cu.symbol, w.label, w.duration FROM settings.coin_universe cu CROSS JOIN settings.windows w
     WHERE COALESCE(cu.enabled, true) AND w.enabled
)
SELECT p.symbol, p.label, plan.spacing, c.n::int,
       floor(extract(epoch FROM least(p.duration - plan.spacing, $1::timestamptz - coalesce(f.first, $1::timestamptz)))
             / extract(epoch FROM plan.spacing))::int AS expected,
       g.gap, g.gap_end
  FROM plan CROSS JOIN pairs p
  CROSS JOIN LATERAL (SELECT min(period_start) AS first FROM str_aux.samples x
                       WHERE x.symbol = p.symbol AND x.mid IS NOT NULL) f
  CROSS JOIN LATERAL (SELECT count(*) AS n FROM str_aux.samples x
                       WHERE x.symbol = p.symbol AND x.mid IS NOT NULL
                         AND x.period_start > $1::timestamptz - p.duration AND x.period_start <= $1::timestamptz) c
  LEFT JOIN LATERAL (SELECT period_start - prev AS gap, period_start AS gap_end
                       FROM (SELECT period_start, lag(period_start) OVER (ORDER BY period_start) AS prev
                               FROM str_aux.samples x
                              WHERE x.symbol = p.symbol AND x.mid IS NOT NULL
                                AND x.period_start > $1::timestamptz - p.duration AND x.period_start <= $1::timestamptz) s
                      WHERE prev IS NOT NULL ORDER BY period_start - prev DESC, period_start DESC LIMIT 1) g ON true
 ORDER BY p.symbol, p.label
