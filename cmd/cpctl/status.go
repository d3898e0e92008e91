package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/db"
	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/jobs"
	"cryptopill.dev/jobs/libs/service"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
)

// `cpctl status`: the whole system on one screen. gatherStatus builds one statusReport from
// Postgres and NATS; the table, JSON and the console's HTML all render that struct.

// statusServices are the services a deployment runs; each needs a live replica.
var statusServices = []string{events.ServiceOrchestrator, events.ServiceStraux, events.ServiceCinimport, events.ServiceSeeder}

// statusModules are the tick modules the orchestrator publishes.
var statusModules = []string{events.ModuleStraux, events.ModuleCinimport}

// statusOptions are status's thresholds and sources.
type statusOptions struct {
	// Now is the clock ages are taken against (tests pass a fixed one).
	Now func() time.Time
	// DiscoveryWait is how long replies to $SRV.INFO / $SRV.STATS are collected.
	DiscoveryWait time.Duration
	// StaleRounds: a symbol is stale when its newest good sample (or good vector) is older than
	// StaleRounds × tick period × rotation rounds (the time a full rotation of the universe takes).
	StaleRounds int
	// MissedPeriods: a module's ticks are missed when its newest tick is older than this many periods.
	MissedPeriods int
	// MaxSlotLag is the retained WAL beyond which a slot is unhealthy.
	MaxSlotLag int64
	// FailingAfter: a job kind is failing when one of its jobs failed this many occurrences in a row.
	FailingAfter int
	// LostWindow: sessions seen within it are listed (older lost ones are history).
	LostWindow time.Duration
	// FlagsBucket is the orchestrator's operator flags bucket (FLAGS_BUCKET).
	FlagsBucket string
	// Failures and Periods bound the recent job failures and tick periods listed.
	Failures, Periods int
}

func defaultStatusOptions() statusOptions {
	return statusOptions{Now: time.Now, DiscoveryWait: 500 * time.Millisecond, StaleRounds: 3, MissedPeriods: 2,
		MaxSlotLag: 1 << 30, FailingAfter: 3, LostWindow: 24 * time.Hour, FlagsBucket: "CP_FLAGS", Failures: 10, Periods: 30}
}

// statusReport is everything status shows.
type statusReport struct {
	At       time.Time `json:"at"`
	Database string    `json:"database"`
	NATS     string    `json:"nats"`
	Healthy  bool      `json:"healthy"`
	// Problems says, one line each, why the report is unhealthy.
	Problems []string `json:"problems"`

	Services    []serviceStatus   `json:"services"`
	Ticks       []tickStatus      `json:"ticks"`
	Freshness   freshnessStatus   `json:"freshness"`
	TickPeriods []tickPeriod      `json:"tick_periods"`
	Relay       []slotStatus      `json:"relay"`
	Streams     []streamStatus    `json:"streams"`
	Jobs        []jobBacklog      `json:"jobs"`
	JobFailures []jobFailure      `json:"job_failures"`
	JobRuns     []jobRun          `json:"job_runs"`
	Running     []runningJob      `json:"running_jobs"`
	Paused      []jobs.KindPause  `json:"paused_kinds"`
	DeadLetters []deadLetterCount `json:"dead_letters"`
	Sessions    []openSession     `json:"open_sessions"`
	Trades      []accountTrades   `json:"account_trades"`
	MarketData  marketDataStatus  `json:"market_data"`
}

// marketDataStatus is where straux's samples came from: its stream members and the newest closed
// period's samples by source.
type marketDataStatus struct {
	Members []streamMember `json:"stream_members"`
	// Period is the newest closed period (nil: none yet).
	Period       *time.Time `json:"period,omitempty"`
	FromStream   int        `json:"from_stream"`
	FromREST     int        `json:"from_rest"`
	StreamMissed int        `json:"stream_missed"` // stream down and the REST budget spent: no sample
	NotTrading   int        `json:"not_trading"`
	BookAgeP99Ms *float64   `json:"book_age_p99_ms,omitempty"`
	Problem      string     `json:"problem,omitempty"`
}

type streamMember struct {
	Replica string        `json:"replica"`
	Host    string        `json:"host"`
	Streams int           `json:"streams"`
	Live    bool          `json:"live"`
	SeenAgo time.Duration `json:"seen_ago_ns"`
}

type serviceStatus struct {
	Name     string          `json:"name"`
	Live     int             `json:"live"`
	Replicas []replicaStatus `json:"replicas"`
	Problem  string          `json:"problem,omitempty"`
}

// replicaStatus is one process: seen by the NATS services API, by its session stamp, or both.
type replicaStatus struct {
	// State is live (seen by the services API or a fresh heartbeat) or lost (no heartbeat for
	// three intervals and never stopped).
	State     string     `json:"state"`
	Discovery bool       `json:"discovery"` // answered $SRV.INFO
	SessionID int64      `json:"session_id,omitempty"`
	Version   string     `json:"version"`
	Host      string     `json:"host"`
	PID       int        `json:"pid,omitempty"`
	Started   time.Time  `json:"started"`
	LastSeen  *time.Time `json:"last_seen,omitempty"`
	HTTP      string     `json:"http,omitempty"`
	Requests  int        `json:"ops_requests"`
	Errors    int        `json:"ops_errors"`
}

type tickStatus struct {
	Module     string        `json:"module"`
	LastPeriod *time.Time    `json:"last_period,omitempty"`
	Period     time.Duration `json:"period_ns"`
	Age        time.Duration `json:"age_ns"`
	Frozen     bool          `json:"frozen"`
	FrozenBy   string        `json:"frozen_by,omitempty"`
	Missed     bool          `json:"missed"`
	Problem    string        `json:"problem,omitempty"`
}

type freshnessStatus struct {
	// Threshold is the age beyond which a sample or vector is stale, and how it was derived.
	Threshold time.Duration `json:"threshold_ns"`
	Basis     string        `json:"basis"`
	Windows   []string      `json:"windows"`
	Symbols   []symbolFresh `json:"symbols"`
}

