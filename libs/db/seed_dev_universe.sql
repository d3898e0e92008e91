-- SeedDev: add the dev universe ($1 base assets, all quoted in $2). Rows already there are left
-- exactly as they are (an operator may have disabled one), so re-running changes nothing.
-- Returns every dev symbol, in $1's order, and whether this run inserted it.
WITH dev AS (
    SELECT base || $2::text AS symbol, base AS base_asset, $2::text AS quote_asset, ord
      FROM unnest($1::text[]) WITH ORDINALITY AS u(base, ord)
), ins AS (
    INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset)
    SELECT symbol, base_asset, quote_asset FROM dev
    ON CONFLICT (symbol) DO NOTHING
    RETURNING symbol
)
SELECT dev.symbol, ins.symbol IS NOT NULL AS inserted
  FROM dev
  LEFT JOIN ins USING (symbol)
 ORDER BY dev.ord
