-- Tells every engine's listener that jobs of kinds $1 (comma-separated) are due now: sent for
-- work put back in the queue (released at a stop, rescued after a lost lease), as the insert
-- trigger does for new work.
SELECT pg_notify('ingest_jobs', $1)