type symbolFresh struct {
	Symbol       string        `json:"symbol"`
	GoodSample   *time.Time    `json:"good_sample,omitempty"`
	SampleAge    time.Duration `json:"sample_age_ns"`
	NewestReason string        `json:"newest_reason,omitempty"` // the newest sample failed: why
	Stale        bool          `json:"stale"`
	Vectors      []windowFresh `json:"vectors"`
	Problem      string        `json:"problem,omitempty"`
}

type windowFresh struct {
	Window string        `json:"window"`
	Newest *time.Time    `json:"newest,omitempty"`
	Age    time.Duration `json:"age_ns"`
	Stale  bool          `json:"stale"`
}

type tickPeriod struct {
	Start     time.Time     `json:"start"`
	Period    time.Duration `json:"period_ns"`
	Status    string        `json:"status"` // planned, done, skipped
	Planned   int           `json:"planned"`
	Sampled   int           `json:"sampled"`
	Failed    int           `json:"failed"`
	Abandoned int           `json:"abandoned"`
	Reason    string        `json:"reason,omitempty"`
}

type slotStatus struct {
	Slot      string `json:"slot"`
	Active    bool   `json:"active"`
	WALStatus string `json:"wal_status"`
	Retained  *int64 `json:"retained_bytes"`
	Lag       *int64 `json:"confirmed_lag_bytes"`
	// Relays is how many orchestrator replicas are live: one streams (active), the rest stand by.
	Relays  int    `json:"relays"`
	Problem string `json:"problem,omitempty"`
}

type streamStatus struct {
	Name      string           `json:"name"`
	Messages  uint64           `json:"messages"`
	Bytes     uint64           `json:"bytes"`
	Consumers []consumerStatus `json:"consumers"`
	Problem   string           `json:"problem,omitempty"`
}

type consumerStatus struct {
	Name        string `json:"name"`
	Pending     uint64 `json:"pending"`
	AckPending  int    `json:"ack_pending"`
	Redelivered int    `json:"redelivered"`
	Waiting     int    `json:"waiting"`
}

type jobBacklog struct {
	Kind                string         `json:"kind"`
	Status              string         `json:"status"`
	Count               int64          `json:"count"`
	OldestDueAge        *time.Duration `json:"oldest_due_age_ns,omitempty"`
	ConsecutiveFailures int            `json:"consecutive_failures"`
}

type jobFailure struct {
	ID       int64     `json:"id"`
	Kind     string    `json:"kind"`
	Payload  string    `json:"payload"`
	Attempts int       `json:"attempts"`
	Error    string    `json:"error"`
	At       time.Time `json:"at"`
}

// runningJob is a job an engine holds now.
type runningJob struct {
	ID       int64     `json:"id"`
	Kind     string    `json:"kind"`
	Key      string    `json:"key"`
	Attempts int       `json:"attempts"`
	Started  time.Time `json:"started"`
	Worker   string    `json:"worker"`
}

// jobRun is one row of ops.job_run: a job's run or a one-shot's.
type jobRun struct {
	ID       int64      `json:"id"`
	Kind     string     `json:"kind"`
	Name     string     `json:"name"`
	Status   string     `json:"status"`
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished,omitempty"`
	Error    string     `json:"error,omitempty"`
}

// Duration is how long a finished run took ("" while running).
func (r jobRun) Duration() string {
	if r.Finished == nil {
		return ""
	}
	return r.Finished.Sub(r.Started).Round(time.Millisecond).String()
}

type deadLetterCount struct {
	Consumer string `json:"consumer"`
	Subject  string `json:"subject"`
	Count    uint64 `json:"count"`
}

type openSession struct {
	ID         int64      `json:"id"`
	Scope      string     `json:"account_scope"`
	Label      string     `json:"label,omitempty"`
	Started    time.Time  `json:"started"`
	LastImport *time.Time `json:"last_import,omitempty"`
	Moves      int64      `json:"moves_imported"`
}

// accountTrades is cinimport's trade sync of one account scope: its myTrades cursors and its
// newest trade.
type accountTrades struct {
	Scope         string     `json:"account_scope"`
	Symbols       int        `json:"symbols"`
	CursorUpdated time.Time  `json:"cursor_updated"`
	NewestTrade   *time.Time `json:"newest_trade,omitempty"`
	NewestStored  *time.Time `json:"newest_stored,omitempty"`
}

// statusSources are the connections status reads.
type statusSources struct {
	Pool *pgxpool.Pool
	NC   *nats.Conn
	JS   jetstream.JetStream
}

// gatherStatus reads everything and decides health. A section that cannot be read is a problem
// of its own (named), the other sections are still read.
func gatherStatus(ctx context.Context, src statusSources, opt statusOptions) *statusReport {
	r := &statusReport{At: opt.Now().UTC()}
	problem := func(format string, args ...any) string {
		p := fmt.Sprintf(format, args...)
		r.Problems = append(r.Problems, p)
		return p
	}
	r.Services = gatherServices(ctx, src, opt, r.At, problem)
	r.Ticks = gatherTicks(ctx, src, opt, r.At, problem)
	r.TickPeriods = gatherTickPeriods(ctx, src, opt, problem)
	r.Freshness = gatherFreshness(ctx, src, opt, r, problem)
	r.Relay = gatherRelay(ctx, src, opt, r, problem)
	r.Streams, r.DeadLetters = gatherStreams(ctx, src, problem)
	r.Jobs, r.JobFailures = gatherJobs(ctx, src, opt, r.At, problem)
	r.JobRuns = gatherJobRuns(ctx, src, opt, problem)
	r.Running = gatherRunningJobs(ctx, src, opt, problem)
	var err error
	if r.Paused, err = jobs.Paused(ctx, src.Pool); err != nil {
		problem("jobs: read paused kinds: %v", err)
	}
	r.Sessions = gatherSessions(ctx, src, problem)
	r.Trades = gatherAccountTrades(ctx, src, problem)
	r.MarketData = gatherMarketData(ctx, src, problem)
	r.Healthy = len(r.Problems) == 0
	return r
}

