-- The status of a tick period ('planned', 'done', 'skipped'); no row: never seen.
SELECT status FROM str_aux.tick_periods WHERE period_start = $1
