-- cpctl smoke: the market the smoke trades are in: an enabled universe symbol (its assets are
-- known, so the importer can make moves of it).
SELECT symbol, quote_asset FROM settings.coin_universe
 WHERE COALESCE(enabled, true) AND symbol !~ '^CPSMOKE'
 ORDER BY quote_asset = 'USDT' DESC, symbol
 LIMIT 1
