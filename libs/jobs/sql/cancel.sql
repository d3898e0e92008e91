-- Cancels live jobs matching every given criterion: $1 kinds (empty: any), $2 exact keys (empty:
-- any), $3 key prefix ('': any), $4 payload containment (NULL: any). A running job is cancelled
-- too: its handler finishes its current run, but the outcome is dropped and a periodic job is not
-- rescheduled. Rows are locked in id order, the order in which the engine's completer locks them,
-- so the two cannot deadlock.
UPDATE ingest.jobs
   SET status           = 'cancelled',
       finished_at      = now(),
       locked_by        = NULL,
       lease_expires_at = NULL,
       updated_at       = now()
 WHERE id IN (SELECT id
                FROM ingest.jobs
               WHERE status IN ('queued', 'running')
                 AND (cardinality($1::text[]) = 0 OR kind = ANY ($1::text[]))
                 AND (cardinality($2::text[]) = 0 OR dedup_key = ANY ($2::text[]))
                 AND ($3::text = '' OR starts_with(dedup_key, $3::text))
                 AND ($4::jsonb IS NULL OR payload @> $4::jsonb)
               ORDER BY id
                 FOR UPDATE)
