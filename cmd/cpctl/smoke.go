package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cryptopill.dev/jobs/libs/db"
)

// The smoke checks read what the services stored and say whether it looks alive: the schema
// (version and every object the migrations create, smoke_schema.go), str-aux sampling recency,
// density, window coverage and gaps (smoke_straux.go), numbers stuck at a clamp or a bound, and
// vectors that stopped having values; then an end-to-end pass over the running stack
// (smoke_e2e.go) that drives one mini cycle and removes what it created.

// boundTolerance is how close (relative) a value must be to a bound to count as at it: a
// saturated tanh only approaches ±1 (S·tanh(15) is 1e-11 short of S).
const boundTolerance = 1e-9

// Check statuses.
const (
	statusOK    = "ok"
	statusFail  = "fail"
	statusSkip  = "skip"  // nothing to check yet (no grids, no vectors)
	statusError = "error" // the check could not run
)

// smokeOptions are the checks' thresholds.
type smokeOptions struct {
	// periods is how many of the newest rows (per symbol and window) or grids a value must be at
	// its bound in, in a row, for the per-symbol and MEA checks to fail; and how many rows per
	// symbol and window the NULL-vector share is taken over.
	periods int
	// history is how many rows back the start of a run ("since") is looked for.
	history int
	// maxNullShare is the largest share of vector rows without a value a window may have.
	maxNullShare float64
	// stalePeriods is how many due periods (tick period × rotation) a symbol's newest good sample
	// may be old; maxGapPeriods how many a gap between two good samples of a window may span.
	stalePeriods, maxGapPeriods int
	// minCoverage is the smallest share of due good samples a window (and the last hour) may have.
	minCoverage float64
	// firstTickWithin is how long after a symbol is enabled a first tick period must be planned.
	firstTickWithin time.Duration
	// schema runs the schema diagnostics (they build a scratch database: CREATEDB).
	schema bool
	// now is the clock the ages are judged by.
	now func() time.Time
	// e2e runs the end-to-end pass on the running stack with e2eOpt.
	e2e    bool
	e2eOpt e2eOptions
}

// smokeCheck is one line of `cpctl smoke`.
type smokeCheck struct {
	Name     string         `json:"name"`
	Status   string         `json:"status"`
	Detail   string         `json:"detail"`
	Findings []smokeFinding `json:"findings,omitempty"`
}

// smokeFinding is one thing stuck: which series, where, at which bound, since when.
type smokeFinding struct {
	Series string `json:"series"`
	// Window and Symbol say where (vectors); Grid is the newest MEA grid at the bound.
	Window string `json:"window,omitempty"`
	Symbol string `json:"symbol,omitempty"`
	Bound  string `json:"bound,omitempty"`
	// Run is how many consecutive periods (grids, rows) it has been at the bound, ending at Newest;
	// Since is the first of them, or the oldest row looked at when SinceBefore.
	Run         int       `json:"run"`
	Since       time.Time `json:"since"`
	SinceBefore bool      `json:"since_before,omitempty"`
	Newest      time.Time `json:"newest"`
	// Symbols is how many symbols were at the bound together (window findings).
	Symbols int `json:"symbols,omitempty"`
	// Share, Rows and Reason describe a NULL-vector storm.
	Share  float64 `json:"share,omitempty"`
	Rows   int     `json:"rows,omitempty"`
	Reason string  `json:"reason,omitempty"`
	// MoodID is the newest grid's mood id (MEA findings).
	MoodID string `json:"mood_id,omitempty"`
}

func (f smokeFinding) since() string {
	s := f.Since.UTC().Format(time.RFC3339)
	if f.SinceBefore {
		return "before " + s
	}
	return s
}

func runSmoke(ctx context.Context, args []string) int {
	return smokeCommand(ctx, args, processEnv())
}

func smokeCommand(ctx context.Context, args []string, env cmdEnv) int {
	return smokeMain(ctx, args, env, time.Now)
}

