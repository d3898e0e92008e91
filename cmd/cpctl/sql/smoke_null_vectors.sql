-- cpctl smoke: the NULL-vector storm. Per enabled window, over the newest $1 rows of every enabled
-- symbol: how many vector rows there are, how many have no value (a reason instead), the most
-- common reason, and the newest period seen.
WITH pairs AS (
    SELECT cu.symbol, w.label FROM settings.coin_universe cu CROSS JOIN settings.windows w
     WHERE COALESCE(cu.enabled, true) AND w.enabled
), recent AS (
    SELECT p.label AS window_label, x.period_start, x.reason
      FROM pairs p
     CROSS JOIN LATERAL (SELECT v.period_start, v.reason FROM str_aux.window_vectors v
                          WHERE v.symbol = p.symbol AND v.window_label = p.label
                          ORDER BY v.period_start DESC LIMIT $1) AS x
)
SELECT window_label, count(*)::int AS rows, count(reason)::int AS without_value,
       mode() WITHIN GROUP (ORDER BY reason) AS top_reason, max(period_start) AS newest
  FROM recent GROUP BY window_label ORDER BY window_label
