-- cpctl jobs retry -kind: the failed jobs of kind $1 (the progress bar's total).
SELECT count(*) FROM ingest.jobs WHERE kind = $1 AND status = 'failed'
