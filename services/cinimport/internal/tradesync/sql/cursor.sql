-- The myTrades fromId cursor of scope $1 and symbol $2: the highest trade id stored.
SELECT last_trade_id FROM market.trade_cursors WHERE account_scope = $1::text AND symbol = $2::text
