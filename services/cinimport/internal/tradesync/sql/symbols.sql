-- The symbols to sync for scope $1 when none are configured: the enabled coin universe, plus every
-- symbol the scope already has a cursor for (a coin leaving the universe keeps its trades flowing).
SELECT symbol FROM settings.coin_universe WHERE coalesce(enabled, true)
UNION
SELECT symbol FROM market.trade_cursors WHERE account_scope = $1::text
ORDER BY 1
