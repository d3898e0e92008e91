-- A skipped period leaves a sample row per universe symbol that has none, with the reason.
INSERT INTO str_aux.samples (symbol, period_start, reason)
SELECT symbol, $1, $3 FROM unnest($2::text[]) AS u(symbol)
ON CONFLICT (symbol, period_start) DO NOTHING
