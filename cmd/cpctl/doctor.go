package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/db"
	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/exchange"
)

// `cpctl doctor` checks the environment the failure routine asks about, one finding per line, each
// with what to do: Postgres, schema version, the relay's replication slot, NATS and JetStream,
// streams and durables against their declarations, the exchange (reachable, API key, clock skew),
// and whether the tick interval fits the exchange's weight budget. It only reads.

//go:embed sql/doctor_tick_plan.sql
var doctorTickPlanSQL string

//go:embed sql/doctor_symbol.sql
var doctorSymbolSQL string

// Finding statuses beyond smoke's: a warning is worth reading but does not fail the doctor.
const statusWarn = "warn"

// doctorFinding is one line of `cpctl doctor`.
type doctorFinding struct {
	Check  string         `json:"check"`
	Status string         `json:"status"`
	Detail string         `json:"detail"`
	Fix    string         `json:"fix,omitempty"`
	Drift  []events.Drift `json:"drift,omitempty"`
}

// doctorConfig is what the doctor looks at and its thresholds.
type doctorConfig struct {
	databaseURL string
	natsURL     string
	exchangeURL string
	apiKey      string
	apiSecret   exchange.Secret
	// slot is the relay's replication slot (CDC_SLOT).
	slot string
	// recvWindow is the signed calls' validity window; the clock skew is judged against it.
	recvWindow time.Duration
	// topology is the declarations as the services' environment makes them.
	topology events.Topology
	// staleTicks is how many periods overdue the newest tick period may be.
	staleTicks int
	timeout    time.Duration
	now        func() time.Time
}

func runDoctor(ctx context.Context, args []string) int {
	return doctorCommand(ctx, args, processEnv(), time.Now)
}

func doctorCommand(ctx context.Context, args []string, env cmdEnv, now func() time.Time) int {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprint(env.stderr, "usage: cpctl doctor [--database-url URL] [--nats-url URL] [--exchange-url URL] [--json]\n\n"+
			"Checks the environment: Postgres and NATS reachable, JetStream enabled, schema version as the binaries\n"+
			"expect, streams and durables as the code declares them, the relay's replication slot, the exchange\n"+
			"(reachable, API key valid by a signed call, clock skew against recvWindow) and the tick interval\n"+
			"against the weight budget. Each finding says what to do. Exit 0 when nothing fails (warnings\n"+
			"allowed), 1 when a finding fails, 2 on a usage error. It reads the services' environment\n"+
			"(DATABASE_URL, NATS_URL, BINANCE_BASE_URL, BINANCE_API_KEY/SECRET, NATS_REPLICAS, CDC_SLOT, ...);\n"+
			"with the dev stack: set -a; . .data/dev.env; set +a.\n\n")
		fs.PrintDefaults()
	}
	var dbFlag databaseFlag
	dbFlag.register(fs)
	natsURL := fs.String("nats-url", "", "NATS server URL (default $NATS_URL, else nats://127.0.0.1:4222)")
	exchangeURL := fs.String("exchange-url", "", "exchange base URL (default $BINANCE_BASE_URL, else Binance's)")
	recvWindow := fs.Duration("recv-window", 5*time.Second, "signed calls' recvWindow the clock skew is judged against")
	staleTicks := fs.Int("stale-ticks", 3, "tick periods the newest planned period may be overdue before the doctor fails")
	timeout := fs.Duration("timeout", 10*time.Second, "time each check may take")
	asJSON := fs.Bool("json", false, "print the findings as JSON")
	if err := fs.Parse(args); err != nil {
		return flagStatus(err)
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return exitStatus(env, "doctor", usageErrorf("unexpected arguments %q", fs.Args()))
	}
	if *recvWindow <= 0 || *recvWindow > time.Minute || *staleTicks < 1 || *timeout <= 0 {
		return exitStatus(env, "doctor", usageErrorf("--recv-window %s, --stale-ticks %d, --timeout %s: want 0 < recv-window <= 1m, stale-ticks >= 1, timeout > 0",
			*recvWindow, *staleTicks, *timeout))
	}
	url, err := dbFlag.resolve(env)
	if err != nil {
		return exitStatus(env, "doctor", err)
	}
	// The services' environment, else the dev stack's (.data/dev.env), as every cpctl command.
	lookup, err := lookupWithDevEnv(env)
	if err != nil {
		return exitStatus(env, "doctor", err)
	}
	cfg, err := doctorEnv(lookup)
	if err != nil {
		return exitStatus(env, "doctor", usageError{msg: err.Error()})
	}
	cfg.databaseURL, cfg.recvWindow, cfg.staleTicks, cfg.timeout, cfg.now = url, *recvWindow, *staleTicks, *timeout, now
	if *natsURL != "" {
		cfg.natsURL = *natsURL
	}
	if *exchangeURL != "" {
		cfg.exchangeURL = *exchangeURL
	}

	findings := runDoctorChecks(ctx, cfg)
	healthy := true
	for _, f := range findings {
		healthy = healthy && f.Status != statusFail && f.Status != statusError
	}
	if *asJSON {
		err = printDoctorJSON(env.stdout, healthy, findings)
	} else {
		err = printDoctorTable(env.stdout, findings)
	}
	if err != nil {
		return exitStatus(env, "doctor", err)
	}
	if !healthy {
		return 1
	}
	return 0
}

