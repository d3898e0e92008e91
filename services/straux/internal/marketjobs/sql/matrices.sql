-- The whole pair grid at ts $1 in one statement (DOMAIN.md §3), for the coins of universe symbols
-- $2, priced in quote asset $3 (USDT), with $4 the start of the day whose first grid is the
-- opening reference.
--
-- benchmark bm(base, quote): the price of base in quote — the newest good sample at or before ts
--   of the direct market base‖quote when the universe samples one, else through the $3 legs:
--   px(base)/px(quote), px($3) = 1.
-- id_pct  = (bm_now − bm_prev)/bm_prev, bm_prev from the newest earlier grid;
-- pct_drv = id_pct_now − id_pct_prev;
-- pct_ref = (bm_open − bm_now)/bm_open, bm_open from the day's first grid (this one if first);
-- ref     = pct_ref·id_pct;
-- delta   = bm_now − bm_open·(1 + ref).
-- Undefined values (no earlier grid) are NULL. Every grid row is upserted: a re-run rewrites.
WITH coins AS (
    SELECT base_asset AS coin FROM settings.coin_universe WHERE symbol = ANY($2::text[])
    UNION
    SELECT quote_asset FROM settings.coin_universe WHERE symbol = ANY($2::text[])
), px AS (
    SELECT c.coin,
           CASE WHEN c.coin = $3 THEN 1::numeric ELSE (
               SELECT s.mid FROM str_aux.samples s
                WHERE s.symbol = c.coin || $3 AND s.period_start <= $1 AND s.mid IS NOT NULL
                ORDER BY s.period_start DESC LIMIT 1) END AS usd
      FROM coins c
), direct AS (
    SELECT u.symbol, (SELECT s.mid FROM str_aux.samples s
                       WHERE s.symbol = u.symbol AND s.period_start <= $1 AND s.mid IS NOT NULL
                       ORDER BY s.period_start DESC LIMIT 1) AS mid
      FROM unnest($2::text[]) AS u(symbol)
), grid AS (
    SELECT b.coin AS base, q.coin AS quote,
           COALESCE(d.mid, CASE WHEN q.usd > 0 THEN b.usd / q.usd END) AS bm
      FROM px b
      JOIN px q ON b.coin <> q.coin
      LEFT JOIN direct d ON d.symbol = b.coin || q.coin
), prev_ts AS (
    SELECT max(ts) AS ts FROM str_aux.matrices WHERE matrix_type = 'benchmark' AND ts < $1
), open_ts AS (
    SELECT COALESCE(min(ts), $1) AS ts FROM str_aux.matrices
     WHERE matrix_type = 'benchmark' AND ts >= $4 AND ts <= $1
), calc AS (
    SELECT g.base, g.quote, g.bm, o.bm_open,
           (g.bm - p.value) / NULLIF(p.value, 0) AS id_pct,
           pid.value AS id_pct_prev
      FROM grid g
      CROSS JOIN prev_ts
      CROSS JOIN open_ts
      LEFT JOIN str_aux.matrices p
             ON p.ts = prev_ts.ts AND p.matrix_type = 'benchmark' AND p.base = g.base AND p.quote = g.quote
      LEFT JOIN str_aux.matrices pid
             ON pid.ts = prev_ts.ts AND pid.matrix_type = 'id_pct' AND pid.base = g.base AND pid.quote = g.quote
      LEFT JOIN str_aux.matrices om
             ON om.ts = open_ts.ts AND open_ts.ts < $1 AND om.matrix_type = 'benchmark'
            AND om.base = g.base AND om.quote = g.quote
      CROSS JOIN LATERAL (SELECT CASE WHEN open_ts.ts = $1 THEN g.bm ELSE om.value END AS bm_open) AS o
     WHERE g.bm IS NOT NULL
), vals AS (
    SELECT c.base, c.quote, c.bm, c.bm_open, c.id_pct, c.id_pct - c.id_pct_prev AS pct_drv,
           (c.bm_open - c.bm) / NULLIF(c.bm_open, 0) AS pct_ref
      FROM calc c
)
INSERT INTO str_aux.matrices (ts, matrix_type, base, quote, value)
SELECT $1, t.matrix_type, v.base, v.quote, t.value
  FROM vals v
 CROSS JOIN LATERAL (VALUES
        ('benchmark', v.bm),
        ('id_pct', v.id_pct),
        ('pct_drv', v.pct_drv),
        ('pct_ref', v.pct_ref),
        ('ref', v.pct_ref * v.id_pct),
        ('delta', v.bm - v.bm_open * (1 + v.pct_ref * v.id_pct))
       ) AS t(matrix_type, value)
ON CONFLICT (ts, matrix_type, base, quote) DO UPDATE SET value = EXCLUDED.value