// discover collects every replica's reply to a services API request ($SRV.INFO, $SRV.STATS):
// each replica answers, so replies are gathered for wait.
func discover[T any](nc *nats.Conn, subject string, wait time.Duration) ([]T, error) {
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("discover %s: %w", subject, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		return nil, fmt.Errorf("discover %s: %w", subject, err)
	}
	var out []T
	deadline := time.Now().Add(wait)
	for {
		msg, err := sub.NextMsg(time.Until(deadline))
		if errors.Is(err, nats.ErrTimeout) {
			// A refused request or inbox is only reported asynchronously: without this check a
			// permission problem would read as "no replica".
			if le := nc.LastError(); le != nil && errors.Is(le, nats.ErrPermissionViolation) {
				return out, fmt.Errorf("discover %s: %w", subject, le)
			}
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("discover %s: %w", subject, err)
		}
		var v T
		if err := json.Unmarshal(msg.Data, &v); err != nil {
			return out, fmt.Errorf("discover %s: reply %q: %w", subject, msg.Data, err)
		}
		out = append(out, v)
	}
}

func gatherServices(ctx context.Context, src statusSources, opt statusOptions, now time.Time, problem func(string, ...any) string) []serviceStatus {
	byName := map[string]*serviceStatus{}
	var order []string
	get := func(name string) *serviceStatus {
		if s, ok := byName[name]; ok {
			return s
		}
		s := &serviceStatus{Name: name}
		byName[name] = s
		order = append(order, name)
		return s
	}
	for _, n := range statusServices {
		get(n)
	}
	// Sessions first: a replica the services API lists is joined to its session by session_id.
	rows, err := src.Pool.Query(ctx, mustSQL("status_sessions"), now.Add(-opt.LostWindow))
	if err == nil {
		var (
			rs       replicaStatus
			name     string
			env      string
			lastSeen *time.Time
			every    *time.Duration
		)
		_, err = pgx.ForEachRow(rows, []any{&rs.SessionID, &name, &rs.Version, &rs.Host, &rs.PID, &env, &rs.Started, &lastSeen, &every}, func() error {
			beat := service.DefaultHeartbeat
			if every != nil && *every > 0 {
				beat = *every
			}
			seen := rs.Started
			if lastSeen != nil {
				seen = *lastSeen
			}
			r := rs
			r.LastSeen = lastSeen
			r.State = "lost"
			if now.Sub(seen) <= 3*beat {
				r.State = "live"
			}
			s := get(name)
			s.Replicas = append(s.Replicas, r)
			return nil
		})
	}
	if err != nil {
		problem("sessions: read ops.session_log: %v", err)
	}
	// Joined by index: pointers into Replicas would not survive its appends.
	index := map[int64][2]int{}
	for i, n := range order {
		for j, r := range byName[n].Replicas {
			index[r.SessionID] = [2]int{i, j}
		}
	}
	// Both requests wait out DiscoveryWait: asked together, the wait is paid once.
	var (
		stats    []micro.Stats
		statsErr error
		done     = make(chan struct{})
	)
	go func() {
		defer close(done)
		stats, statsErr = discover[micro.Stats](src.NC, "$SRV.STATS", opt.DiscoveryWait)
	}()
	infos, err := discover[micro.Info](src.NC, "$SRV.INFO", opt.DiscoveryWait)
	<-done
	if err != nil {
		problem("services: %v", err)
	}
	if statsErr != nil {
		problem("services: %v", statsErr)
	}
	statsByID := map[string]micro.Stats{}
	for _, s := range stats {
		statsByID[s.ID] = s
	}
	for _, in := range infos {
		reqs, errs := 0, 0
		for _, e := range statsByID[in.ID].Endpoints {
			reqs += e.NumRequests
			errs += e.NumErrors
		}
		sid, _ := strconv.ParseInt(in.Metadata[service.MetaSessionID], 10, 64)
		if at, ok := index[sid]; ok && sid != 0 {
			r := &byName[order[at[0]]].Replicas[at[1]]
			r.Discovery, r.State, r.HTTP, r.Requests, r.Errors = true, "live", in.Metadata[service.MetaHTTP], reqs, errs
			continue
		}
		started, _ := time.Parse(time.RFC3339, in.Metadata[service.MetaStarted])
		pid, _ := strconv.Atoi(in.Metadata[service.MetaPID])
		s := get(in.Name)
		s.Replicas = append(s.Replicas, replicaStatus{State: "live", Discovery: true, SessionID: sid,
			Version: in.Metadata[service.MetaVersion], Host: in.Metadata[service.MetaHost], PID: pid, Started: started,
			HTTP: in.Metadata[service.MetaHTTP], Requests: reqs, Errors: errs})
	}
	out := make([]serviceStatus, 0, len(order))
	for _, n := range order {
		s := byName[n]
		lost := 0
		for _, r := range s.Replicas {
			if r.State == "live" {
				s.Live++
			} else {
				lost++
			}
		}
		switch {
		case s.Live == 0 && lost > 0:
			s.Problem = problem("service %s: no live replica (%d lost: no heartbeat for 3 intervals, never stopped)", n, lost)
		case s.Live == 0:
			s.Problem = problem("service %s: no live replica (none in the NATS services API, no fresh session)", n)
		}
		// A lost replica next to live ones is shown, not a failure: the live ones took its work over.
		out = append(out, *s)
	}
	return out
}