// doctorEnv reads the settings the services read, with their defaults, so the doctor compares
// against what they declare and use.
func doctorEnv(lookup func(string) (string, bool)) (doctorConfig, error) {
	l := config.NewLoader(lookup)
	cfg := doctorConfig{
		natsURL:     l.String("NATS_URL", "nats://127.0.0.1:4222"),
		exchangeURL: l.String("BINANCE_BASE_URL", exchange.DefaultBaseURL),
		apiKey:      l.Secret("BINANCE_API_KEY"),
		apiSecret:   exchange.Secret(l.Secret("BINANCE_API_SECRET")),
		slot:        l.String("CDC_SLOT", "cp_relay"),
	}
	// As the orchestrator declares the streams it owns (services/orchestrator: topology).
	strauxInterval := max(5*time.Second, l.Millis("STR_AUX_RUNNER_INTERVAL_MS", 40*time.Second))
	cinInterval := max(time.Minute, l.Millis("CIN_IMPORT_INTERVAL_MS", config.Pick(l, 15*time.Minute, 30*time.Minute, 5*time.Minute)))
	cfg.topology = events.NewTopology(events.TopologyConfig{
		Replicas:            l.Int("NATS_REPLICAS", config.Pick(l, 1, 3, 3), 1, 5),
		TickDuplicateWindow: max(events.DefaultTickDuplicates, 2*max(strauxInterval, cinInterval)),
		CDCDuplicateWindow:  l.Duration("CDC_DUPLICATE_WINDOW", events.CDCDuplicates),
	})
	return cfg, l.Err()
}

// runDoctorChecks runs every check; a check whose dependency failed (no Postgres, no NATS) is
// skipped with the reason.
func runDoctorChecks(ctx context.Context, cfg doctorConfig) []doctorFinding {
	var out []doctorFinding
	pool, pg := doctorPostgres(ctx, cfg)
	out = append(out, pg)
	if pool != nil {
		defer pool.Close()
		out = append(out, doctorSchema(ctx, cfg), doctorSlot(ctx, cfg, pool), doctorTickBudget(ctx, cfg, pool))
	} else {
		for _, c := range []string{"postgres.schema", "postgres.replication_slot", "straux.weight_budget"} {
			out = append(out, doctorFinding{Check: c, Status: statusSkip, Detail: "Postgres unreachable"})
		}
	}
	out = append(out, doctorNATS(ctx, cfg)...)
	return append(out, doctorExchange(ctx, cfg, pool)...)
}

