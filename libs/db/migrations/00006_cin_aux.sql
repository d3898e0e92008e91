-- cin_aux: trading sessions and the moves imported into them from market.account_trades.

-- +goose Up

-- A session opens (status OPEN, started_at) and later closes (status CLOSED, closed_at). The
-- importer finds its sessions by status, so the lifecycle is explicit and its defaults are here.
CREATE TABLE cin_aux.rt_session (
    session_id    bigserial   PRIMARY KEY,
    account_scope text        NOT NULL DEFAULT 'default',
    label         text,
    status        text        NOT NULL DEFAULT 'OPEN',
    started_at    timestamptz NOT NULL DEFAULT now(),
    closed_at     timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT rt_session_status CHECK (status IN ('OPEN', 'CLOSED')),
    -- OPEN has no closed_at; CLOSED has one, not before the start. (Any other status is left to
    -- rt_session_status, so its error names the real problem.)
    CONSTRAINT rt_session_closed_at CHECK (
        CASE status
            WHEN 'OPEN' THEN closed_at IS NULL
            WHEN 'CLOSED' THEN closed_at IS NOT NULL AND closed_at >= started_at
        END)
);
-- Every import pass starts with the OPEN sessions of a scope.
CREATE INDEX rt_session_open_idx ON cin_aux.rt_session (account_scope, started_at) WHERE status = 'OPEN';
-- The change relay publishes old values of updated and deleted rows.
ALTER TABLE cin_aux.rt_session REPLICA IDENTITY FULL;

-- One move per account trade and session. BUY moves quote → base, SELL base → quote; USDT amounts
-- are NULL where no USDT price was known at import.
--
-- Bulk imports write up to a million rows at a time, so this table carries exactly one index, its
-- natural key: move_id is a sequence number in import order, not a second indexed key, and
-- session_id has no foreign key (a per-row RI check nearly doubles the insert time). The importer
-- takes session ids from rt_session in the same statement; deleting a session deletes its moves
-- through rt_session_delete_moves below.
CREATE TABLE cin_aux.rt_move (
    move_id       bigserial   NOT NULL,
    session_id    bigint      NOT NULL,
    src_symbol    text        NOT NULL,
    src_trade_id  bigint      NOT NULL,
    side          text        NOT NULL,
    from_asset    text        NOT NULL,
    to_asset      text        NOT NULL,
    from_qty      numeric     NOT NULL,
    to_qty        numeric     NOT NULL,
    price         numeric     NOT NULL,
    executed_usdt numeric,
    fee_asset     text,
    fee_qty       numeric,
    fee_usdt      numeric,
    trade_time    timestamptz NOT NULL,
    imported_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT rt_move_pkey PRIMARY KEY (session_id, src_symbol, src_trade_id),
    CONSTRAINT rt_move_side CHECK (side IN ('BUY', 'SELL')),
    CONSTRAINT rt_move_assets CHECK (from_asset <> to_asset),
    CONSTRAINT rt_move_quantities CHECK (from_qty >= 0 AND to_qty >= 0 AND price > 0)
);

-- +goose StatementBegin
CREATE FUNCTION cin_aux.delete_session_moves() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM cin_aux.rt_move m USING gone g WHERE m.session_id = g.session_id;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER rt_session_delete_moves AFTER DELETE ON cin_aux.rt_session
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION cin_aux.delete_session_moves();

-- Import watermark per session: the newest trade already imported, in (trade_time, symbol, trade_id)
-- order, so a re-run reads only what came after it instead of every trade of the scope.
CREATE TABLE cin_aux.session_import_cursor (
    session_id      bigint      PRIMARY KEY REFERENCES cin_aux.rt_session (session_id) ON DELETE CASCADE,
    last_trade_time timestamptz NOT NULL,
    last_symbol     text        NOT NULL,
    last_trade_id   bigint      NOT NULL,
    moves_imported  bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE cin_aux.session_import_cursor;
DROP TRIGGER rt_session_delete_moves ON cin_aux.rt_session;
DROP FUNCTION cin_aux.delete_session_moves();
DROP TABLE cin_aux.rt_move;
DROP TABLE cin_aux.rt_session;
