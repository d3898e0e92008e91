package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cryptopill.dev/jobs/libs/db"
	"cryptopill.dev/jobs/libs/jobs"
	"cryptopill.dev/jobs/libs/progress"
)

// `cpctl jobs`: list, show, retry, cancel, prune, pause and resume the jobs of ingest.jobs. The
// actions are libs/jobs' (the web console calls the same); this file parses, prints and exits.

const jobsUsage = `usage: cpctl jobs <action> [flags]

  list   [-kind K] [-status S] [-symbol SYM] [-since 1h|RFC3339] [-limit N]
         jobs newest first, with the paused kinds and frozen modules (the default action)
  show   ID                       one job: payload, attempts, error, failed occurrences, runs
  retry  ID | -kind K -failed     put a failed or cancelled job (or every failed job of a kind) back in the queue
  cancel ID                       cancel a queued or running job (a running handler's context is cancelled)
  prune  -older-than D            delete finished jobs and job runs older than D (engines also do it: JOBS_RETENTION)
  pause  KIND [-reason TEXT]      no engine claims KIND until it is resumed
  resume KIND                     lift the pause made with pause (a freeze's pause stays: cpctl unfreeze)

Every action takes --database-url (default $DATABASE_URL) and --json. Exit status: 0 done, 1 the
action was refused or failed, 2 usage error or Postgres / NATS unreachable.
`

func runJobs(ctx context.Context, args []string) int {
	return jobsCommand(ctx, args, processEnv())
}

func jobsCommand(ctx context.Context, args []string, env cmdEnv) int {
	action := "list"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		action, args = args[0], args[1:]
	}
	if action == "help" {
		fmt.Fprint(env.stdout, jobsUsage)
		return jobsExitOK
	}
	run, ok := map[string]func(context.Context, *jobsCmd) error{
		"list": jobsList, "show": jobsShow, "retry": jobsRetry, "cancel": jobsCancel,
		"prune": jobsPrune, "pause": jobsPause, "resume": jobsResume,
	}[action]
	if !ok {
		fmt.Fprint(env.stderr, jobsUsage)
		return connStatus(env, "jobs", usageErrorf("unknown action %q", action))
	}
	c := &jobsCmd{env: env, name: "jobs " + action, fs: flag.NewFlagSet("jobs "+action, flag.ContinueOnError)}
	c.fs.SetOutput(env.stderr)
	c.fs.Usage = func() {
		fmt.Fprint(env.stderr, jobsUsage, "\nflags of ", action, ":\n")
		c.fs.PrintDefaults()
	}
	c.db.register(c.fs)
	c.fs.BoolVar(&c.json, "json", false, "print one JSON document instead of a table")
	c.setup = func() error {
		pos, err := parseInterleaved(c.fs, args)
		if err != nil {
			return err
		}
		c.args = pos
		return nil
	}
	err := run(ctx, c)
	if c.pool != nil {
		c.pool.Close()
	}
	var ferr flagParseError
	if errors.As(err, &ferr) {
		return flagStatus(ferr.err)
	}
	if isUsageError(err) {
		c.fs.Usage()
	}
	return connStatus(env, c.name, err)
}

// jobsCmd is one jobs action being run: its flags, positional arguments and connection.
type jobsCmd struct {
	env   cmdEnv
	name  string
	fs    *flag.FlagSet
	db    databaseFlag
	json  bool
	args  []string
	setup func() error
	pool  *pgxpool.Pool
}

// flagParseError is a flag the flag package has reported already (with the usage).
type flagParseError struct{ err error }

func (e flagParseError) Error() string { return e.err.Error() }

// parse parses the flags and wants exactly nargs positional arguments, named by what.
func (c *jobsCmd) parse(nargs int, what string) error {
	if err := c.setup(); err != nil {
		return flagParseError{err}
	}
	if len(c.args) != nargs {
		if nargs == 0 {
			return usageErrorf("unexpected arguments %q", c.args)
		}
		return usageErrorf("want %s, got %q", what, c.args)
	}
	return nil
}

func (c *jobsCmd) connect(ctx context.Context) error {
	url, err := c.db.resolve(c.env)
	if err != nil {
		return err
	}
	pool, err := db.Open(ctx, url)
	if err != nil {
		return connError{err: err}
	}
	c.pool = pool
	return nil
}

