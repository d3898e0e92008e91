-- The claim rows of a new plan, one per symbol.
INSERT INTO str_aux.tick_claims (period_start, symbol)
SELECT $1, symbol FROM unnest($2::text[]) AS u(symbol)
ON CONFLICT DO NOTHING
