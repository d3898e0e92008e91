-- The open time of the newest closed candle stored for (symbol, interval).
SELECT last_open_time FROM market.kline_cursors WHERE symbol = $1 AND interval = $2
