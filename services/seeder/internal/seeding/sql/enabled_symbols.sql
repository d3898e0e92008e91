-- The enabled coin universe (a NULL enabled counts as enabled, as operators know it).
SELECT symbol FROM settings.coin_universe WHERE coalesce(enabled, true) ORDER BY symbol
