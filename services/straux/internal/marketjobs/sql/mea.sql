-- MEA ("mood") of the newest id_pct grid at or before $1, in one statement (DOMAIN.md §3): the
-- tier of every pair, then the weight of every coin. Returns the grid's ts and the rows written.
--
-- Pairs: z = |id_pct| (the size of the move since the previous grid; the original stored id_pct
-- as a ratio and wrote |id_pct − 1|), tiers by z: flat < $2 ≤ slight < $3 ≤ normal < $4 ≤ high
-- < $5 ≤ extreme, weighted 0.2 / 0.4 / 1.0 / 1.5 / 2.0; a pair without id_pct (first grid) is flat.
-- Coins (each base of the grid, n of them):
--   weight = balance × (Σ tier weights of its pairs / (n − 1)) × moodCoeff × n,
--   capped at $8 × mean balance, moodCoeff = clamp(vTendency/GFM + vSwap, 0.2, 2.0) from the newest
--   vectors and statistics of its $9-quoted symbol in the shortest enabled window (vTendency and
--   vSwap on their ±100 scale, GFM the absolute gfm_abs); 1.0 when it has none (the quote asset
--   itself, a coin without vectors yet). Balances come from $6/$7 (coin, balance); 1 when absent.
WITH grid AS (
    SELECT max(ts) AS ts FROM str_aux.matrices WHERE matrix_type = 'id_pct' AND ts <= $1
), pairs AS (
    SELECT m.ts, m.base, m.quote, m.value::float8 AS id_pct, abs(m.value::float8) AS z
      FROM str_aux.matrices m JOIN grid g ON m.ts = g.ts
     WHERE m.matrix_type = 'id_pct'
), tiered AS (
    SELECT p.*, t.tier, t.tier_weight
      FROM pairs p
     CROSS JOIN LATERAL (SELECT CASE
                WHEN p.z IS NULL OR p.z < $2 THEN 'flat'
                WHEN p.z < $3 THEN 'slight'
                WHEN p.z < $4 THEN 'normal'
                WHEN p.z < $5 THEN 'high'
                ELSE 'extreme' END AS tier) AS tt
     CROSS JOIN LATERAL (SELECT tt.tier, CASE tt.tier WHEN 'flat' THEN 0.2 WHEN 'slight' THEN 0.4
                WHEN 'normal' THEN 1.0 WHEN 'high' THEN 1.5 ELSE 2.0 END::float8 AS tier_weight) AS t
), ins_pairs AS (
    INSERT INTO str_aux.mea (ts, base, quote, id_pct, z, tier, tier_weight)
    SELECT ts, base, quote, id_pct, z, tier, tier_weight FROM tiered
    ON CONFLICT (ts, base, quote) DO UPDATE SET id_pct = EXCLUDED.id_pct, z = EXCLUDED.z,
        tier = EXCLUDED.tier, tier_weight = EXCLUDED.tier_weight
    RETURNING 1
), coins AS (
    SELECT ts, base AS coin, sum(tier_weight) AS tier_sum FROM tiered GROUP BY ts, base
), n AS (
    SELECT count(*)::float8 AS n FROM coins
), balances AS (
    SELECT c.ts, c.coin, c.tier_sum, COALESCE(b.balance, 1)::numeric AS balance
      FROM coins c LEFT JOIN unnest($6::text[], $7::numeric[]) AS b(coin, balance) ON b.coin = c.coin
), shortest AS (
    SELECT label FROM settings.windows WHERE enabled ORDER BY duration, label LIMIT 1
), mood AS (
    SELECT b.*,
           -- GREATEST and LEAST skip NULLs: test for missing inputs explicitly.
           CASE WHEN v.v_tendency IS NULL OR v.v_swap IS NULL OR COALESCE(st.gfm_abs, 0) = 0 THEN 1.0
                ELSE LEAST(2.0, GREATEST(0.2, v.v_tendency / st.gfm_abs::float8 + v.v_swap)) END AS mood_coeff
      FROM balances b
      LEFT JOIN shortest w ON true
      LEFT JOIN LATERAL (SELECT x.v_tendency, x.v_swap, x.period_start FROM str_aux.window_vectors x
                          WHERE x.symbol = b.coin || $9 AND x.window_label = w.label
                            AND x.period_start <= b.ts AND x.reason IS NULL
                          ORDER BY x.period_start DESC LIMIT 1) AS v ON true
      LEFT JOIN str_aux.window_stats st
             ON st.symbol = b.coin || $9 AND st.window_label = w.label AND st.period_start = v.period_start
), weights AS (
    SELECT m.*, (m.balance::float8 * (m.tier_sum / NULLIF(n.n - 1, 0)) * m.mood_coeff * n.n) AS raw,
           $8::float8 * avg(m.balance::float8) OVER () AS cap
      FROM mood m CROSS JOIN n
), ins_coins AS (
    INSERT INTO str_aux.mea_coins (ts, coin, balance, tier_sum, mood_coeff, weight, capped)
    SELECT ts, coin, balance, tier_sum, mood_coeff, COALESCE(LEAST(raw, cap), 0)::numeric, COALESCE(raw > cap, false) FROM weights
    ON CONFLICT (ts, coin) DO UPDATE SET balance = EXCLUDED.balance, tier_sum = EXCLUDED.tier_sum,
        mood_coeff = EXCLUDED.mood_coeff, weight = EXCLUDED.weight, capped = EXCLUDED.capped
    RETURNING 1
)
SELECT (SELECT ts FROM grid), (SELECT count(*) FROM ins_pairs), (SELECT count(*) FROM ins_coins)