func doctorPostgres(ctx context.Context, cfg doctorConfig) (*pgxpool.Pool, doctorFinding) {
	f := doctorFinding{Check: "postgres.reachable"}
	safe := db.SafeURL(cfg.databaseURL)
	cctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	pool, err := db.Open(cctx, cfg.databaseURL)
	if err == nil {
		if err = pool.Ping(cctx); err != nil {
			pool.Close()
		}
	}
	if err != nil {
		f.Status, f.Detail = statusFail, fmt.Sprintf("%s: %v", safe, db.Redact(err, cfg.databaseURL))
		f.Fix = "check DATABASE_URL (host, port, database, password) and that Postgres runs (make dev, docker compose up postgres)"
		return nil, f
	}
	var version string
	if err := pool.QueryRow(cctx, "SHOW server_version").Scan(&version); err != nil {
		version = "?"
	}
	f.Status, f.Detail = statusOK, fmt.Sprintf("%s (Postgres %s)", safe, version)
	return pool, f
}

func doctorSchema(ctx context.Context, cfg doctorConfig) doctorFinding {
	f := doctorFinding{Check: "postgres.schema"}
	cctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	err := db.CheckSchema(cctx, cfg.databaseURL)
	var se *db.SchemaError
	switch {
	case err == nil:
		f.Status, f.Detail = statusOK, "schema version is the one the binaries embed"
	case errors.As(err, &se) && se.Database > se.Binary:
		f.Status, f.Detail = statusFail, err.Error()
		f.Fix = "deploy binaries built from the commit whose migrations were applied (or newer)"
	case errors.As(err, &se), errors.Is(err, db.ErrNotMigrated):
		f.Status, f.Detail = statusFail, err.Error()
		f.Fix = "cpctl migrate up (or start a service with MIGRATE_ON_START=1)"
	default:
		f.Status, f.Detail = statusError, db.Redact(err, cfg.databaseURL).Error()
	}
	return f
}

func doctorSlot(ctx context.Context, cfg doctorConfig, pool *pgxpool.Pool) doctorFinding {
	f := doctorFinding{Check: "postgres.replication_slot"}
	cctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	slots, err := db.ReplicationSlots(cctx, pool)
	if err != nil {
		f.Status, f.Detail = statusError, err.Error()
		return f
	}
	for _, s := range slots {
		if s.Slot != cfg.slot {
			continue
		}
		lag := "?"
		if s.RetainedBytes != nil {
			lag = fmt.Sprintf("%d bytes retained", *s.RetainedBytes)
		}
		switch {
		case s.WALStatus == "lost":
			f.Status, f.Detail = statusFail, fmt.Sprintf("slot %s is lost (invalidated past max_slot_wal_keep_size): changes since are gone from it", s.Slot)
			f.Fix = fmt.Sprintf("SELECT pg_drop_replication_slot('%s'); restart the orchestrator (or set CDC_RECREATE_LOST_SLOT=1), then re-run the one-shots (cinimport once, seeder once) for the gap", s.Slot)
		case s.WALStatus == "unreserved":
			f.Status, f.Detail = statusFail, fmt.Sprintf("slot %s is about to be invalidated (wal_status unreserved, %s)", s.Slot, lag)
			f.Fix = "start the orchestrator (RUN_JOBS=1) so it reads the slot, or raise max_slot_wal_keep_size"
		case !s.Active:
			f.Status, f.Detail = statusWarn, fmt.Sprintf("slot %s exists but nothing streams from it (%s, wal_status %s)", s.Slot, lag, s.WALStatus)
			f.Fix = "start the orchestrator with RUN_JOBS=1: it streams the slot; until then the slot keeps WAL"
		default:
			f.Status, f.Detail = statusOK, fmt.Sprintf("slot %s active, wal_status %s, %s", s.Slot, s.WALStatus, lag)
		}
		return f
	}
	f.Status, f.Detail = statusFail, fmt.Sprintf("replication slot %s is missing: row changes (universe, sessions, trades) are not relayed", cfg.slot)
	f.Fix = "start the orchestrator with RUN_JOBS=1 and CDC_ENABLED=1: it creates the slot (CDC_SLOT names it)"
	return f
}

