-- cpctl smoke: enable the smoke symbol $1 (base $2, quoted in USDT).
INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset, enabled) VALUES ($1, $2, 'USDT', true)
