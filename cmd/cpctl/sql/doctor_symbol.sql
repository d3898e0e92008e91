-- cpctl doctor: a symbol to make the signed test call with (the first enabled one).
SELECT symbol FROM settings.coin_universe WHERE COALESCE(enabled, true) ORDER BY symbol LIMIT 1
