-- Record a tick period's plan unless one exists. The primary key serialises concurrent planners:
-- a second replica waits for the first's transaction and then inserts nothing.
-- $1 period_start, $2 period (µs), $3 universe size, $4 planned symbols, $5 rotation offset,
-- $6 rounds, $7 planned weight, $8 tick budget, $9 replica.
INSERT INTO str_aux.tick_periods (period_start, period, status, universe_size, planned_symbols,
                                  rotation_offset, rotation_rounds, planned_weight, tick_budget, planned_by)
VALUES ($1, make_interval(secs => $2::bigint / 1e6), 'planned', $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (period_start) DO NOTHING
RETURNING period_start