func smokeMain(ctx context.Context, args []string, env cmdEnv, now func() time.Time) int {
	fs := flag.NewFlagSet("smoke", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprint(env.stderr, "usage: cpctl smoke [--database-url URL] [--nats-url URL] [--json] [-e2e=false] [--schema=false] [thresholds]\n\n"+
			"Checks the schema (version, every table, column, index, constraint, function and trigger the\n"+
			"migrations create), str-aux sampling (recency and density per symbol, window coverage and gaps),\n"+
			"what the services stored (MEA mood coefficient and its inputs stuck at a clamp, vectors and\n"+
			"statistics at their bounds, the share of vector rows without a value), then drives one mini cycle\n"+
			"through the running stack (a tick sampled with its vectors, a session of its own getting its moves,\n"+
			"a symbol of its own getting its jobs) and removes every row it created. One line per check;\n"+
			"exit 0 when every check passes, 1 when one fails, 2 on a usage or configuration error.\n"+
			"With the dev stack: set -a; . .data/dev.env; set +a (it sets DATABASE_URL).\n\n")
		fs.PrintDefaults()
	}
	var dbFlag databaseFlag
	dbFlag.register(fs)
	asJSON := fs.Bool("json", false, "print the checks as JSON")
	var opt smokeOptions
	fs.IntVar(&opt.periods, "periods", 10, "newest periods (rows per symbol and window, or MEA grids) a value must be stuck in")
	fs.IntVar(&opt.history, "history", 100, "rows (per symbol and window) or grids looked back through for when a run started")
	fs.Float64Var(&opt.maxNullShare, "max-null-share", 0.5, "largest share of a window's newest vector rows that may have no value")
	fs.IntVar(&opt.stalePeriods, "stale-periods", 3, "due periods (tick period × rotation) a symbol's newest good sample may be old")
	fs.IntVar(&opt.maxGapPeriods, "max-gap-periods", 5, "due periods a gap between two good samples of a window may span")
	fs.Float64Var(&opt.minCoverage, "min-coverage", 0.8, "smallest share of due good samples a window, and the last hour, may hold")
	fs.DurationVar(&opt.firstTickWithin, "first-tick-within", 10*time.Minute, "how long after the first symbol is enabled a tick period must have been planned")
	fs.BoolVar(&opt.schema, "schema", true, "check the schema against the embedded migrations (builds and drops a scratch database: needs CREATEDB)")
	fs.BoolVar(&opt.e2e, "e2e", true, "drive one mini cycle through the running stack (needs NATS and every service), then remove what it created")
	fs.DurationVar(&opt.e2eOpt.timeout, "e2e-timeout", 50*time.Second, "how long each end-to-end part may wait (the dev tick period is 40s)")
	natsURL := fs.String("nats-url", "", "NATS server URL for the end-to-end pass (default $NATS_URL, else nats://127.0.0.1:4222)")
	opt.now = now
	if err := fs.Parse(args); err != nil {
		return flagStatus(err)
	}
	var err error
	switch {
	case fs.NArg() > 0:
		err = usageErrorf("unexpected arguments %q", fs.Args())
	case opt.periods < 1:
		err = usageErrorf("--periods %d: want at least 1", opt.periods)
	case opt.history < opt.periods:
		err = usageErrorf("--history %d: want at least --periods (%d)", opt.history, opt.periods)
	case !(opt.maxNullShare >= 0 && opt.maxNullShare <= 1):
		err = usageErrorf("--max-null-share %v: want a share between 0 and 1", opt.maxNullShare)
	case !(opt.minCoverage >= 0 && opt.minCoverage <= 1):
		err = usageErrorf("--min-coverage %v: want a share between 0 and 1", opt.minCoverage)
	case opt.e2eOpt.timeout <= 0:
		err = usageErrorf("--e2e-timeout %s: want more than 0", opt.e2eOpt.timeout)
	case opt.firstTickWithin <= 0:
		err = usageErrorf("--first-tick-within %s: want more than 0", opt.firstTickWithin)
	case opt.stalePeriods < 1 || opt.maxGapPeriods < 1:
		err = usageErrorf("--stale-periods %d, --max-gap-periods %d: want at least 1", opt.stalePeriods, opt.maxGapPeriods)
	}
	if err != nil {
		fs.Usage()
		return exitStatus(env, "smoke", err)
	}
	url, err := dbFlag.resolve(env)
	if err != nil {
		return exitStatus(env, "smoke", err)
	}
	opt.e2eOpt.natsURL = *natsURL
	if opt.e2eOpt.natsURL == "" {
		opt.e2eOpt.natsURL = "nats://127.0.0.1:4222"
		if v, ok := env.lookupEnv("NATS_URL"); ok && v != "" {
			opt.e2eOpt.natsURL = v
		}
	}
	pool, err := db.Open(ctx, url)
	if err != nil {
		return exitStatus(env, "smoke", err)
	}
	defer pool.Close()

	checks := runSmokeChecks(ctx, pool, url, opt)
	healthy := true
	for _, c := range checks {
		healthy = healthy && (c.Status == statusOK || c.Status == statusSkip)
	}
	if *asJSON {
		err = printSmokeJSON(env.stdout, db.SafeURL(url), healthy, checks)
	} else {
		err = printSmokeTable(env.stdout, db.SafeURL(url), checks)
	}
	if err != nil {
		return exitStatus(env, "smoke", err)
	}
	if !healthy {
		return 1
	}
	return 0
}