// doctorTickBudget reads the newest tick period straux planned: its age says whether ticks arrive
// (the orchestrator runs only with RUN_JOBS=1), and its plan, made by straux's plan code from the
// exchange's weight budget, says whether the interval fits the universe.
func doctorTickBudget(ctx context.Context, cfg doctorConfig, pool *pgxpool.Pool) doctorFinding {
	f := doctorFinding{Check: "straux.weight_budget"}
	var (
		start                                   time.Time
		period, overdue                         time.Duration
		status                                  string
		universe, planned, rounds, weight, tick int
	)
	cctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	err := pool.QueryRow(cctx, doctorTickPlanSQL, cfg.now()).Scan(&start, &period, &status, &universe, &planned, &rounds, &weight, &tick, &overdue)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		f.Status, f.Detail = statusWarn, "no tick period planned yet"
		f.Fix = "the orchestrator publishes ticks only with RUN_JOBS=1 (it logs why and exits 0 otherwise); straux plans them"
		return f
	case err != nil:
		f.Status, f.Detail = statusError, fmt.Sprintf("read str_aux.tick_periods: %v", err)
		return f
	}
	plan := fmt.Sprintf("period %s: %d of %d symbols per tick, weight %d of a %d tick budget", period, planned, universe, weight, tick)
	if weight == 0 && planned > 0 {
		plan += " (stream mode: local books from the exchange's streams; REST only for resyncs and fallbacks)"
	}
	switch {
	case overdue > time.Duration(cfg.staleTicks)*period:
		f.Status = statusFail
		f.Detail = fmt.Sprintf("newest tick period %s ended %s ago (%d periods of %s): no ticks arrive",
			start.UTC().Format(time.RFC3339), overdue.Round(time.Second), int(overdue/period), period)
		f.Fix = "check the orchestrator runs with RUN_JOBS=1 and is not frozen, and that straux runs (cpctl status, nats micro ls)"
	case weight > tick && tick > 0:
		f.Status, f.Detail = statusFail, plan+": over budget"
		f.Fix = "lower STRAUX_SNAPSHOTS_PER_TICK or STRAUX_DEPTH_LIMIT, or lengthen STR_AUX_RUNNER_INTERVAL_MS"
	case rounds > 1:
		f.Status = statusWarn
		f.Detail = fmt.Sprintf("%s: the universe does not fit, each symbol is sampled every %d ticks (%s)", plan, rounds, time.Duration(rounds)*period)
		f.Fix = "to sample every symbol each tick: lengthen STR_AUX_RUNNER_INTERVAL_MS, raise STRAUX_WEIGHT_SHARE_PCT, lower STRAUX_SNAPSHOTS_PER_TICK, or shrink the universe"
	default:
		f.Status, f.Detail = statusOK, plan+fmt.Sprintf(" (newest %s, %s)", start.UTC().Format(time.RFC3339), status)
	}
	return f
}

