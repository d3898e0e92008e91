-- The enabled universe as settings.coin_universe says it (a NULL enabled counts as enabled).
SELECT symbol FROM settings.coin_universe WHERE COALESCE(enabled, true) ORDER BY symbol
