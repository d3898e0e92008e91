-- The symbols of $1 not backfilled within the last $2 µs.
SELECT u.symbol
  FROM unnest($1::text[]) AS u(symbol)
 WHERE NOT EXISTS (SELECT 1 FROM str_aux.backfills b
                    WHERE b.symbol = u.symbol
                      AND b.backfilled_at > now() - make_interval(secs => $2::bigint / 1e6))