func parseJobID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usageErrorf("job id %q: want a positive integer (the ID column of cpctl jobs list)", s)
	}
	return id, nil
}

func parseKind(s string) (jobs.Kind, error) {
	k := jobs.Kind(s)
	if !k.Valid() {
		return "", usageErrorf("unknown kind %q (want one of %s)", s, kindList(jobs.Kinds()))
	}
	return k, nil
}

// jobView is a job as cpctl shows it.
type jobView struct {
	ID                  int64           `json:"id"`
	Kind                string          `json:"kind"`
	Key                 string          `json:"key"`
	Status              string          `json:"status"`
	Attempts            int             `json:"attempts"`
	MaxAttempts         int             `json:"max_attempts"`
	ScheduledFor        time.Time       `json:"scheduled_for"`
	StartedAt           *time.Time      `json:"started_at,omitempty"`
	FinishedAt          *time.Time      `json:"finished_at,omitempty"`
	Error               string          `json:"error,omitempty"`
	PeriodSeconds       float64         `json:"period_seconds,omitempty"`
	ConsecutiveFailures int             `json:"consecutive_failures,omitempty"`
	OccurrenceOf        *int64          `json:"occurrence_of,omitempty"`
	UpdatedAt           time.Time       `json:"updated_at"`
	Payload             json.RawMessage `json:"payload,omitempty"`
	CreatedAt           *time.Time      `json:"created_at,omitempty"`
	LockedBy            *string         `json:"locked_by,omitempty"`
	LeaseExpiresAt      *time.Time      `json:"lease_expires_at,omitempty"`
	LastFailedAt        *time.Time      `json:"last_failed_at,omitempty"`
}

func (j *jobView) listFields() []any {
	return []any{&j.ID, &j.Kind, &j.Key, &j.Status, &j.Attempts, &j.MaxAttempts, &j.ScheduledFor, &j.StartedAt,
		&j.FinishedAt, &j.Error, &j.PeriodSeconds, &j.ConsecutiveFailures, &j.OccurrenceOf, &j.UpdatedAt}
}

// jobsListReport is `jobs list --json`.
type jobsListReport struct {
	Jobs   []jobView        `json:"jobs"`
	Paused []jobs.KindPause `json:"paused"`
	// Frozen are the set freeze flags; FrozenError says why they could not be read (NATS).
	Frozen      []frozenModule `json:"frozen"`
	FrozenError string         `json:"frozen_error,omitempty"`
}

