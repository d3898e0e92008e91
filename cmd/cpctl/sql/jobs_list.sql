-- cpctl jobs list: jobs newest first. $1 kind ('' any), $2 status ('' any), $3 symbol ('' any:
-- the payload's symbol, the key itself, or a key starting SYMBOL/), $4 changed at or after (NULL:
-- any), $5 changed within the last $5 µs (0: any), $6 limit.
SELECT id, kind, dedup_key, status, attempts, max_attempts, scheduled_for, started_at, finished_at,
       coalesce(error, ''), coalesce(extract(epoch FROM period), 0)::float8, consecutive_failures,
       occurrence_of, updated_at
  FROM ingest.jobs
 WHERE ($1 = '' OR kind = $1)
   AND ($2 = '' OR status = $2)
   AND ($3 = '' OR payload ->> 'symbol' = $3 OR dedup_key = $3 OR starts_with(dedup_key, $3 || '/'))
   AND ($4::timestamptz IS NULL OR updated_at >= $4)
   AND ($5::bigint = 0 OR updated_at >= now() - $5 * interval '1 microsecond')
 ORDER BY id DESC
 LIMIT $6