func gatherTicks(ctx context.Context, src statusSources, opt statusOptions, now time.Time, problem func(string, ...any) string) []tickStatus {
	flags := map[string]string{}
	kv, err := src.JS.KeyValue(ctx, opt.FlagsBucket)
	if err == nil {
		for _, k := range append([]string{"freeze"}, prefixed("freeze.", statusModules)...) {
			e, err := kv.Get(ctx, k)
			if err == nil {
				flags[k] = string(e.Value())
			} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
				problem("ticks: read %s %s: %v", opt.FlagsBucket, k, err)
			}
		}
	} else if !errors.Is(err, jetstream.ErrBucketNotFound) {
		problem("ticks: flags bucket %s: %v", opt.FlagsBucket, err)
	}
	stream, err := src.JS.Stream(ctx, events.StreamTicks)
	if err != nil {
		problem("ticks: stream %s: %v", events.StreamTicks, err)
	}
	var out []tickStatus
	for _, m := range statusModules {
		t := tickStatus{Module: m}
		for _, k := range []string{"freeze", "freeze." + m} {
			if flagSet(flags[k]) {
				t.Frozen, t.FrozenBy = true, k
			}
		}
		if stream != nil {
			raw, err := stream.GetLastMsgForSubject(ctx, events.TickSubject(m))
			switch {
			case errors.Is(err, jetstream.ErrMsgNotFound):
				if !t.Frozen {
					t.Missed = true
					t.Problem = problem("ticks %s: none in %s (is the orchestrator running with RUN_JOBS=1?)", m, events.StreamTicks)
				}
			case err != nil:
				t.Problem = problem("ticks %s: read the last tick: %v", m, err)
			default:
				_, ev, err := events.Decode(ctx, &nats.Msg{Subject: raw.Subject, Header: raw.Header, Data: raw.Data})
				tick, ok := (*eventsv1.Tick)(nil), false
				if err == nil {
					tick, ok = ev.Payload.(*eventsv1.Tick)
				}
				if !ok || tick.GetPeriodStart() == nil || tick.GetPeriod() == nil {
					t.Problem = problem("ticks %s: last tick (seq %d) does not decode: %v", m, raw.Sequence, err)
					break
				}
				start := tick.GetPeriodStart().AsTime()
				t.LastPeriod, t.Period, t.Age = &start, tick.GetPeriod().AsDuration(), now.Sub(start)
				if !t.Frozen && t.Age > time.Duration(opt.MissedPeriods)*t.Period {
					t.Missed = true
					t.Problem = problem("ticks %s: missed: last period %s is %s old (> %d periods of %s)",
						m, start.Format(time.RFC3339), roundAge(t.Age), opt.MissedPeriods, t.Period)
				}
			}
		}
		out = append(out, t)
	}
	return out
}

func prefixed(p string, ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = p + s
	}
	return out
}

// flagSet is the orchestrator's reading of a flag value (services/orchestrator ticks.isSet).
func flagSet(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "0", "false", "no", "off":
		return false
	}
	return true
}

func gatherTickPeriods(ctx context.Context, src statusSources, opt statusOptions, problem func(string, ...any) string) []tickPeriod {
	var (
		out []tickPeriod
		p   tickPeriod
		rot int
	)
	rows, err := src.Pool.Query(ctx, mustSQL("status_tick_periods"), opt.Periods)
	if err == nil {
		_, err = pgx.ForEachRow(rows, []any{&p.Start, &p.Period, &p.Status, &rot, &p.Planned, &p.Sampled, &p.Failed, &p.Abandoned, &p.Reason}, func() error {
			out = append(out, p)
			return nil
		})
	}
	if err != nil {
		problem("tick periods: read str_aux.tick_periods: %v", err)
	}
	return out
}

func gatherFreshness(ctx context.Context, src statusSources, opt statusOptions, r *statusReport, problem func(string, ...any) string) freshnessStatus {
	f := freshnessStatus{}
	// The threshold: a full rotation of the universe (tick period × rotation rounds of the
	// newest plan), StaleRounds times over. Without a plan, the straux tick's own period.
	var (
		period time.Duration
		rounds = 1
	)
	err := src.Pool.QueryRow(ctx, `SELECT period, rotation_rounds FROM str_aux.tick_periods ORDER BY period_start DESC LIMIT 1`).Scan(&period, &rounds)
	if errors.Is(err, pgx.ErrNoRows) {
		err = nil
	}
	if err != nil {
		problem("freshness: read str_aux.tick_periods: %v", err)
	}
	basis := "newest straux tick plan"
	if period == 0 {
		for _, t := range r.Ticks {
			if t.Module == events.ModuleStraux && t.Period > 0 {
				period, basis = t.Period, "newest straux tick"
			}
		}
	}
	if period == 0 {
		period, basis = 40*time.Second, "default straux period (no tick seen)"
	}
	rounds = max(rounds, 1)
	f.Threshold = time.Duration(opt.StaleRounds*rounds) * period
	f.Basis = fmt.Sprintf("%d × period %s × %d rotation rounds (%s)", opt.StaleRounds, period, rounds, basis)

	rows, err := src.Pool.Query(ctx, mustSQL("status_freshness"))
	if err != nil {
		problem("freshness: %v", err)
		return f
	}
	var (
		symbol             string
		good, newest, vec  *time.Time
		reason, windowName *string
	)
	idx := map[string]int{}
	windows := map[string]bool{}
	_, err = pgx.ForEachRow(rows, []any{&symbol, &good, &newest, &reason, &windowName, &vec}, func() error {
		i, ok := idx[symbol]
		if !ok {
			s := symbolFresh{Symbol: symbol, GoodSample: good}
			if good != nil {
				s.SampleAge = r.At.Sub(*good)
			}
			if reason != nil && (good == nil || newest.After(*good)) {
				s.NewestReason = *reason
			}
			f.Symbols = append(f.Symbols, s)
			i = len(f.Symbols) - 1
			idx[symbol] = i
		}
		if windowName != nil {
			w := windowFresh{Window: *windowName, Newest: vec}
			if vec != nil {
				w.Age = r.At.Sub(*vec)
			}
			w.Stale = vec == nil || w.Age > f.Threshold
			f.Symbols[i].Vectors = append(f.Symbols[i].Vectors, w)
			if !windows[*windowName] {
				windows[*windowName] = true
				f.Windows = append(f.Windows, *windowName)
			}
		}
		return nil
	})
	if err != nil {
		problem("freshness: %v", err)
	}
	for i := range f.Symbols {
		s := &f.Symbols[i]
		var why []string
		switch {
		case s.GoodSample == nil:
			why = append(why, "no good sample ever")
		case s.SampleAge > f.Threshold:
			why = append(why, fmt.Sprintf("newest good sample %s old", roundAge(s.SampleAge)))
		}
		if s.NewestReason != "" && len(why) > 0 {
			why[len(why)-1] += fmt.Sprintf(" (newest sample failed: %s)", s.NewestReason)
		}
		var staleWin []string
		for _, w := range s.Vectors {
			if w.Stale {
				staleWin = append(staleWin, w.Window)
			}
		}
		if len(staleWin) > 0 {
			why = append(why, "no good vector within "+roundAge(f.Threshold)+" for "+strings.Join(staleWin, ","))
		}
		if len(why) > 0 {
			s.Stale = true
			s.Problem = problem("symbol %s stale: %s (threshold %s)", s.Symbol, strings.Join(why, "; "), roundAge(f.Threshold))
		}
	}
	return f
}

