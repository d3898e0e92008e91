-- cpctl smoke: str-aux statistics and vectors stuck at their bounds. One pass over the newest $2
-- rows of every (enabled symbol, enabled window), read backwards through the primary key, then
-- one row per finding (kind 'window' or 'symbol'):
--   window: at the newest period of a window, a series is at its bound for every symbol (at least
--           2) that has a value there;
--   symbol: a series is at its bound in each of one symbol's newest $1 rows of a window.
-- since is the oldest period of the run of such periods/rows that ends at the newest (within the
-- $2 rows read; run_at_history says the run reaches past them).
-- Bounds: vInner, vOuter, vTendency, vSwap ±S = ±100 (tanh-saturated or clamped), the tendency's
-- strength |r| ≤ 1, IDHR confidence 1/(1 + mean|r−μ|/σ) in [0.5, 1] (1: every price equal). A value
-- within $3 (relative) of a bound counts as at it: a saturated tanh only approaches ±1.
WITH pairs AS (
    SELECT cu.symbol, w.label FROM settings.coin_universe cu CROSS JOIN settings.windows w
     WHERE COALESCE(cu.enabled, true) AND w.enabled
), recent AS (
    SELECT p.symbol, p.label AS window_label, x.period_start, x.rn, x.v_inner, x.v_outer, x.v_tendency,
           x.v_tendency_strength, x.v_swap, st.confidence
      FROM pairs p
     CROSS JOIN LATERAL (SELECT v.*, row_number() OVER (ORDER BY v.period_start DESC) AS rn
                           FROM str_aux.window_vectors v
                          WHERE v.symbol = p.symbol AND v.window_label = p.label
                          ORDER BY v.period_start DESC LIMIT $2) AS x
      LEFT JOIN str_aux.window_stats st
             ON st.symbol = p.symbol AND st.window_label = p.label AND st.period_start = x.period_start
), obs AS (
    SELECT r.symbol, r.window_label, r.period_start, r.rn, o.series, o.value,
           CASE WHEN o.value >= o.hi - $3 * abs(o.hi) THEN o.hi
                WHEN o.value <= o.lo + $3 * abs(o.lo) THEN o.lo END AS bound
      FROM recent r
     CROSS JOIN LATERAL (VALUES
            ('v_inner', r.v_inner, -100::float8, 100::float8),
            ('v_outer', r.v_outer, -100, 100),
            ('v_tendency', r.v_tendency, -100, 100),
            ('v_swap', r.v_swap, -100, 100),
            ('v_tendency_strength', r.v_tendency_strength, NULL, 1),
            ('confidence', r.confidence, 0.5, 1)) AS o(series, value, lo, hi)
), symbol_runs AS (
    SELECT symbol, window_label, series, count(*) AS n_rows,
           COALESCE(min(rn) FILTER (WHERE bound IS NULL) - 1, count(*)) AS run
      FROM obs GROUP BY symbol, window_label, series
), symbol_findings AS (
    SELECT 'symbol' AS kind, o.window_label, o.symbol, r.series, r.run::int AS run,
           (SELECT string_agg(DISTINCT b.bound::text, '|') FROM obs b
             WHERE (b.symbol, b.window_label, b.series) = (o.symbol, o.window_label, r.series) AND b.rn <= r.run) AS bound,
           o.period_start AS since,
           (SELECT n.period_start FROM obs n
             WHERE (n.symbol, n.window_label, n.series, n.rn) = (o.symbol, o.window_label, r.series, 1)) AS newest,
           1 AS symbols, r.run = r.n_rows AND r.n_rows >= $2 AS run_at_history
      FROM symbol_runs r
      JOIN obs o ON (o.symbol, o.window_label, o.series, o.rn) = (r.symbol, r.window_label, r.series, r.run)
     WHERE r.run >= $1
), periods AS (
    SELECT window_label, period_start, series,
           count(value)::int AS symbols,
           count(value) >= 2 AND bool_and(bound IS NOT NULL) FILTER (WHERE value IS NOT NULL) AS pinned,
           string_agg(DISTINCT bound::text, '|') AS bound,
           row_number() OVER (PARTITION BY window_label, series ORDER BY period_start DESC) AS prn
      FROM obs GROUP BY window_label, period_start, series
), window_runs AS (
    SELECT window_label, series, count(*) AS n_periods,
           COALESCE(min(prn) FILTER (WHERE NOT COALESCE(pinned, false)) - 1, count(*)) AS run
      FROM periods GROUP BY window_label, series
), window_findings AS (
    SELECT 'window' AS kind, r.window_label, NULL::text AS symbol, r.series, r.run::int AS run,
           n.bound, s.period_start AS since, n.period_start AS newest, n.symbols,
           r.run = r.n_periods AS run_at_history
      FROM window_runs r
      JOIN periods n ON (n.window_label, n.series, n.prn) = (r.window_label, r.series, 1)
      JOIN periods s ON (s.window_label, s.series, s.prn) = (r.window_label, r.series, r.run)
     WHERE r.run >= 1
)
SELECT kind, window_label, symbol, series, run, bound, since, newest, symbols, run_at_history FROM window_findings
UNION ALL
SELECT kind, window_label, symbol, series, run, bound, since, newest, symbols, run_at_history FROM symbol_findings
ORDER BY kind DESC, window_label, symbol NULLS FIRST, series
