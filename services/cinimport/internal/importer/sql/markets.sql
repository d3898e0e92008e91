-- The markets whose base and quote asset are known: exchangeInfo's (market.symbols), then the
-- universe's for symbols exchangeInfo has not listed.
SELECT symbol, base_asset, quote_asset FROM market.symbols
UNION ALL
SELECT symbol, base_asset, quote_asset
  FROM settings.coin_universe cu
 WHERE NOT EXISTS (SELECT 1 FROM market.symbols ms WHERE ms.symbol = cu.symbol)
