-- The newest good sample before $2 of each symbol in $1 (NULL: none), for irregular_spacing.
SELECT u.symbol,
       (SELECT max(s.period_start) FROM str_aux.samples s
         WHERE s.symbol = u.symbol AND s.period_start < $2 AND s.mid IS NOT NULL)
  FROM unnest($1::text[]) AS u(symbol)
