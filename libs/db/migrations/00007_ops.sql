-- ops: what operators look at. Every process stamps its start; flags are switches operators set.

-- +goose Up

CREATE TABLE ops.session_log (
    id         bigserial   PRIMARY KEY,
    service    text        NOT NULL,
    version    text        NOT NULL,
    host       text        NOT NULL,
    pid        integer     NOT NULL,
    env        text        NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    extra      jsonb       NOT NULL DEFAULT '{}',
    CONSTRAINT session_log_service CHECK (service <> ''),
    CONSTRAINT session_log_extra_object CHECK (jsonb_typeof(extra) = 'object')
);
-- Monitoring asks for the latest starts of each service.
CREATE INDEX session_log_service_started_idx ON ops.session_log (service, started_at DESC);

CREATE TABLE ops.session_flags (
    key        text        PRIMARY KEY,
    value      text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text        NOT NULL DEFAULT current_user
);

-- +goose Down
DROP TABLE ops.session_flags;
DROP TABLE ops.session_log;