func gatherRelay(ctx context.Context, src statusSources, opt statusOptions, r *statusReport, problem func(string, ...any) string) []slotStatus {
	slots, err := db.ReplicationSlots(ctx, src.Pool)
	if err != nil {
		problem("relay: %v", err)
		return nil
	}
	relays := 0
	for _, s := range r.Services {
		if s.Name == events.ServiceOrchestrator {
			relays = s.Live
		}
	}
	out := make([]slotStatus, 0, len(slots))
	for _, s := range slots {
		st := slotStatus{Slot: s.Slot, Active: s.Active, WALStatus: s.WALStatus, Retained: s.RetainedBytes, Lag: s.ConfirmedLagBytes, Relays: relays}
		switch {
		case s.WALStatus == "lost":
			st.Problem = problem("relay slot %s: lost (wal_status lost): Postgres removed WAL it needed; see docs/orchestrator.md (CDC_RECREATE_LOST_SLOT)", s.Slot)
		case s.RetainedBytes != nil && *s.RetainedBytes > opt.MaxSlotLag:
			st.Problem = problem("relay slot %s: retains %s of WAL (> %s)%s", s.Slot, bytesIEC(*s.RetainedBytes), bytesIEC(opt.MaxSlotLag), map[bool]string{false: ", nobody streams from it", true: ""}[s.Active])
		case s.WALStatus == "unreserved":
			st.Problem = problem("relay slot %s: wal_status unreserved: about to be lost", s.Slot)
		}
		out = append(out, st)
	}
	return out
}

func gatherStreams(ctx context.Context, src statusSources, problem func(string, ...any) string) ([]streamStatus, []deadLetterCount) {
	topo := events.NewTopology(events.TopologyConfig{Replicas: 1})
	var (
		out  []streamStatus
		dead []deadLetterCount
	)
	for _, decl := range topo.Streams {
		ss := streamStatus{Name: decl.Name}
		stream, err := src.JS.Stream(ctx, decl.Name)
		if err != nil {
			ss.Problem = problem("stream %s: %v (its owner %s creates it at start)", decl.Name, err, decl.Owner)
			out = append(out, ss)
			continue
		}
		info := stream.CachedInfo()
		ss.Messages, ss.Bytes = info.State.Msgs, info.State.Bytes
		for _, c := range topo.Consumers {
			if c.Stream != decl.Name {
				continue
			}
			cons, err := stream.Consumer(ctx, c.Config.Durable)
			if err != nil {
				ss.Problem = problem("consumer %s on %s: %v (its owner %s creates it at start)", c.Config.Durable, decl.Name, err, c.Owner)
				continue
			}
			ci := cons.CachedInfo()
			ss.Consumers = append(ss.Consumers, consumerStatus{Name: ci.Name, Pending: ci.NumPending, AckPending: ci.NumAckPending,
				Redelivered: ci.NumRedelivered, Waiting: ci.NumWaiting})
		}
		if decl.Name == events.StreamDLQ {
			// One subject per consumer that dead-lettered: cp.dlq.<consumer>.
			full, err := stream.Info(ctx, jetstream.WithSubjectFilter(events.SubjectsDLQ))
			if err != nil {
				problem("dead letters: %v", err)
			} else {
				for subj, n := range full.State.Subjects {
					dead = append(dead, deadLetterCount{Consumer: strings.TrimPrefix(subj, "cp.dlq."), Subject: subj, Count: n})
				}
				sort.Slice(dead, func(i, j int) bool { return dead[i].Consumer < dead[j].Consumer })
				for _, d := range dead {
					problem("dead letters: %d from consumer %s (cpctl dlq list -consumer %s; nats stream view %s --subject %s)", d.Count, d.Consumer, d.Consumer, events.StreamDLQ, d.Subject)
				}
			}
		}
		out = append(out, ss)
	}
	return out, dead
}