// runSmokeChecks runs every check; one that cannot run is reported as an error, the others still run.
func runSmokeChecks(ctx context.Context, pool *pgxpool.Pool, databaseURL string, opt smokeOptions) []smokeCheck {
	var out []smokeCheck
	if opt.schema {
		out = append(out, checkSchemaVersion(ctx, databaseURL), checkSchemaObjects(ctx, pool, databaseURL))
	}
	out = append(out, checkSampling(ctx, pool, opt)...)
	out = append(out, checkCoverage(ctx, pool, opt)...)
	out = append(out, checkMEAClamp(ctx, pool, opt))
	out = append(out, checkVectorClamps(ctx, pool, opt)...)
	out = append(out, checkNullVectors(ctx, pool, opt))
	if opt.e2e {
		out = append(out, runE2E(ctx, pool, opt.e2eOpt)...)
	}
	return out
}

// smokeQuery runs one check's statement in a read-only transaction and hands its rows to each.
// JIT is off: compiling a plan of this size costs seconds on a busy server and saves nothing on a
// read of a few hundred thousand rows.
func smokeQuery(ctx context.Context, pool *pgxpool.Pool, sql string, args []any, scans []any, each func() error) error {
	return pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL jit = off"); err != nil {
			return fmt.Errorf("set jit: %w", err)
		}
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return fmt.Errorf("query: %w", err)
		}
		if _, err := pgx.ForEachRow(rows, scans, each); err != nil {
			return fmt.Errorf("query: %w", err)
		}
		return nil
	})
}

func errorCheck(name string, err error) smokeCheck {
	return smokeCheck{Name: name, Status: statusError, Detail: err.Error()}
}

// checkMEAClamp fails when the newest opt.periods MEA grids (or more) have their mood coefficient,
// or one of its normalised inputs, at a bound of its clamp, or a mood computed from no symbol.
func checkMEAClamp(ctx context.Context, pool *pgxpool.Pool, opt smokeOptions) smokeCheck {
	const name = "mea.mood_clamp"
	var (
		grids                 int
		findings              []smokeFinding
		series, bound, moodID *string
		run                   *int
		since, newest         *time.Time
		before                *bool
	)
	err := smokeQuery(ctx, pool, mustSQL("smoke_mea"), []any{opt.periods, opt.history, boundTolerance},
		[]any{&series, &run, &bound, &since, &newest, &moodID, &before, &grids}, func() error {
			if series != nil { // else the row that only counts grids
				findings = append(findings, smokeFinding{Series: *series, Bound: *bound, Run: *run, Since: *since,
					SinceBefore: *before, Newest: *newest, MoodID: *moodID})
			}
			return nil
		})
	if err != nil {
		return errorCheck(name, err)
	}
	c := smokeCheck{Name: name, Status: statusOK, Findings: findings}
	switch {
	case grids == 0:
		c.Status, c.Detail = statusSkip, "no MEA grids yet"
	case len(findings) == 0:
		c.Detail = fmt.Sprintf("newest %d of %d grids: mood coefficient and its inputs off their clamps", min(opt.periods, grids), grids)
	default:
		c.Status = statusFail
		c.Detail = summarise(findings, func(f smokeFinding) string {
			return fmt.Sprintf("%s at %s in the last %d grids (newest %s, mood %s) since %s",
				f.Series, f.Bound, f.Run, f.Newest.UTC().Format(time.RFC3339), f.MoodID, f.since())
		})
	}
	return c
}

