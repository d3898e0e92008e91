-- ops.job_run: one row per run of a job (every occurrence, every attempt) and per one-shot command
-- (`cinimport once`, `seeder once`), as the old admin page of recent job runs read. And
-- ops.job_pause: job kinds no engine claims until resumed (cpctl jobs pause, cpctl freeze).

-- +goose Up

-- Written by the job engine (libs/jobs) when it records a batch of outcomes, and by the one-shot
-- commands at their start (status running) and end. job_id has no foreign key: finished jobs are
-- pruned (the engine's retention prunes these rows on the same horizon).
CREATE TABLE ops.job_run (
    id          bigserial   PRIMARY KEY,
    -- The ingest.jobs row the run was of; NULL for a one-shot command.
    job_id      bigint,
    -- A job kind, or 'oneshot' for a one-shot command.
    kind        text        NOT NULL,
    -- What ran: a job's dedup key ('' for the universe-wide kinds), or the one-shot command line
    -- ('cinimport once -full').
    name        text        NOT NULL,
    -- The job's attempt number for this run (from 1); NULL for a one-shot.
    attempt     integer,
    --   running    a one-shot in progress (or one whose process died: finished_at stays NULL)
    --   succeeded  done
    --   failed     failed for good (attempts used up, a permanent error, a one-shot's error)
    --   retry      the attempt failed and the job is queued for another
    --   cancelled  an operator cancelled the job while it ran; its handler's context was cancelled
    --   released   interrupted by its engine's shutdown and handed back, not counted as an attempt
    --   abandoned  its outcome was dropped: the job's lease had expired and it was rescued elsewhere
    status      text        NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    duration    interval GENERATED ALWAYS AS (finished_at - started_at) STORED,
    error       text,
    -- ops.session_log id of the process that ran it, and for jobs the engine run that claimed it.
    session_id  bigint,
    worker      text,
    CONSTRAINT job_run_status_known CHECK (status IN ('running', 'succeeded', 'failed', 'retry', 'cancelled',
        'released', 'abandoned')),
    CONSTRAINT job_run_finished CHECK ((status = 'running') = (finished_at IS NULL))
);
COMMENT ON TABLE ops.job_run IS 'Runs of jobs (libs/jobs engine) and of one-shot commands; pruned with the job retention.';
-- Recent runs, of one kind, of one job; retention deletes by started_at.
CREATE INDEX job_run_started_idx ON ops.job_run (started_at DESC);
CREATE INDEX job_run_kind_started_idx ON ops.job_run (kind, started_at DESC);
CREATE INDEX job_run_job_idx ON ops.job_run (job_id, started_at DESC) WHERE job_id IS NOT NULL;

-- A kind is paused while it has at least one row here. source says who paused it: 'operator'
-- (cpctl jobs pause) or the freeze flag whose freeze paused it ('freeze', 'freeze.straux'), so an
-- unfreeze lifts exactly the pauses its freeze made and never one an operator made by hand.
CREATE TABLE ops.job_pause (
    kind      text        NOT NULL,
    source    text        NOT NULL,
    reason    text        NOT NULL DEFAULT '',
    paused_at timestamptz NOT NULL DEFAULT now(),
    paused_by text        NOT NULL DEFAULT current_user,
    PRIMARY KEY (kind, source),
    CONSTRAINT job_pause_kind_known CHECK (kind IN ('fetch_klines', 'fetch_ticker', 'fetch_orderbook',
        'compute_str_vectors', 'compute_matrices', 'compute_mea')),
    CONSTRAINT job_pause_source CHECK (source = 'operator' OR source = 'freeze' OR source LIKE 'freeze.%')
);
COMMENT ON TABLE ops.job_pause IS 'Paused job kinds: no engine claims a kind with a row here (libs/jobs Pause, cpctl freeze).';

-- Operators list jobs newest first, by kind and status.
CREATE INDEX jobs_kind_id_idx ON ingest.jobs (kind, id DESC);
-- Retention deletes finished jobs by finish time.
CREATE INDEX jobs_finished_idx ON ingest.jobs (finished_at) WHERE status IN ('succeeded', 'failed', 'cancelled');

-- +goose Down
DROP INDEX ingest.jobs_finished_idx;
DROP INDEX ingest.jobs_kind_id_idx;
DROP TABLE ops.job_pause;
DROP TABLE ops.job_run;
