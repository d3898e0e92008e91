-- Freshness per enabled symbol and window. A good sample has a mid (a failed one has only a
-- reason). A vector counts only when its own period's sample was good: straux writes a vector row
-- for a period whose sample failed (from the older samples of the window), so a recent vector
-- time alone does not mean fresh data.
WITH u AS (
    SELECT symbol FROM settings.coin_universe WHERE COALESCE(enabled, true)
)
SELECT u.symbol,
       good.period_start  AS good_sample,
       last.period_start  AS newest_sample,
       last.reason        AS newest_reason,
       w.label            AS window_label,
       vec.period_start   AS good_vector
  FROM u
  LEFT JOIN LATERAL (SELECT period_start FROM str_aux.samples s
                      WHERE s.symbol = u.symbol AND s.mid IS NOT NULL
                      ORDER BY period_start DESC LIMIT 1) good ON true
  LEFT JOIN LATERAL (SELECT period_start, reason FROM str_aux.samples s
                      WHERE s.symbol = u.symbol
                      ORDER BY period_start DESC LIMIT 1) last ON true
  LEFT JOIN settings.windows w ON w.enabled
  LEFT JOIN LATERAL (SELECT v.period_start FROM str_aux.window_vectors v
                       JOIN str_aux.samples s ON s.symbol = v.symbol AND s.period_start = v.period_start AND s.mid IS NOT NULL
                      WHERE v.symbol = u.symbol AND v.window_label = w.label AND v.v_inner IS NOT NULL
                      ORDER BY v.period_start DESC LIMIT 1) vec ON true
 ORDER BY u.symbol, w.duration, w.label
