-- ingest: the job table of market-data work, worked by the engine in libs/jobs.

-- +goose Up

-- One row per piece of work. Identity is (kind, dedup_key): the key names what the work is about
-- within its kind ('BTCUSDT', 'BTCUSDT/1h'; '' for kinds that cover the whole universe).
--
-- Uniqueness holds among *live* jobs only (queued or running, see jobs_live_key below), which is
-- what "re-seeding never duplicates work" needs: enqueueing the same work again while a copy is
-- waiting or running is a no-op (INSERT ... ON CONFLICT DO NOTHING), while finished rows stay as
-- history and the same work can be asked for again later. Periodic jobs (period IS NOT NULL) are
-- rescheduled in place on success (back to queued with the next scheduled_for), so a periodic job
-- is one row for its whole life instead of a row per run; a unique (kind, dedup_key) over all rows
-- would have forced the same for one-shot jobs and lost their history.
CREATE TABLE ingest.jobs (
    id               bigserial   PRIMARY KEY,
    kind             text        NOT NULL,
    dedup_key        text        NOT NULL DEFAULT '',
    payload          jsonb       NOT NULL DEFAULT '{}',
    status           text        NOT NULL DEFAULT 'queued',
    -- attempts counts claims: it is raised when a worker takes the job, so a job that kills its
    -- worker still runs out of attempts.
    attempts         integer     NOT NULL DEFAULT 0,
    max_attempts     integer     NOT NULL DEFAULT 5,
    scheduled_for    timestamptz NOT NULL DEFAULT now(),
    -- NULL: one-shot. Otherwise the job runs every period, aligned to its first scheduled_for.
    period           interval,
    started_at       timestamptz,
    finished_at      timestamptz,
    -- Last error, kept on retries and failure; cleared on success.
    error            text,
    -- Set while running: the worker holding the job and until when its claim is valid. A live
    -- worker keeps extending the lease; a job whose lease ran out was left by a dead worker.
    locked_by        text,
    lease_expires_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT jobs_kind_known CHECK (kind IN ('fetch_klines', 'fetch_ticker', 'fetch_orderbook',
        'compute_str_vectors', 'compute_matrices', 'compute_mea')),
    CONSTRAINT jobs_status_known CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    CONSTRAINT jobs_attempts_range CHECK (attempts >= 0 AND max_attempts >= 1),
    CONSTRAINT jobs_period_positive CHECK (period IS NULL OR period > interval '0'),
    CONSTRAINT jobs_running_has_lease CHECK (status <> 'running' OR (locked_by IS NOT NULL AND lease_expires_at IS NOT NULL))
) WITH (fillfactor = 90, autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

COMMENT ON TABLE ingest.jobs IS 'Market-data work (libs/jobs). Unique (kind, dedup_key) among queued and running jobs.';

-- The uniqueness key: at most one live job per (kind, dedup_key).
CREATE UNIQUE INDEX jobs_live_key ON ingest.jobs (kind, dedup_key) WHERE status IN ('queued', 'running');

-- Claiming: due queued jobs in schedule order. Also answers "when is the next job due".
CREATE INDEX jobs_due ON ingest.jobs (scheduled_for, id) WHERE status = 'queued';

-- Lease rescue, lease heartbeats and release on shutdown only look at running jobs.
CREATE INDEX jobs_running_lease ON ingest.jobs (lease_expires_at) WHERE status = 'running';

-- Wake idle workers when work is inserted: one notification per statement, naming the kinds it
-- inserted (workers ignore kinds they have no handler for). Workers re-read the next due time on
-- every wake-up, so future-scheduled inserts reset their timers too.
-- +goose StatementBegin
CREATE FUNCTION ingest.jobs_notify_insert() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    kinds text;
BEGIN
    SELECT string_agg(DISTINCT kind, ',') INTO kinds FROM inserted_jobs;
    IF kinds IS NOT NULL THEN
        PERFORM pg_notify('ingest_jobs', kinds);
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER jobs_notify_insert AFTER INSERT ON ingest.jobs
    REFERENCING NEW TABLE AS inserted_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION ingest.jobs_notify_insert();

-- +goose Down
DROP TABLE IF EXISTS ingest.jobs;
DROP FUNCTION IF EXISTS ingest.jobs_notify_insert();
