INSERT INTO str_aux.backfills (symbol, from_ts, through_ts, samples_added)
VALUES ($1, $2, $3, $4)
ON CONFLICT (symbol) DO UPDATE SET from_ts = EXCLUDED.from_ts, through_ts = EXCLUDED.through_ts,
    samples_added = EXCLUDED.samples_added, backfilled_at = now()