func jobsList(ctx context.Context, c *jobsCmd) error {
	var (
		kind, status, symbol, since string
		limit                       int
		natsURL                     natsFlag
		bucket                      string
	)
	c.fs.StringVar(&kind, "kind", "", "only jobs of this kind")
	c.fs.StringVar(&status, "status", "", "only jobs in this status (queued, running, succeeded, failed, cancelled)")
	c.fs.StringVar(&symbol, "symbol", "", "only jobs of this symbol (payload symbol, or key SYMBOL or SYMBOL/…)")
	c.fs.StringVar(&since, "since", "", "only jobs changed within this long (1h) or since this time (RFC 3339)")
	c.fs.IntVar(&limit, "limit", 50, "at most this many jobs")
	natsURL.register(c.fs)
	c.fs.StringVar(&bucket, "flags-bucket", defaultFlagsBucket, "KV bucket of the freeze flags")
	if err := c.parse(0, ""); err != nil {
		return err
	}
	if kind != "" {
		if _, err := parseKind(kind); err != nil {
			return err
		}
	}
	switch jobs.Status(status) {
	case "", jobs.StatusQueued, jobs.StatusRunning, jobs.StatusSucceeded, jobs.StatusFailed, jobs.StatusCancelled:
	default:
		return usageErrorf("-status %q: want queued, running, succeeded, failed or cancelled", status)
	}
	if limit < 1 {
		return usageErrorf("-limit %d: want at least 1", limit)
	}
	var (
		sinceAt  *time.Time
		withinUS int64
	)
	if since != "" {
		if d, err := time.ParseDuration(since); err == nil && d > 0 {
			withinUS = d.Microseconds()
		} else if t, err := time.Parse(time.RFC3339, since); err == nil {
			sinceAt = &t
		} else {
			return usageErrorf("-since %q: want a positive duration (90m, 24h) or an RFC 3339 time", since)
		}
	}
	if err := c.connect(ctx); err != nil {
		return err
	}
	rows, err := c.pool.Query(ctx, mustSQL("jobs_list"), kind, status, symbol, sinceAt, withinUS, limit)
	if err != nil {
		return fmt.Errorf("list jobs: %w", err)
	}
	rep := jobsListReport{Jobs: []jobView{}, Frozen: []frozenModule{}}
	var j jobView
	if _, err := pgx.ForEachRow(rows, j.listFields(), func() error { rep.Jobs = append(rep.Jobs, j); return nil }); err != nil {
		return fmt.Errorf("list jobs: %w", err)
	}
	if rep.Paused, err = jobs.Paused(ctx, c.pool); err != nil {
		return err
	}
	if rep.Paused == nil {
		rep.Paused = []jobs.KindPause{}
	}
	// The freeze flags live in NATS: without it the list still shows, saying what is unknown.
	if fc, err := openFlags(ctx, natsURL.resolve(c.env), bucket); err != nil {
		rep.FrozenError = err.Error()
	} else {
		rep.Frozen, err = readFrozen(ctx, fc.kv)
		fc.Close()
		if err != nil {
			rep.FrozenError = err.Error()
		}
	}
	if c.json {
		return printJSON(c.env.stdout, rep)
	}
	printPausedFrozen(c.env.stdout, rep)
	t := newTable(c.env.stdout, "ID", "KIND", "KEY", "STATUS", "ATTEMPTS", "DUE", "FINISHED", "ERROR")
	for _, j := range rep.Jobs {
		status := j.Status
		if j.ConsecutiveFailures > 0 {
			status += fmt.Sprintf(" (%d failed in a row)", j.ConsecutiveFailures)
		}
		t.row(strconv.FormatInt(j.ID, 10), j.Kind, orDash(j.Key), status, fmt.Sprintf("%d/%d", j.Attempts, j.MaxAttempts),
			j.ScheduledFor.UTC().Format(time.RFC3339), timeOrDash(j.FinishedAt), clip(j.Error, 80))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.env.stdout, "\n%d jobs (newest first, at most %d)\n", len(rep.Jobs), limit)
	return nil
}

