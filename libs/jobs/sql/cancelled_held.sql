-- The jobs among $1 (held by an engine) that were cancelled: the engine cancels their handlers'
-- contexts. The fallback for a lost ingest_jobs_cancel notification.
SELECT id FROM ingest.jobs WHERE id = ANY ($1::bigint[]) AND status = 'cancelled'
