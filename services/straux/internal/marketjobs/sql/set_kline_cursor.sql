-- Move the cursor forward (never back: a late, shorter page cannot rewind it).
INSERT INTO market.kline_cursors (symbol, interval, last_open_time, updated_at)
VALUES ($1, $2, $3, now())
ON CONFLICT (symbol, interval) DO UPDATE SET
    last_open_time = GREATEST(market.kline_cursors.last_open_time, EXCLUDED.last_open_time), updated_at = now()
