-- Where a sample's order book came from: straux samples every symbol from a local book fed by the
-- exchange's diff-depth stream, and falls back to a REST depth call for a symbol whose stream is not
-- live. The source and the local book's age say how fresh the sample's book was.

-- +goose Up

-- source: 'stream' (a local book), 'rest' (a REST depth call), NULL for rows written before this
-- migration, for kline backfills (flag kline_backfill) and for samples without a book (reason set).
-- book_age_ms: for 'stream', the time from the local book's newest event to the sample, in
-- milliseconds (the oldest of the period's snapshots); NULL otherwise.
ALTER TABLE str_aux.samples
    ADD COLUMN source      text,
    ADD COLUMN book_age_ms double precision,
    ADD CONSTRAINT samples_source_known CHECK (source IS NULL OR source IN ('stream', 'rest')),
    ADD CONSTRAINT samples_book_age CHECK (book_age_ms IS NULL OR (source = 'stream' AND book_age_ms >= 0));

-- +goose Down
ALTER TABLE str_aux.samples
    DROP CONSTRAINT samples_book_age,
    DROP CONSTRAINT samples_source_known,
    DROP COLUMN book_age_ms,
    DROP COLUMN source;