func gatherJobs(ctx context.Context, src statusSources, opt statusOptions, now time.Time, problem func(string, ...any) string) ([]jobBacklog, []jobFailure) {
	var (
		out    []jobBacklog
		b      jobBacklog
		oldest *time.Time
	)
	rows, err := src.Pool.Query(ctx, mustSQL("status_jobs"), now)
	if err == nil {
		_, err = pgx.ForEachRow(rows, []any{&b.Kind, &b.Status, &b.Count, &oldest, &b.ConsecutiveFailures}, func() error {
			j := b
			if oldest != nil {
				age := now.Sub(*oldest)
				j.OldestDueAge = &age
			}
			out = append(out, j)
			return nil
		})
	}
	if err != nil {
		problem("jobs: read ingest.jobs: %v", err)
	}
	failing := map[string]int{}
	for _, j := range out {
		if j.ConsecutiveFailures >= opt.FailingAfter {
			failing[j.Kind] = max(failing[j.Kind], j.ConsecutiveFailures)
		}
	}
	kinds := make([]string, 0, len(failing))
	for k := range failing {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var fails []jobFailure
	var f jobFailure
	rows, err = src.Pool.Query(ctx, mustSQL("status_job_failures"), opt.Failures)
	if err == nil {
		_, err = pgx.ForEachRow(rows, []any{&f.ID, &f.Kind, &f.Payload, &f.Attempts, &f.Error, &f.At}, func() error {
			fails = append(fails, f)
			return nil
		})
	}
	if err != nil {
		problem("jobs: read failed jobs: %v", err)
	}
	for _, k := range kinds {
		last := ""
		for _, f := range fails {
			if f.Kind == k {
				last = ": last error " + strconv.Quote(f.Error)
				break
			}
		}
		problem("jobs %s: failing (%d occurrences in a row failed)%s (cpctl jobs list -kind %s -status failed)", k, failing[k], last, k)
	}
	return out, fails
}

func gatherJobRuns(ctx context.Context, src statusSources, opt statusOptions, problem func(string, ...any) string) []jobRun {
	var (
		out []jobRun
		j   jobRun
	)
	rows, err := src.Pool.Query(ctx, mustSQL("status_job_runs"), opt.Failures)
	if err == nil {
		_, err = pgx.ForEachRow(rows, []any{&j.ID, &j.Kind, &j.Name, &j.Status, &j.Started, &j.Finished, &j.Error}, func() error {
			out = append(out, j)
			return nil
		})
	}
	if err != nil {
		problem("jobs: read ops.job_run: %v", err)
	}
	return out
}

func gatherRunningJobs(ctx context.Context, src statusSources, opt statusOptions, problem func(string, ...any) string) []runningJob {
	var (
		out []runningJob
		j   runningJob
	)
	rows, err := src.Pool.Query(ctx, mustSQL("status_running_jobs"), opt.Failures)
	if err == nil {
		_, err = pgx.ForEachRow(rows, []any{&j.ID, &j.Kind, &j.Key, &j.Attempts, &j.Started, &j.Worker}, func() error {
			out = append(out, j)
			return nil
		})
	}
	if err != nil {
		problem("jobs: read running jobs: %v", err)
	}
	return out
}

func gatherSessions(ctx context.Context, src statusSources, problem func(string, ...any) string) []openSession {
	var (
		out []openSession
		s   openSession
	)
	rows, err := src.Pool.Query(ctx, mustSQL("status_open_sessions"))
	if err == nil {
		_, err = pgx.ForEachRow(rows, []any{&s.ID, &s.Scope, &s.Label, &s.Started, &s.LastImport, &s.Moves}, func() error {
			out = append(out, s)
			return nil
		})
	}
	if err != nil {
		problem("sessions: read cin_aux.rt_session: %v", err)
	}
	return out
}

func gatherAccountTrades(ctx context.Context, src statusSources, problem func(string, ...any) string) []accountTrades {
	var (
		out []accountTrades
		a   accountTrades
	)
	rows, err := src.Pool.Query(ctx, mustSQL("status_account_trades"))
	if err == nil {
		_, err = pgx.ForEachRow(rows, []any{&a.Scope, &a.Symbols, &a.CursorUpdated, &a.NewestTrade, &a.NewestStored}, func() error {
			out = append(out, a)
			return nil
		})
	}
	if err != nil {
		problem("account trades: read market.trade_cursors: %v", err)
	}
	return out
}

// gatherMarketData reads straux's stream members and the newest closed period's sources. Symbols
// left without a sample because their stream was down and the REST fallback budget was spent are
// a problem; REST fallbacks alone are not (they are shown).
func gatherMarketData(ctx context.Context, src statusSources, problem func(string, ...any) string) marketDataStatus {
	var (
		md marketDataStatus
		m  streamMember
	)
	rows, err := src.Pool.Query(ctx, mustSQL("status_stream_members"))
	if err == nil {
		_, err = pgx.ForEachRow(rows, []any{&m.Replica, &m.Host, &m.Streams, &m.Live, &m.SeenAgo}, func() error {
			md.Members = append(md.Members, m)
			return nil
		})
	}
	if err != nil {
		problem("market data: read str_aux.stream_members: %v", err)
	}
	var period time.Time
	err = src.Pool.QueryRow(ctx, mustSQL("status_market_data")).
		Scan(&period, &md.FromStream, &md.FromREST, &md.StreamMissed, &md.NotTrading, &md.BookAgeP99Ms)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		problem("market data: read the newest period's samples: %v", err)
	default:
		md.Period = &period
		if md.StreamMissed > 0 {
			md.Problem = problem("market data: %d symbols had no sample in the period of %s: their stream books were not live and the REST fallback was over budget or failed (their sample reasons; cp_straux_rest_fallbacks_total, services/straux/README.md)",
				md.StreamMissed, period.UTC().Format(time.RFC3339))
		}
	}
	return md
}

// roundAge prints a duration the way an operator reads an age.
func roundAge(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + roundAge(-d)
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	default:
		return d.Round(time.Minute).String()
	}
}

func bytesIEC(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func runStatus(ctx context.Context, args []string) int {
	return statusCommand(ctx, args, processEnv(), defaultStatusOptions())
}

func statusCommand(ctx context.Context, args []string, env cmdEnv, opt statusOptions) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprint(env.stderr, "usage: cpctl status [--json] [--watch [--interval D]] [--database-url URL] [--nats-url URL] [thresholds]\n\n"+
			"The whole system on one screen: service replicas (NATS services API and session stamps), ticks\n"+
			"per module, freshness per symbol and window, the relay's slot, streams and durables, the job\n"+
			"backlog, dead letters, OPEN sessions. Exit 0 healthy, 1 unhealthy (each reason printed),\n"+
			"2 usage or connection error. See docs/operations.md.\n\n")
		fs.PrintDefaults()
	}
	var (
		conn connFlags
		out  outputFlags
	)
	conn.register(fs)
	out.register(fs)
	watch := fs.Bool("watch", false, "refresh in place until interrupted")
	interval := fs.Duration("interval", 5*time.Second, "refresh interval of --watch")
	fs.DurationVar(&opt.DiscoveryWait, "discovery-wait", opt.DiscoveryWait, "how long replicas' replies to $SRV.INFO/$SRV.STATS are collected")
	fs.IntVar(&opt.StaleRounds, "stale-rounds", opt.StaleRounds, "a symbol is stale after this many full rotations (tick period × rotation rounds) without a good sample or vector")
	fs.IntVar(&opt.MissedPeriods, "missed-periods", opt.MissedPeriods, "a module's ticks are missed after this many periods without one")
	fs.Int64Var(&opt.MaxSlotLag, "max-slot-lag", opt.MaxSlotLag, "retained WAL bytes beyond which the relay slot is unhealthy")
	fs.IntVar(&opt.FailingAfter, "failing-after", opt.FailingAfter, "a job kind is failing after this many failed occurrences in a row")
	fs.StringVar(&opt.FlagsBucket, "flags-bucket", opt.FlagsBucket, "the orchestrator's flags bucket (FLAGS_BUCKET)")
	if err := fs.Parse(args); err != nil {
		return flagStatus(err)
	}
	var err error
	switch {
	case fs.NArg() > 0:
		err = usageErrorf("unexpected arguments %q", fs.Args())
	case *interval <= 0:
		err = usageErrorf("--interval %s: want a positive duration", *interval)
	case opt.StaleRounds < 1 || opt.MissedPeriods < 1 || opt.FailingAfter < 1:
		err = usageErrorf("--stale-rounds, --missed-periods and --failing-after want at least 1")
	}
	if err != nil {
		fs.Usage()
		return connStatus(env, "status", err)
	}
	src, closeSrc, dbURL, natsURL, err := openStatusSources(ctx, env, &conn)
	if err != nil {
		return connStatus(env, "status", err)
	}
	defer closeSrc()

	for {
		r := gatherStatus(ctx, src, opt)
		r.Database, r.NATS = dbURL, natsURL
		if *watch && !out.json && isTerminal(env.stdout) {
			fmt.Fprint(env.stdout, "\x1b[H\x1b[2J") // home and clear: refresh in place
		}
		if out.json {
			err = printJSON(env.stdout, r)
		} else {
			err = printStatusTable(env.stdout, r, newPainter(env.stdout))
		}
		if err != nil {
			return connStatus(env, "status", err)
		}
		if !*watch {
			return exitFor(r.Healthy)
		}
		select {
		case <-ctx.Done():
			return exitFor(r.Healthy)
		case <-time.After(*interval):
		}
	}
}