func doctorNATS(ctx context.Context, cfg doctorConfig) []doctorFinding {
	reach := doctorFinding{Check: "nats.reachable"}
	safe := config.SafeNATSURL(cfg.natsURL)
	nc, err := dialNATS(cfg.natsURL, nats.Name("cpctl doctor"), nats.Timeout(cfg.timeout), nats.MaxReconnects(0))
	if err != nil {
		reach.Status, reach.Detail = statusFail, fmt.Sprintf("%s: %v", safe, err)
		reach.Fix = "check NATS_URL and that nats-server runs (make dev, docker compose up nats)"
		return []doctorFinding{reach,
			{Check: "nats.jetstream", Status: statusSkip, Detail: "NATS unreachable"},
			{Check: "nats.topology", Status: statusSkip, Detail: "NATS unreachable"}}
	}
	defer nc.Close()
	reach.Status, reach.Detail = statusOK, fmt.Sprintf("%s (server %s)", safe, nc.ConnectedServerVersion())
	out := []doctorFinding{reach}

	cctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	js, err := jetstream.New(nc)
	if err == nil {
		_, err = js.AccountInfo(cctx)
	}
	jsf := doctorFinding{Check: "nats.jetstream"}
	if err != nil {
		jsf.Status, jsf.Detail = statusFail, fmt.Sprintf("JetStream unavailable: %v", err)
		jsf.Fix = "run nats-server with JetStream (-js, or jetstream {} in its config) and give the account JetStream"
		return append(out, jsf, doctorFinding{Check: "nats.topology", Status: statusSkip, Detail: "JetStream unavailable"})
	}
	jsf.Status, jsf.Detail = statusOK, "enabled"
	out = append(out, jsf)

	drift, err := cfg.topology.Drift(cctx, js)
	if err != nil {
		return append(out, doctorFinding{Check: "nats.topology", Status: statusError, Detail: err.Error()})
	}
	if len(drift) == 0 {
		return append(out, doctorFinding{Check: "nats.topology", Status: statusOK, Detail: fmt.Sprintf(
			"%d streams, %d durables and %d bucket as declared", len(cfg.topology.Streams), len(cfg.topology.Consumers), len(cfg.topology.Buckets))})
	}
	// One line per stream or durable that differs, naming each setting.
	var order []string
	byName := map[string][]events.Drift{}
	for _, d := range drift {
		name := "nats.stream " + d.Stream
		if d.Consumer != "" {
			name = "nats.consumer " + d.Stream + "/" + d.Consumer
		}
		if _, ok := byName[name]; !ok {
			order = append(order, name)
		}
		byName[name] = append(byName[name], d)
	}
	for _, name := range order {
		ds := byName[name]
		f := doctorFinding{Check: name, Status: statusWarn, Drift: ds}
		var parts, fixes []string
		for _, d := range ds {
			if !d.Configured {
				f.Status = statusFail
			}
			if d.Setting == "exists" {
				parts = append(parts, "missing")
			} else {
				parts = append(parts, fmt.Sprintf("%s is %s, declared %s", d.Setting, d.Live, d.Declared))
			}
			if fix := d.Fix(); len(fixes) == 0 || fixes[len(fixes)-1] != fix {
				fixes = append(fixes, fix)
			}
		}
		f.Detail, f.Fix = strings.Join(parts, "; "), strings.Join(fixes, "; ")
		out = append(out, f)
	}
	return out
}

