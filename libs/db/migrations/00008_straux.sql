-- str_aux coordination: how straux replicas share a tick. The first replica to see a tick writes
-- its plan (the period row and one claim row per symbol to sample); every replica then claims
-- symbols with a lease (FOR UPDATE SKIP LOCKED), samples them, and marks them done in the same
-- transaction that writes their rows, so each symbol is sampled exactly once per period. A
-- replica that dies leaves leased claims behind; once the lease runs out, another takes them over.

-- +goose Up

-- One row per tick period: the plan straux made for it and how it ended.
CREATE TABLE str_aux.tick_periods (
    period_start    timestamptz PRIMARY KEY,
    period          interval    NOT NULL,
    -- planned: claims are being worked; done: every claim is done; skipped: the tick came too
    -- late (a newer period had started) and was not sampled.
    status          text        NOT NULL,
    universe_size   integer     NOT NULL DEFAULT 0,
    planned_symbols integer     NOT NULL DEFAULT 0,
    -- Rotation: where this tick's slice starts in the sorted universe, and how many ticks cover
    -- the whole universe (1 when everything fits the weight budget).
    rotation_offset integer     NOT NULL DEFAULT 0,
    rotation_rounds integer     NOT NULL DEFAULT 1,
    planned_weight  integer     NOT NULL DEFAULT 0,
    tick_budget     integer     NOT NULL DEFAULT 0,
    planned_by      text        NOT NULL,
    planned_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    reason          text,
    CONSTRAINT tick_periods_status CHECK (status IN ('planned', 'done', 'skipped')),
    CONSTRAINT tick_periods_period_positive CHECK (period > interval '0')
);

-- One row per symbol of a planned period. claimed_by/lease_until are set while a replica works
-- it; done_at is set in the transaction that writes the symbol's sample.
CREATE TABLE str_aux.tick_claims (
    period_start timestamptz NOT NULL REFERENCES str_aux.tick_periods (period_start) ON DELETE CASCADE,
    symbol       text        NOT NULL,
    claimed_by   text,
    lease_until  timestamptz,
    attempts     integer     NOT NULL DEFAULT 0,
    done_by      text,
    done_at      timestamptz,
    -- sampled, failed (recorded with its reason in str_aux.samples) or abandoned (attempts used up).
    outcome      text,
    PRIMARY KEY (period_start, symbol),
    CONSTRAINT tick_claims_outcome CHECK (outcome IS NULL OR outcome IN ('sampled', 'failed', 'abandoned')),
    CONSTRAINT tick_claims_done CHECK ((done_at IS NULL) = (outcome IS NULL))
);
-- Claiming looks only at the open claims of a period.
CREATE INDEX tick_claims_open_idx ON str_aux.tick_claims (period_start, symbol) WHERE done_at IS NULL;

-- History backfills from klines (a symbol with too few samples for its windows): when each
-- symbol was last backfilled, so replicas do not repeat it every tick.
CREATE TABLE str_aux.backfills (
    symbol        text        PRIMARY KEY,
    from_ts       timestamptz NOT NULL,
    through_ts    timestamptz NOT NULL,
    samples_added integer     NOT NULL,
    backfilled_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE str_aux.backfills;
DROP TABLE str_aux.tick_claims;
DROP TABLE str_aux.tick_periods;
