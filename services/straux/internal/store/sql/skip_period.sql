-- Mark a period that was never planned as skipped ($5 the reason). Returns a row only if this
-- call marked it.
INSERT INTO str_aux.tick_periods (period_start, period, status, universe_size, planned_by, reason, completed_at)
VALUES ($1, make_interval(secs => $2::bigint / 1e6), 'skipped', $3, $4, $5, now())
ON CONFLICT (period_start) DO NOTHING
RETURNING period_start