// doctorExchange checks the exchange: /api/v3/ping, the clock against /api/v3/time, and with a
// key configured, one signed call. The secret is only ever used to sign.
func doctorExchange(ctx context.Context, cfg doctorConfig, pool *pgxpool.Pool) []doctorFinding {
	reach := doctorFinding{Check: "exchange.reachable"}
	skew := doctorFinding{Check: "exchange.clock_skew"}
	key := doctorFinding{Check: "exchange.api_key"}
	cctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	hc := &http.Client{Timeout: cfg.timeout}
	client, err := exchange.New(exchange.Config{BaseURL: cfg.exchangeURL, APIKey: cfg.apiKey, APISecret: cfg.apiSecret,
		HTTPClient: hc, RecvWindow: cfg.recvWindow, MaxRetries: -1, WeightLimit: 6000, Now: cfg.now})
	if err != nil {
		reach.Status, reach.Detail, reach.Fix = statusFail, err.Error(), "set BINANCE_BASE_URL to the exchange's scheme and host"
		return []doctorFinding{reach, {Check: skew.Check, Status: statusSkip, Detail: "no exchange"}, {Check: key.Check, Status: statusSkip, Detail: "no exchange"}}
	}
	if err := exchangePing(cctx, hc, cfg.exchangeURL); err != nil {
		reach.Status, reach.Detail = statusFail, fmt.Sprintf("%s: %v", cfg.exchangeURL, err)
		reach.Fix = "check BINANCE_BASE_URL, DNS, proxy and firewall; a 418 is an IP ban (wait for its Retry-After), a 429 the weight limit"
		return []doctorFinding{reach, {Check: skew.Check, Status: statusSkip, Detail: "exchange unreachable"},
			{Check: key.Check, Status: statusSkip, Detail: "exchange unreachable"}}
	}
	reach.Status, reach.Detail = statusOK, cfg.exchangeURL+" answers /api/v3/ping"

	off, err := client.SyncTime(cctx)
	abs := max(off, -off)
	switch {
	case err != nil:
		skew.Status, skew.Detail, skew.Fix = statusFail, fmt.Sprintf("GET /api/v3/time: %v", err), "see exchange.reachable"
	case abs >= cfg.recvWindow:
		skew.Status = statusFail
		skew.Detail = fmt.Sprintf("local clock is %s off the exchange's, at least recvWindow %s: signed calls fail with -1021 between resyncs",
			off.Round(time.Millisecond), cfg.recvWindow)
		skew.Fix = "sync the host clock (chronyc tracking, timedatectl status; enable NTP)"
	case abs >= cfg.recvWindow/2:
		skew.Status = statusWarn
		skew.Detail = fmt.Sprintf("local clock is %s off the exchange's, over half of recvWindow %s", off.Round(time.Millisecond), cfg.recvWindow)
		skew.Fix = "sync the host clock (chronyc tracking, timedatectl status; enable NTP)"
	default:
		skew.Status, skew.Detail = statusOK, fmt.Sprintf("%s off the exchange's clock (recvWindow %s)", off.Round(time.Millisecond), cfg.recvWindow)
	}

	if cfg.apiKey == "" {
		key.Status, key.Detail = statusSkip, "no BINANCE_API_KEY in this environment: signed calls not checked (cinimport's trade sync needs a key)"
		return []doctorFinding{reach, skew, key}
	}
	symbol := "BTCUSDT"
	if pool != nil {
		_ = pool.QueryRow(cctx, doctorSymbolSQL).Scan(&symbol) // none: the default symbol will do
	}
	_, err = client.MyTrades(cctx, exchange.MyTradesRequest{Symbol: symbol, Limit: 1})
	switch {
	case err == nil:
		key.Status, key.Detail = statusOK, fmt.Sprintf("signed GET /api/v3/myTrades %s accepted (key %s)", symbol, maskKey(cfg.apiKey))
	case errors.Is(err, exchange.ErrInvalidAPIKey):
		key.Status, key.Detail = statusFail, fmt.Sprintf("key %s refused: %v", maskKey(cfg.apiKey), err)
		key.Fix = "check BINANCE_API_KEY, the key's IP restriction and its Enable Reading permission"
	case errors.Is(err, exchange.ErrInvalidSignature):
		key.Status, key.Detail = statusFail, fmt.Sprintf("signature refused for key %s: %v", maskKey(cfg.apiKey), err)
		key.Fix = "BINANCE_API_SECRET does not belong to BINANCE_API_KEY: set the key's own secret"
	case errors.Is(err, exchange.ErrClockSkew):
		key.Status, key.Detail, key.Fix = statusFail, err.Error(), "sync the host clock (see exchange.clock_skew)"
	default:
		key.Status, key.Detail = statusFail, fmt.Sprintf("signed GET /api/v3/myTrades %s: %v", symbol, err)
		key.Fix = "see exchange.reachable; the call needs weight 20"
	}
	return []doctorFinding{reach, skew, key}
}

// exchangePing is GET /api/v3/ping (weight 1).
func exchangePing(ctx context.Context, hc *http.Client, base string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/api/v3/ping", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			return fmt.Errorf("GET /api/v3/ping: %s (Retry-After %ss)", resp.Status, ra)
		}
		return fmt.Errorf("GET /api/v3/ping: %s", resp.Status)
	}
	return nil
}

// maskKey shows enough of an API key to tell keys apart, never all of it.
func maskKey(k string) string {
	if len(k) <= 8 {
		return "****"
	}
	return k[:4] + "…" + k[len(k)-4:]
}

func printDoctorTable(out io.Writer, findings []doctorFinding) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSTATUS\tDETAIL\tWHAT TO DO")
	failed, warned := 0, 0
	for _, f := range findings {
		switch f.Status {
		case statusFail, statusError:
			failed++
		case statusWarn:
			warned++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Check, strings.ToUpper(f.Status), f.Detail, f.Fix)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(out, "\n%d findings: %d failed, %d warnings\n", len(findings), failed, warned)
	return err
}

func printDoctorJSON(out io.Writer, healthy bool, findings []doctorFinding) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Healthy  bool            `json:"healthy"`
		Findings []doctorFinding `json:"findings"`
	}{healthy, findings})
}