// checkVectorClamps returns two checks from one pass over the newest vector rows: a series at its
// bound for every symbol of a window (at the window's newest period), and a series at its bound in
// each of one symbol's newest opt.periods rows of a window.
func checkVectorClamps(ctx context.Context, pool *pgxpool.Pool, opt smokeOptions) []smokeCheck {
	const byWindow, bySymbol = "vectors.window_clamp", "vectors.symbol_clamp"
	found := map[string][]smokeFinding{}
	var (
		f      smokeFinding
		kind   string
		symbol *string
	)
	err := smokeQuery(ctx, pool, mustSQL("smoke_vectors"), []any{opt.periods, opt.history, boundTolerance},
		[]any{&kind, &f.Window, &symbol, &f.Series, &f.Run, &f.Bound, &f.Since, &f.Newest, &f.Symbols, &f.SinceBefore},
		func() error {
			g := f
			if symbol != nil {
				g.Symbol = *symbol
			}
			found[kind] = append(found[kind], g)
			return nil
		})
	if err != nil {
		return []smokeCheck{errorCheck(byWindow, err), errorCheck(bySymbol, err)}
	}
	w := smokeCheck{Name: byWindow, Status: statusOK, Findings: found["window"],
		Detail: "no series at its bound for every symbol of a window"}
	if len(w.Findings) > 0 {
		w.Status = statusFail
		w.Detail = summarise(w.Findings, func(f smokeFinding) string {
			return fmt.Sprintf("window %s at %s: %s = %s for all %d symbols, %d periods since %s",
				f.Window, f.Newest.UTC().Format(time.RFC3339), f.Series, f.Bound, f.Symbols, f.Run, f.since())
		})
	}
	s := smokeCheck{Name: bySymbol, Status: statusOK, Findings: found["symbol"],
		Detail: fmt.Sprintf("no symbol's series at its bound in its newest %d rows of a window", opt.periods)}
	if len(s.Findings) > 0 {
		s.Status = statusFail
		s.Detail = summarise(s.Findings, func(f smokeFinding) string {
			return fmt.Sprintf("%s %s: %s = %s in its last %d rows (newest %s) since %s",
				f.Symbol, f.Window, f.Series, f.Bound, f.Run, f.Newest.UTC().Format(time.RFC3339), f.since())
		})
	}
	return []smokeCheck{w, s}
}

// checkNullVectors fails when more than opt.maxNullShare of a window's newest vector rows (the
// newest opt.periods per symbol) have no value.
func checkNullVectors(ctx context.Context, pool *pgxpool.Pool, opt smokeOptions) smokeCheck {
	const name = "vectors.null_share"
	var (
		f        smokeFinding
		without  int
		reason   *string
		windows  int
		worst    float64
		findings []smokeFinding
	)
	err := smokeQuery(ctx, pool, mustSQL("smoke_null_vectors"), []any{opt.periods},
		[]any{&f.Window, &f.Rows, &without, &reason, &f.Newest}, func() error {
			windows++
			f.Share = float64(without) / float64(f.Rows)
			worst = max(worst, f.Share)
			if f.Share > opt.maxNullShare {
				g := f
				g.Series = "vectors"
				if reason != nil {
					g.Reason = *reason
				}
				findings = append(findings, g)
			}
			return nil
		})
	if err != nil {
		return errorCheck(name, err)
	}
	c := smokeCheck{Name: name, Status: statusOK, Findings: findings}
	switch {
	case windows == 0:
		c.Status, c.Detail = statusSkip, "no vectors yet"
	case len(findings) == 0:
		c.Detail = fmt.Sprintf("%d windows: at most %.0f%% of the newest vector rows without a value (limit %.0f%%)",
			windows, 100*worst, 100*opt.maxNullShare)
	default:
		c.Status = statusFail
		c.Detail = summarise(findings, func(f smokeFinding) string {
			return fmt.Sprintf("window %s: %.0f%% of %d newest vector rows have no value (mostly %q), newest %s",
				f.Window, 100*f.Share, f.Rows, f.Reason, f.Newest.UTC().Format(time.RFC3339))
		})
	}
	return c
}

// summarise is the first three findings and how many more there are; --json lists them all.
func summarise(fs []smokeFinding, one func(smokeFinding) string) string {
	parts := make([]string, 0, 4)
	for i, f := range fs {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("+%d more (--json lists them)", len(fs)-3))
			break
		}
		parts = append(parts, one(f))
	}
	return strings.Join(parts, "; ")
}

func printSmokeTable(out io.Writer, database string, checks []smokeCheck) error {
	fmt.Fprintf(out, "database %s\n\n", database)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSTATUS\tDETAIL")
	failed := 0
	for _, c := range checks {
		if c.Status == statusFail || c.Status == statusError {
			failed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Name, strings.ToUpper(c.Status), c.Detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if failed == 0 {
		_, err := fmt.Fprintf(out, "\n%d checks: healthy\n", len(checks))
		return err
	}
	_, err := fmt.Fprintf(out, "\n%d checks: %d failed\n", len(checks), failed)
	return err
}

func printSmokeJSON(out io.Writer, database string, healthy bool, checks []smokeCheck) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Database string       `json:"database"`
		Healthy  bool         `json:"healthy"`
		Checks   []smokeCheck `json:"checks"`
	}{database, healthy, checks})
}