// openStatusSources connects to Postgres and NATS; a failure is a connection error (exit 2).
func openStatusSources(ctx context.Context, env cmdEnv, conn *connFlags) (statusSources, func(), string, string, error) {
	dbURL, err := conn.database(env)
	if err != nil {
		return statusSources{}, nil, "", "", err
	}
	natsURL, err := conn.nats(env)
	if err != nil {
		return statusSources{}, nil, "", "", err
	}
	pool, err := db.Open(ctx, dbURL)
	if err != nil {
		return statusSources{}, nil, "", "", connErrorf("%w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return statusSources{}, nil, "", "", connErrorf("postgres %s: %w", db.SafeURL(dbURL), db.Redact(err, dbURL))
	}
	nc, err := dialNATS(natsURL, nats.Name("cpctl"), nats.Timeout(5*time.Second))
	if err != nil {
		pool.Close()
		return statusSources{}, nil, "", "", connErrorf("connect nats %s: %w", config.SafeNATSURL(natsURL), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		pool.Close()
		return statusSources{}, nil, "", "", connErrorf("jetstream on %s: %w", config.SafeNATSURL(natsURL), err)
	}
	return statusSources{Pool: pool, NC: nc, JS: js}, func() { nc.Close(); pool.Close() }, db.SafeURL(dbURL), config.SafeNATSURL(natsURL), nil
}

func ageOf(t *time.Time, now time.Time) string {
	if t == nil {
		return "never"
	}
	return roundAge(now.Sub(*t)) + " ago"
}

func printStatusTable(w io.Writer, r *statusReport, p painter) error {
	fmt.Fprintf(w, "cpctl status at %s  database %s  nats %s\n", r.At.Format(time.RFC3339), r.Database, r.NATS)
	section := func(title string) { fmt.Fprintf(w, "\n%s\n", strings.ToUpper(title)) }

	section("services")
	t := newTable(w, "SERVICE", "STATE", "VERSION", "HOST", "PID", "SESSION", "STARTED", "LAST SEEN", "SEEN BY")
	for _, s := range r.Services {
		if len(s.Replicas) == 0 {
			t.row(s.Name, p.bad("none"), "", "", "", "", "", "", "")
		}
		for _, rp := range s.Replicas {
			by := []string{}
			if rp.Discovery {
				by = append(by, "nats")
			}
			if rp.SessionID != 0 && rp.LastSeen != nil {
				by = append(by, "heartbeat")
			}
			state := p.ok(rp.State)
			if rp.State != "live" {
				state = p.bad(rp.State)
			}
			t.row(s.Name, state, rp.Version, rp.Host, strconv.Itoa(rp.PID), strconv.FormatInt(rp.SessionID, 10),
				rp.Started.UTC().Format(time.RFC3339), ageOf(rp.LastSeen, r.At), strings.Join(by, "+"))
		}
	}
	if err := t.flush(); err != nil {
		return err
	}

	section("ticks")
	t = newTable(w, "MODULE", "STATE", "LAST PERIOD", "AGE", "PERIOD", "FROZEN")
	for _, k := range r.Ticks {
		last, age := "none", ""
		if k.LastPeriod != nil {
			last, age = k.LastPeriod.UTC().Format(time.RFC3339), roundAge(k.Age)
		}
		frozen := "no"
		if k.Frozen {
			frozen = "yes (" + k.FrozenBy + ")"
		}
		state := p.health(k.Problem == "", "missed")
		if k.Frozen {
			state = p.dim("frozen")
		}
		t.row(k.Module, state, last, age, k.Period.String(), frozen)
	}
	if err := t.flush(); err != nil {
		return err
	}

	section("freshness (stale after " + roundAge(r.Freshness.Threshold) + ": " + r.Freshness.Basis + ")")
	t = newTable(w, append([]string{"SYMBOL", "STATE", "GOOD SAMPLE"}, r.Freshness.Windows...)...)
	for _, s := range r.Freshness.Symbols {
		cells := []string{s.Symbol, p.health(!s.Stale, "stale"), ageOf(s.GoodSample, r.At)}
		for _, v := range s.Vectors {
			c := ageOf(v.Newest, r.At)
			if v.Stale {
				c = p.bad(c)
			}
			cells = append(cells, c)
		}
		t.row(cells...)
	}
	if err := t.flush(); err != nil {
		return err
	}

	section("relay")
	t = newTable(w, "SLOT", "STATE", "ACTIVE", "WAL STATUS", "RETAINED", "CONFIRMED LAG", "RELAYS")
	for _, s := range r.Relay {
		role := fmt.Sprintf("%d live", s.Relays)
		if s.Active && s.Relays > 1 {
			role = fmt.Sprintf("1 active, %d standby", s.Relays-1)
		}
		t.row(s.Slot, p.health(s.Problem == "", "bad"), strconv.FormatBool(s.Active), s.WALStatus, optBytes(s.Retained), optBytes(s.Lag), role)
	}
	if err := t.flush(); err != nil {
		return err
	}

	section("streams and durables")
	t = newTable(w, "STREAM", "CONSUMER", "MESSAGES", "PENDING", "ACK PENDING", "REDELIVERED")
	for _, s := range r.Streams {
		if s.Problem != "" && len(s.Consumers) == 0 {
			t.row(s.Name, "", p.bad("missing"), "", "", "")
			continue
		}
		t.row(s.Name, "", strconv.FormatUint(s.Messages, 10), "", "", "")
		for _, c := range s.Consumers {
			t.row("", c.Name, "", strconv.FormatUint(c.Pending, 10), strconv.Itoa(c.AckPending), strconv.Itoa(c.Redelivered))
		}
	}
	if err := t.flush(); err != nil {
		return err
	}

	section("jobs")
	t = newTable(w, "KIND", "STATUS", "COUNT", "OLDEST DUE", "FAILED IN A ROW")
	for _, j := range r.Jobs {
		oldest := ""
		if j.OldestDueAge != nil {
			oldest = roundAge(*j.OldestDueAge)
		}
		t.row(j.Kind, j.Status, strconv.FormatInt(j.Count, 10), oldest, strconv.Itoa(j.ConsecutiveFailures))
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, pk := range r.Paused {
		fmt.Fprintf(w, "paused: %s by %s since %s (%s)\n", pk.Kind, pk.Source, pk.PausedAt.UTC().Format(time.RFC3339), pk.Reason)
	}
	for _, j := range r.Running {
		fmt.Fprintf(w, "running: job %d %s %s (attempt %d) since %s on %s\n", j.ID, j.Kind, j.Key, j.Attempts, j.Started.UTC().Format(time.RFC3339), j.Worker)
	}
	if len(r.JobFailures) > 0 {
		fmt.Fprintln(w, "recent failures:")
		t = newTable(w, "  ID", "KIND", "ATTEMPTS", "AT", "ERROR")
		for _, f := range r.JobFailures {
			t.row("  "+strconv.FormatInt(f.ID, 10), f.Kind, strconv.Itoa(f.Attempts), f.At.UTC().Format(time.RFC3339), truncate(f.Error, 80))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}

	section("dead letters")
	if len(r.DeadLetters) == 0 {
		fmt.Fprintln(w, "none")
	} else {
		t = newTable(w, "CONSUMER", "COUNT", "SUBJECT")
		for _, d := range r.DeadLetters {
			t.row(d.Consumer, p.bad(strconv.FormatUint(d.Count, 10)), d.Subject)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}

	section("market data (straux)")
	md := r.MarketData
	if len(md.Members) == 0 {
		fmt.Fprintln(w, "stream members: none (REST mode, or straux not running)")
	} else {
		t = newTable(w, "REPLICA", "STATE", "HOST", "STREAMS", "SEEN")
		for _, m := range md.Members {
			t.row(m.Replica, p.health(m.Live, "expired"), m.Host, strconv.Itoa(m.Streams), roundAge(m.SeenAgo)+" ago")
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if md.Period == nil {
		fmt.Fprintln(w, "no closed period yet")
	} else {
		age := "n/a"
		if md.BookAgeP99Ms != nil {
			age = fmt.Sprintf("%.0f ms", *md.BookAgeP99Ms)
		}
		fmt.Fprintf(w, "period %s: %d from books, %s over REST, %s missed (stream not live, REST fallback over budget or failed), %d not trading; book age p99 %s\n",
			md.Period.UTC().Format(time.RFC3339), md.FromStream, p.warnIf(md.FromREST > 0, strconv.Itoa(md.FromREST)),
			p.warnIf(md.StreamMissed > 0, strconv.Itoa(md.StreamMissed)), md.NotTrading, age)
	}

	section("open sessions")
	if len(r.Sessions) == 0 {
		fmt.Fprintln(w, "none")
	} else {
		t = newTable(w, "SESSION", "SCOPE", "LABEL", "STARTED", "LAST IMPORT", "MOVES")
		for _, s := range r.Sessions {
			t.row(strconv.FormatInt(s.ID, 10), s.Scope, s.Label, s.Started.UTC().Format(time.RFC3339), ageOf(s.LastImport, r.At), strconv.FormatInt(s.Moves, 10))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}

	section("account trades (cinimport)")
	if len(r.Trades) == 0 {
		fmt.Fprintln(w, "none synced (no exchange credentials, or no sweep yet)")
	} else {
		t = newTable(w, "SCOPE", "SYMBOLS", "LAST SWEEP", "NEWEST TRADE", "STORED AFTER")
		for _, a := range r.Trades {
			newest, lag := "none", "n/a"
			if a.NewestTrade != nil && a.NewestStored != nil {
				newest = ageOf(a.NewestTrade, r.At)
				lag = roundAge(max(0, a.NewestStored.Sub(*a.NewestTrade)))
			}
			t.row(a.Scope, strconv.Itoa(a.Symbols), ageOf(&a.CursorUpdated, r.At), newest, lag)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(w)
	if r.Healthy {
		_, err := fmt.Fprintln(w, p.ok("healthy"))
		return err
	}
	fmt.Fprintln(w, p.bad(fmt.Sprintf("unhealthy: %d problems", len(r.Problems))))
	for _, pr := range r.Problems {
		fmt.Fprintf(w, "  - %s\n", pr)
	}
	return nil
}

func optBytes(n *int64) string {
	if n == nil {
		return "-"
	}
	return bytesIEC(*n)
}

func truncate(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
