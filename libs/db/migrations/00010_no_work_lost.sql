-- Nothing lost: cinimport finds every stored trade whatever its trade time, and a recurring job
-- outlives a failed occurrence.

-- +goose Up

-- The transaction that stored each trade. An import records, per session, the snapshot it read;
-- the next import looks again at exactly the trades that snapshot could not see: those stored by
-- transactions still in progress then or begun since (pg_visible_in_snapshot false), so a trade
-- stored late, whatever its trade time, is found without rescanning older ones. A transaction id,
-- not a sequence or a timestamp: those are taken before commit, in an order commits do not follow,
-- so a watermark on them can pass over a row still being committed. xid8 does not wrap around.
ALTER TABLE market.account_trades ADD COLUMN ingest_xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX account_trades_scope_ingest_idx ON market.account_trades (account_scope, ingest_xid);

-- seen_snapshot: the snapshot the session's last import read; every trade of the session's scope
-- visible in it has been looked at. NULL (cursors from before this column): none has, the next
-- import looks at every trade once.
ALTER TABLE cin_aux.session_import_cursor ADD COLUMN seen_snapshot pg_snapshot;

-- The markets a session's import had to pass over because their quote asset could not be told
-- (not in market.symbols or the universe, no known suffix). Every import retries the ones that
-- have become known since, for the trades at or behind the session's watermark.
CREATE TABLE cin_aux.session_pending_market (
    session_id bigint      NOT NULL REFERENCES cin_aux.rt_session (session_id) ON DELETE CASCADE,
    symbol     text        NOT NULL,
    noted_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, symbol)
);

-- Recurring jobs: a periodic job that runs out of attempts is rescheduled for its next period like
-- a success; the failed occurrence is kept as a failed row of its own (occurrence_of names the
-- live job), so history and status pages show what failed and why.
--   consecutive_failures  occurrences failed in a row (all attempts used); 0 again after a success.
--   last_failed_at        when the last occurrence failed.
--   period_anchor         the due time of the current occurrence, kept across its retries (which
--                         move scheduled_for), so the next occurrence stays on the period grid.
--   occurrence_of         on a failed-occurrence row: the periodic job it was an occurrence of.
ALTER TABLE ingest.jobs
    ADD COLUMN consecutive_failures integer NOT NULL DEFAULT 0,
    ADD COLUMN last_failed_at       timestamptz,
    ADD COLUMN period_anchor        timestamptz,
    ADD COLUMN occurrence_of        bigint;
ALTER TABLE ingest.jobs ADD CONSTRAINT jobs_consecutive_failures_range CHECK (consecutive_failures >= 0);
-- "Which recurring jobs are failing" looks only at those.
CREATE INDEX jobs_failing ON ingest.jobs (kind, consecutive_failures) WHERE consecutive_failures > 0;

-- Failed-occurrence rows are inserted too: only inserts of queued work wake the engines.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION ingest.jobs_notify_insert() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    kinds text;
BEGIN
    SELECT string_agg(DISTINCT kind, ',') INTO kinds FROM inserted_jobs WHERE status = 'queued';
    IF kinds IS NOT NULL THEN
        PERFORM pg_notify('ingest_jobs', kinds);
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION ingest.jobs_notify_insert() RETURNS trigger
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
DROP INDEX ingest.jobs_failing;
ALTER TABLE ingest.jobs DROP CONSTRAINT jobs_consecutive_failures_range,
    DROP COLUMN occurrence_of, DROP COLUMN period_anchor, DROP COLUMN last_failed_at,
    DROP COLUMN consecutive_failures;
DROP TABLE cin_aux.session_pending_market;
ALTER TABLE cin_aux.session_import_cursor DROP COLUMN seen_snapshot;
DROP INDEX market.account_trades_scope_ingest_idx;
ALTER TABLE market.account_trades DROP COLUMN ingest_xid;
