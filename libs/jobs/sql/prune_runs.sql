-- Deletes up to $2 rows of ops.job_run started before $1 (see prune.sql).
DELETE FROM ops.job_run
 WHERE id IN (SELECT id FROM ops.job_run WHERE started_at < $1 LIMIT $2)