func printPausedFrozen(w io.Writer, rep jobsListReport) {
	switch {
	case rep.FrozenError != "":
		fmt.Fprintf(w, "frozen: unknown (%s)\n", rep.FrozenError)
	case len(rep.Frozen) == 0:
		fmt.Fprintln(w, "frozen: none")
	default:
		parts := make([]string, len(rep.Frozen))
		for i, f := range rep.Frozen {
			parts[i] = fmt.Sprintf("%s (%s since %s: %s)", f.Module, f.Key, f.Since.UTC().Format(time.RFC3339), f.Value)
		}
		fmt.Fprintf(w, "frozen: %s\n", strings.Join(parts, ", "))
	}
	if len(rep.Paused) == 0 {
		fmt.Fprint(w, "paused: none\n\n")
		return
	}
	parts := make([]string, len(rep.Paused))
	for i, p := range rep.Paused {
		parts[i] = fmt.Sprintf("%s (by %s since %s: %s)", p.Kind, p.Source, p.PausedAt.UTC().Format(time.RFC3339), p.Reason)
	}
	fmt.Fprintf(w, "paused: %s\n\n", strings.Join(parts, ", "))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// jobRunView is one row of ops.job_run.
type jobRunView struct {
	ID         int64      `json:"id"`
	Attempt    int        `json:"attempt"`
	Status     string     `json:"status"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Seconds    float64    `json:"duration_seconds"`
	Error      string     `json:"error,omitempty"`
	SessionID  int64      `json:"session_id,omitempty"`
	Worker     string     `json:"worker,omitempty"`
}

// occurrenceView is a failed occurrence of a recurring job.
type occurrenceView struct {
	ID           int64      `json:"id"`
	Attempts     int        `json:"attempts"`
	ScheduledFor time.Time  `json:"scheduled_for"`
	FinishedAt   *time.Time `json:"finished_at,omitempty"`
	Error        string     `json:"error,omitempty"`
}

// jobsShowReport is `jobs show --json`.
type jobsShowReport struct {
	Job         jobView          `json:"job"`
	Paused      []jobs.KindPause `json:"paused,omitempty"` // pauses of its kind
	Occurrences []occurrenceView `json:"failed_occurrences"`
	Runs        []jobRunView     `json:"runs"`
}

func jobsShow(ctx context.Context, c *jobsCmd) error {
	runs := 20
	c.fs.IntVar(&runs, "runs", 20, "show at most this many runs and failed occurrences")
	if err := c.parse(1, "one job id"); err != nil {
		return err
	}
	id, err := parseJobID(c.args[0])
	if err != nil {
		return err
	}
	if err := c.connect(ctx); err != nil {
		return err
	}
	rep := jobsShowReport{Occurrences: []occurrenceView{}, Runs: []jobRunView{}}
	j := &rep.Job
	err = c.pool.QueryRow(ctx, mustSQL("jobs_show"), id).Scan(append(j.listFields(), &j.Payload, &j.CreatedAt,
		&j.LockedBy, &j.LeaseExpiresAt, &j.LastFailedAt)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("show job %d: %w", id, jobs.ErrJobNotFound)
	}
	if err != nil {
		return fmt.Errorf("show job %d: %w", id, err)
	}
	rows, err := c.pool.Query(ctx, mustSQL("jobs_occurrences"), id, runs)
	if err != nil {
		return fmt.Errorf("show job %d: occurrences: %w", id, err)
	}
	var o occurrenceView
	if _, err := pgx.ForEachRow(rows, []any{&o.ID, &o.Attempts, &o.ScheduledFor, &o.FinishedAt, &o.Error}, func() error {
		rep.Occurrences = append(rep.Occurrences, o)
		return nil
	}); err != nil {
		return fmt.Errorf("show job %d: occurrences: %w", id, err)
	}
	rows, err = c.pool.Query(ctx, mustSQL("jobs_runs"), id, runs)
	if err != nil {
		return fmt.Errorf("show job %d: runs: %w", id, err)
	}
	var r jobRunView
	if _, err := pgx.ForEachRow(rows, []any{&r.ID, &r.Attempt, &r.Status, &r.StartedAt, &r.FinishedAt, &r.Seconds, &r.Error,
		&r.SessionID, &r.Worker}, func() error {
		rep.Runs = append(rep.Runs, r)
		return nil
	}); err != nil {
		return fmt.Errorf("show job %d: runs: %w", id, err)
	}
	paused, err := jobs.Paused(ctx, c.pool)
	if err != nil {
		return err
	}
	for _, p := range paused {
		if string(p.Kind) == j.Kind {
			rep.Paused = append(rep.Paused, p)
		}
	}
	if c.json {
		return printJSON(c.env.stdout, rep)
	}
	return printJobShow(c.env.stdout, rep)
}

func printJobShow(w io.Writer, rep jobsShowReport) error {
	j := rep.Job
	t := newTable(w, "FIELD", "VALUE")
	t.row("id", strconv.FormatInt(j.ID, 10))
	t.row("kind", j.Kind)
	t.row("key", orDash(j.Key))
	t.row("status", j.Status)
	t.row("attempts", fmt.Sprintf("%d of %d", j.Attempts, j.MaxAttempts))
	if j.PeriodSeconds > 0 {
		t.row("recurs every", (time.Duration(j.PeriodSeconds * float64(time.Second))).String())
		t.row("failed in a row", strconv.Itoa(j.ConsecutiveFailures))
	}
	if j.OccurrenceOf != nil {
		t.row("occurrence of", fmt.Sprintf("job %d (a failed occurrence of that recurring job)", *j.OccurrenceOf))
	}
	t.row("due", j.ScheduledFor.UTC().Format(time.RFC3339))
	t.row("started", timeOrDash(j.StartedAt))
	t.row("finished", timeOrDash(j.FinishedAt))
	if j.LockedBy != nil {
		t.row("held by", fmt.Sprintf("%s (lease until %s)", *j.LockedBy, timeOrDash(j.LeaseExpiresAt)))
	}
	t.row("created", timeOrDash(j.CreatedAt))
	t.row("error", orDash(j.Error))
	for _, p := range rep.Paused {
		t.row("kind paused", fmt.Sprintf("by %s since %s: %s", p.Source, p.PausedAt.UTC().Format(time.RFC3339), p.Reason))
	}
	if err := t.flush(); err != nil {
		return err
	}
	payload := string(j.Payload)
	var v any
	if json.Unmarshal(j.Payload, &v) == nil {
		if b, err := json.MarshalIndent(v, "  ", "  "); err == nil {
			payload = string(b)
		}
	}
	fmt.Fprintf(w, "\npayload:\n  %s\n", payload)
	if len(rep.Occurrences) > 0 {
		fmt.Fprintln(w, "\nfailed occurrences (newest first):")
		t = newTable(w, "ID", "DUE", "FINISHED", "ATTEMPTS", "ERROR")
		for _, o := range rep.Occurrences {
			t.row(strconv.FormatInt(o.ID, 10), o.ScheduledFor.UTC().Format(time.RFC3339), timeOrDash(o.FinishedAt),
				strconv.Itoa(o.Attempts), clip(o.Error, 100))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w, "\nruns (ops.job_run, newest first):")
	if len(rep.Runs) == 0 {
		fmt.Fprintln(w, "  none recorded")
		return nil
	}
	t = newTable(w, "RUN", "ATTEMPT", "STATUS", "STARTED", "DURATION", "ERROR")
	for _, r := range rep.Runs {
		t.row(strconv.FormatInt(r.ID, 10), strconv.Itoa(r.Attempt), r.Status, r.StartedAt.UTC().Format(time.RFC3339),
			(time.Duration(r.Seconds * float64(time.Second))).Round(time.Millisecond).String(), clip(r.Error, 100))
	}
	return t.flush()
}

// jobsRetryReport is `jobs retry --json`.
type jobsRetryReport struct {
	ID      int64  `json:"id,omitempty"`
	Kind    string `json:"kind,omitempty"`
	Retried int64  `json:"retried"`
	Skipped int64  `json:"skipped"`
}

func jobsRetry(ctx context.Context, c *jobsCmd) error {
	var (
		kind   string
		failed bool
	)
	c.fs.StringVar(&kind, "kind", "", "retry every failed job of this kind (with -failed)")
	c.fs.BoolVar(&failed, "failed", false, "with -kind: every failed job of the kind")
	if err := c.setup(); err != nil {
		return flagParseError{err}
	}
	switch {
	case kind == "" && len(c.args) != 1:
		return usageErrorf("want one job id, or -kind KIND -failed")
	case kind != "" && len(c.args) > 0:
		return usageErrorf("a job id or -kind, not both")
	case kind != "" && !failed:
		return usageErrorf("-kind %s retries every failed job of the kind: say so with -failed", kind)
	}
	if kind == "" {
		id, err := parseJobID(c.args[0])
		if err != nil {
			return err
		}
		if err := c.connect(ctx); err != nil {
			return err
		}
		if err := jobs.Retry(ctx, c.pool, id); err != nil {
			return err
		}
		if c.json {
			return printJSON(c.env.stdout, jobsRetryReport{ID: id, Retried: 1})
		}
		fmt.Fprintf(c.env.stdout, "retried job %d: queued, due now, with a fresh attempt budget\n", id)
		return nil
	}
	k, err := parseKind(kind)
	if err != nil {
		return err
	}
	if err := c.connect(ctx); err != nil {
		return err
	}
	var total int64
	if err := c.pool.QueryRow(ctx, mustSQL("jobs_failed_count"), string(k)).Scan(&total); err != nil {
		return fmt.Errorf("count failed %s jobs: %w", k, err)
	}
	// Progress on stderr, so --json's stdout stays one document.
	bar := progress.New(c.env.stderr, "failed "+string(k)+" jobs looked at", total)
	var done int64
	res, err := jobs.RetryFailedEach(ctx, c.pool, k, func(n int64) {
		bar.Add(n - done)
		done = n
	})
	bar.Finish()
	if err != nil {
		return fmt.Errorf("%w (retried %d before the error)", err, res.Retried)
	}
	if c.json {
		return printJSON(c.env.stdout, jobsRetryReport{Kind: string(k), Retried: res.Retried, Skipped: res.Skipped})
	}
	fmt.Fprintf(c.env.stdout, "retried %d failed %s jobs; %d left failed because their work is queued or running already\n",
		res.Retried, k, res.Skipped)
	return nil
}

func jobsCancel(ctx context.Context, c *jobsCmd) error {
	if err := c.parse(1, "one job id"); err != nil {
		return err
	}
	id, err := parseJobID(c.args[0])
	if err != nil {
		return err
	}
	if err := c.connect(ctx); err != nil {
		return err
	}
	res, err := jobs.Cancel(ctx, c.pool, id)
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(c.env.stdout, map[string]any{"id": id, "was": res.Was, "status": jobs.StatusCancelled})
	}
	if res.Was == jobs.StatusRunning {
		fmt.Fprintf(c.env.stdout, "cancelled job %d (was running: its handler's context is cancelled; the run is recorded as cancelled)\n", id)
	} else {
		fmt.Fprintf(c.env.stdout, "cancelled job %d (was %s)\n", id, res.Was)
	}
	return nil
}

func jobsPrune(ctx context.Context, c *jobsCmd) error {
	var olderThan time.Duration
	c.fs.DurationVar(&olderThan, "older-than", 0, "delete finished jobs and job runs older than this (e.g. 168h)")
	if err := c.parse(0, ""); err != nil {
		return err
	}
	if olderThan <= 0 {
		return usageErrorf("-older-than: want a positive duration (e.g. 168h)")
	}
	if err := c.connect(ctx); err != nil {
		return err
	}
	// The cutoff is the database's clock, the one finished_at was written with.
	var before time.Time
	if err := c.pool.QueryRow(ctx, `SELECT now() - $1 * interval '1 microsecond'`, olderThan.Microseconds()).Scan(&before); err != nil {
		return fmt.Errorf("prune: read the database clock: %w", err)
	}
	n, err := jobs.Prune(ctx, c.pool, before)
	if err != nil {
		return err
	}
	runs, err := jobs.PruneRuns(ctx, c.pool, before)
	if err != nil {
		return fmt.Errorf("%w (%d jobs pruned before the error)", err, n)
	}
	if c.json {
		return printJSON(c.env.stdout, map[string]any{"before": before, "jobs": n, "runs": runs})
	}
	fmt.Fprintf(c.env.stdout, "pruned %d finished jobs and %d job runs from before %s\n", n, runs, before.UTC().Format(time.RFC3339))
	return nil
}

func jobsPause(ctx context.Context, c *jobsCmd) error {
	var reason string
	c.fs.StringVar(&reason, "reason", "", "why (shown by jobs list and status)")
	if err := c.parse(1, "one kind"); err != nil {
		return err
	}
	k, err := parseKind(c.args[0])
	if err != nil {
		return err
	}
	if err := c.connect(ctx); err != nil {
		return err
	}
	paused, err := jobs.Pause(ctx, c.pool, k, reason)
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(c.env.stdout, map[string]any{"kind": k, "paused": true, "already": !paused})
	}
	if !paused {
		fmt.Fprintf(c.env.stdout, "%s was paused already (by an operator)\n", k)
		return nil
	}
	fmt.Fprintf(c.env.stdout, "paused %s: no engine claims it until `cpctl jobs resume %s` (jobs running now finish; cancel them to stop them)\n", k, k)
	return nil
}

func jobsResume(ctx context.Context, c *jobsCmd) error {
	if err := c.parse(1, "one kind"); err != nil {
		return err
	}
	k, err := parseKind(c.args[0])
	if err != nil {
		return err
	}
	if err := c.connect(ctx); err != nil {
		return err
	}
	lifted, left, err := jobs.Resume(ctx, c.pool, k)
	if err != nil {
		return err
	}
	if c.json {
		if left == nil {
			left = []jobs.KindPause{}
		}
		return printJSON(c.env.stdout, map[string]any{"kind": k, "resumed": lifted, "still_paused": left})
	}
	switch {
	case len(left) > 0:
		srcs := make([]string, len(left))
		for i, p := range left {
			srcs[i] = p.Source
		}
		fmt.Fprintf(c.env.stdout, "%s is still paused by %s: `cpctl unfreeze` lifts a freeze's pause\n", k, strings.Join(srcs, ", "))
		if !lifted {
			return fmt.Errorf("resume %s: no pause of an operator to lift", k)
		}
	case lifted:
		fmt.Fprintf(c.env.stdout, "resumed %s: engines claim its due jobs now\n", k)
	default:
		fmt.Fprintf(c.env.stdout, "%s was not paused\n", k)
	}
	return nil
}
