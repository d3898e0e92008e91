package ticks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/services/straux/internal/book"
	"cryptopill.dev/jobs/services/straux/internal/plan"
	"cryptopill.dev/jobs/services/straux/internal/store"
	"cryptopill.dev/jobs/services/straux/internal/window"
)

// Exchange is what the runner calls on the exchange; *exchange.Client has it.
type Exchange interface {
	Depth(ctx context.Context, symbol string, limit int) (*exchange.OrderBook, error)
	Tickers24h(ctx context.Context, symbols []string) ([]exchange.Ticker24h, error)
	Klines(ctx context.Context, req exchange.KlinesRequest) ([]exchange.Kline, error)
	// ExchangeInfo, for every symbol (no symbols given), is where symbol statuses come from.
	ExchangeInfo(ctx context.Context, symbols ...string) (*exchange.ExchangeInfo, error)
}

// Universe says which symbols are enabled now.
type Universe interface {
	Current(ctx context.Context) ([]string, error)
}

// Tick is one tick, as the runner needs it.
type Tick struct {
	PeriodStart time.Time
	Period      time.Duration
}

// Config configures a Runner. Zero fields take the defaults in their comments.
type Config struct {
	// Replica names this process in claims. Default: host/pid/random.
	Replica string
	// DepthLimit is the order-book depth fetched, 5..100 (weight 5). Default 100.
	DepthLimit int
	// Snapshots per symbol and tick, SnapshotSpacing apart. Defaults 1 and 1s.
	Snapshots       int
	SnapshotSpacing time.Duration
	// ChunkSize is how many symbols one claim takes (and one ticker call carries). Default 20
	// (the cheapest ticker batch); 500 in stream mode.
	ChunkSize int
	// Workers is how many chunks this process works at once. Default 4.
	Workers int
	// FetchConcurrency bounds the exchange calls in flight from this process. Default 32.
	FetchConcurrency int
	// SymbolTimeout bounds one symbol's depth call. Default 10s.
	SymbolTimeout time.Duration
	// Lease is how long a claim stays valid without renewal; keep it below the tick consumer's
	// ack wait so a dead replica's symbols are taken over within it. Default 5s.
	Lease time.Duration
	// MaxAttempts is how often a symbol may be claimed in one period before it is abandoned
	// (recorded with the reason). Default 3.
	MaxAttempts int
	// WeightSharePct is the share (percent) of the weight budget a tick's sampling may spend;
	// the rest is left to the market jobs. Default 70.
	WeightSharePct int
	// MaxBins caps the vectors' position bins B. Default 256.
	MaxBins int
	// Backfill reconstructs missing history from 1m klines for symbols with too few samples for
	// their longest window (at most once per longest window per symbol). Default off.
	Backfill bool
	// Retention is how long coordination rows (plans, claims) are kept. Default 24h.
	Retention time.Duration
	// Streams, when set, is stream mode: symbols are sampled from local books kept from the
	// exchange's streams (every symbol every tick, no weight per tick), and by REST only when
	// their book is not live, at most as many a tick as the tick's weight budget samples.
	// nil: REST mode (every sample is a depth call, a universe beyond the budget rotates).
	Streams Streams
	// HandoverGrace is how long, in stream mode, a replica leaves the symbols whose books it does
	// not hold to the replicas that do before it samples them itself over REST (not waited when
	// Streams says no other replica holds books). Default 2s.
	HandoverGrace time.Duration
	// Budget reports the exchange weight budget. Required.
	Budget func() plan.Budget
	// OnPeriodDone is called after a period closes (straux wakes its job engine), with the
	// context of the tick's consume span. Optional.
	OnPeriodDone func(ctx context.Context, period time.Time)
	// TracerProvider makes the spans of a period's work ("straux.period", "straux.chunk"),
	// children of the span of the tick that started it. Default: otel's global provider.
	TracerProvider trace.TracerProvider
	// Registerer receives the metrics. nil: not registered.
	Registerer prometheus.Registerer
	// Logger. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() (Config, error) {
	if c.Budget == nil {
		return c, errors.New("ticks: Config.Budget is required")
	}
	if c.Replica == "" {
		host, _ := os.Hostname()
		c.Replica = fmt.Sprintf("%s/%d/%04x", host, os.Getpid(), rand.IntN(1<<16))
	}
	if c.DepthLimit == 0 {
		c.DepthLimit = 100
	}
	if c.DepthLimit < 1 || c.DepthLimit > 100 {
		return c, fmt.Errorf("ticks: DepthLimit %d: want 1..100", c.DepthLimit)
	}
	c.Snapshots = max(1, c.Snapshots)
	if c.SnapshotSpacing <= 0 {
		c.SnapshotSpacing = time.Second
	}
	if c.ChunkSize <= 0 {
		// REST: a claim is one ticker batch at its lowest weight. Streams: no ticker calls, and
		// fewer, larger chunks cost fewer database round trips.
		c.ChunkSize = plan.TickerBatch
		if c.Streams != nil {
			c.ChunkSize = 500
		}
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.FetchConcurrency <= 0 {
		c.FetchConcurrency = 32
	}
	if c.SymbolTimeout <= 0 {
		c.SymbolTimeout = 10 * time.Second
	}
	if c.Lease <= 0 {
		c.Lease = 5 * time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.WeightSharePct <= 0 || c.WeightSharePct > 100 {
		c.WeightSharePct = 70
	}
	if c.MaxBins <= 0 {
		c.MaxBins = 256
	}
	if c.HandoverGrace <= 0 {
		c.HandoverGrace = 2 * time.Second
	}
	if c.Retention <= 0 {
		c.Retention = 24 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.TracerProvider == nil {
		c.TracerProvider = otel.GetTracerProvider()
	}
	return c, nil
}

// Runner samples ticks. Create it with New, call Stop to drain.
type Runner struct {
	cfg    Config
	st     *store.Store
	ex     Exchange
	uni    Universe
	log    *slog.Logger
	m      *metrics
	tracer trace.Tracer
	slots  chan struct{} // exchange-call slots
	status *symbolStatuses

	// base is the context of all work: cancelling it is a hard stop (in-flight calls fail).
	base context.Context
	// draining is closed by Stop: no new chunks are claimed, running ones finish.
	draining chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup

	mu   sync.Mutex
	runs map[time.Time]*periodRun

	vectorsCPU atomic.Int64 // ns
}

// ErrDraining is returned by HandleTick when the runner stops before the period is done: the
// tick is redelivered and another replica finishes it.
var ErrDraining = errors.New("ticks: runner stopping; period left unfinished for another replica")

// New returns a runner. base bounds all its work: cancelling it stops the runner hard (as if the
// process died); Stop drains it gracefully.
func New(base context.Context, st *store.Store, ex Exchange, uni Universe, cfg Config) (*Runner, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With("component", "ticks", "replica", cfg.Replica)
	m := newMetrics(cfg.Registerer)
	status := newSymbolStatuses(ex, log, m, cfg.Now, cfg.SymbolTimeout)
	status.prime(base)
	return &Runner{
		cfg: cfg, st: st, ex: ex, uni: uni,
		log:      log,
		m:        m,
		status:   status,
		tracer:   cfg.TracerProvider.Tracer("cryptopill.dev/jobs/services/straux/ticks"),
		slots:    make(chan struct{}, cfg.FetchConcurrency),
		base:     base,
		draining: make(chan struct{}),
		runs:     map[time.Time]*periodRun{},
	}, nil
}

// Replica is the runner's claim identity.
func (r *Runner) Replica() string { return r.cfg.Replica }

// VectorsCPU is the thread CPU time spent computing samples, statistics and vectors so far.
func (r *Runner) VectorsCPU() time.Duration { return time.Duration(r.vectorsCPU.Load()) }

// Stop stops claiming new work, waits for the chunks in flight to be written, and returns.
func (r *Runner) Stop() {
	r.stopOnce.Do(func() { close(r.draining) })
	r.wg.Wait()
}

func (r *Runner) isDraining() bool {
	select {
	case <-r.draining:
		return true
	default:
		return false
	}
}

// late reports whether a tick's period has ended: its successor is due.
func (r *Runner) late(t Tick) bool {
	return !r.cfg.Now().Before(t.PeriodStart.Add(t.Period))
}

// HandleTick is the durable consumer's work for one tick: plan the period (or skip it when
// late), work it with the other replicas, and return nil once every symbol is done and the
// period is closed — then the tick may be acked. An error leaves the tick for redelivery.
func (r *Runner) HandleTick(ctx context.Context, t Tick) error {
	if t.Period <= 0 || t.PeriodStart.IsZero() {
		return fmt.Errorf("tick without period or period start: %+v", t)
	}
	received := r.cfg.Now()
	log := r.log.With("period_start", t.PeriodStart, "period", t.Period)
	status, err := r.st.PeriodStatus(ctx, t.PeriodStart)
	if err != nil {
		return err
	}
	switch status {
	case store.StatusDone, store.StatusSkipped:
		// A redelivery or replay of a finished period: its rows are written; nothing to redo.
		r.m.ticks.WithLabelValues("already_" + status).Inc()
		log.InfoContext(ctx, "tick: period already finished", "status", status)
		return nil
	case "":
		if r.late(t) {
			marked, err := r.skip(ctx, t, log)
			if err != nil || marked {
				return err
			}
			// Not marked: an assisting replica planned it just before its end. Finish and close
			// it with them, or it would stay planned with every symbol written.
			if status, err = r.st.PeriodStatus(ctx, t.PeriodStart); err != nil || status != store.StatusPlanned {
				return err
			}
		} else if err := r.ensurePlanned(ctx, t, log); err != nil {
			return err
		}
	}
	run := r.join(ctx, t)
	select {
	case <-run.done:
	case <-ctx.Done():
		r.m.ticks.WithLabelValues("unfinished").Inc()
		return fmt.Errorf("period %s: %w", t.PeriodStart.Format(time.RFC3339), ctx.Err())
	case <-r.draining:
		r.m.ticks.WithLabelValues("unfinished").Inc()
		return ErrDraining
	}
	if run.err != nil {
		r.m.ticks.WithLabelValues("unfinished").Inc()
		return run.err
	}
	out, closed, err := r.st.CompletePeriod(ctx, t.PeriodStart)
	if err != nil {
		return err
	}
	took := r.cfg.Now().Sub(received)
	r.m.ticks.WithLabelValues("done").Inc()
	r.m.lastDone.Set(float64(t.PeriodStart.Unix()))
	if closed {
		r.m.tickSeconds.Observe(took.Seconds())
		// Coverage from what was sampled, not from the plan: a starved tick shows here.
		cov, kept := sampledRatios(out)
		r.m.sampled.Set(float64(out.Sampled))
		r.m.sampledCov.Set(cov)
		r.m.planKept.Set(kept)
		lvl := slog.LevelInfo
		if kept < 1 {
			lvl = slog.LevelWarn
		}
		bySource, err := r.st.SampledBySource(ctx, t.PeriodStart)
		if err != nil {
			log.WarnContext(ctx, "count the tick's samples by source; the by-source gauges keep their values", "err", err)
		} else {
			for _, src := range []string{book.SourceStream, book.SourceRest} {
				r.m.sampledSource.WithLabelValues(src).Set(float64(bySource[src]))
			}
		}
		log.Log(ctx, lvl, "tick done", "sampled", out.Sampled, "from_stream", bySource[book.SourceStream],
			"from_rest", bySource[book.SourceRest], "failed", out.Failed, "abandoned", out.Abandoned,
			"planned", out.Planned, "universe", out.Universe, "sampled_coverage", cov, "plan_kept", kept,
			"seconds", took.Seconds())
		if _, err := r.st.Prune(ctx, t.PeriodStart.Add(-r.cfg.Retention)); err != nil {
			log.WarnContext(ctx, "prune coordination rows", "err", err)
		}
		if r.cfg.OnPeriodDone != nil {
			r.cfg.OnPeriodDone(ctx, t.PeriodStart)
		}
	}
	return nil
}

// Assist joins a tick seen on the broadcast path: it plans the period if nobody has and works
// it alongside the replica holding the durable message. It does not wait.
func (r *Runner) Assist(ctx context.Context, t Tick) {
	if t.Period <= 0 || r.isDraining() {
		return
	}
	status, err := r.st.PeriodStatus(ctx, t.PeriodStart)
	if err != nil {
		r.log.WarnContext(ctx, "assist: period status", "period_start", t.PeriodStart, "err", err)
		return
	}
	switch status {
	case store.StatusDone, store.StatusSkipped:
		return
	case "":
		if r.late(t) {
			return // the durable holder marks it skipped
		}
		if err := r.ensurePlanned(ctx, t, r.log.With("period_start", t.PeriodStart)); err != nil {
			r.log.WarnContext(ctx, "assist: plan", "period_start", t.PeriodStart, "err", err)
			return
		}
	}
	r.join(ctx, t)
}

// skip marks a late tick's period skipped; marked is false when someone else got to the period
// first (skipped it, or planned it).
func (r *Runner) skip(ctx context.Context, t Tick, log *slog.Logger) (marked bool, err error) {
	universe, err := r.uni.Current(ctx)
	if err != nil {
		return false, err
	}
	reason := "skipped"
	marked, err = r.st.SkipPeriod(ctx, t.PeriodStart, t.Period, universe, r.cfg.Replica, reason)
	if err != nil {
		return false, err
	}
	r.m.ticks.WithLabelValues("skipped").Inc()
	if marked {
		r.m.skipped.Inc()
		log.Warn("tick arrived after its period ended: period marked skipped, only the newest period is sampled",
			"late_by", r.cfg.Now().Sub(t.PeriodStart.Add(t.Period)), "universe", len(universe))
	}
	return marked, nil
}

// ensurePlanned plans the period unless it is planned already.
func (r *Runner) ensurePlanned(ctx context.Context, t Tick, log *slog.Logger) error {
	universe, err := r.uni.Current(ctx)
	if err != nil {
		return err
	}
	b := r.cfg.Budget()
	costs := r.costs()
	// The symbol statuses' read (status.go) is paid from the same share.
	tb := max(0, plan.TickBudget(b, t.Period, r.cfg.WeightSharePct)-statusReadWeight)
	p, err := plan.Make(universe, costs, tb, t.PeriodStart.UnixNano()/int64(t.Period))
	if err != nil {
		return err
	}
	created, err := r.st.PlanPeriod(ctx, store.PeriodPlan{
		Start: t.PeriodStart, Interval: t.Period, UniverseSize: p.Universe, Symbols: p.Symbols,
		Offset: p.Offset, Rounds: p.Rounds, Weight: p.Weight, TickBudget: p.TickBudget, Replica: r.cfg.Replica,
	})
	if err != nil {
		return err
	}
	if created {
		r.m.universe.Set(float64(p.Universe))
		r.m.planned.Set(float64(len(p.Symbols)))
		r.m.coverage.Set(p.Coverage())
		r.m.rounds.Set(float64(p.Rounds))
		r.m.tickBudget.Set(float64(p.TickBudget))
		r.m.plannedW.Set(float64(p.Weight))
		lvl := slog.LevelInfo
		if p.Rounds > 1 {
			lvl = slog.LevelWarn
		}
		log.Log(ctx, lvl, "tick planned", "universe", p.Universe, "planned", len(p.Symbols),
			"coverage", p.Coverage(), "rotation_offset", p.Offset, "rounds_to_cover_all", p.Rounds,
			"planned_weight", p.Weight, "tick_budget", p.TickBudget, "budget_per_window", b.PerWindow, "window", b.Window)
	}
	return nil
}

// periodRun is this process's work on one period.
type periodRun struct {
	tick         Tick
	span         trace.Span // of the tick that started the run
	joined       time.Time  // monotonic: when this process joined the period (the handover grace)
	done         chan struct{}
	err          error
	backfillLeft atomic.Int64
	fallbackLeft atomic.Int64 // stream mode: REST samples this replica may still take
	fallbacks    fallbacks
	preOnce      sync.Once
	pre          map[string]book.Sample // stream mode: its live books, read at once (presampled)

	mu      sync.Mutex
	changed chan struct{} // closed (and replaced) when a local chunk finishes
}

// finished wakes the workers waiting for the period's last claims.
func (run *periodRun) finished() {
	run.mu.Lock()
	defer run.mu.Unlock()
	close(run.changed)
	run.changed = make(chan struct{})
}

func (run *periodRun) wait() <-chan struct{} {
	run.mu.Lock()
	defer run.mu.Unlock()
	return run.changed
}

// join starts this process's workers on the period unless they run already, and returns the run.
// The workers run on the runner's base context (a handler giving up does not cut a chunk short)
// but in the trace of ctx's span: the tick consume that started them.
func (r *Runner) join(ctx context.Context, t Tick) *periodRun {
	r.mu.Lock()
	defer r.mu.Unlock()
	if run, ok := r.runs[t.PeriodStart]; ok {
		return run
	}
	run := &periodRun{tick: t, joined: time.Now(), done: make(chan struct{}), changed: make(chan struct{}), span: trace.SpanFromContext(ctx)}
	r.runs[t.PeriodStart] = run
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		run.err = r.work(run)
		r.mu.Lock()
		delete(r.runs, t.PeriodStart)
		r.mu.Unlock()
		close(run.done)
	}()
	return run
}

// work runs the period's workers until no claim of it is open, and returns the first error
// that stopped them (nil when the period is complete).
func (r *Runner) work(run *periodRun) (err error) {
	ctx, span := r.tracer.Start(trace.ContextWithSpan(r.base, run.span), "straux.period",
		trace.WithAttributes(attribute.String("cp.period_start", run.tick.PeriodStart.UTC().Format(time.RFC3339)),
			attribute.String("cp.period", run.tick.Period.String())))
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "period work stopped")
		}
		span.End()
	}()
	wins, err := r.st.Windows(ctx)
	if err != nil {
		return err
	}
	windows := make([]window.Window, len(wins))
	for i, w := range wins {
		windows[i] = window.Window{Label: w.Label, Duration: w.Duration}
	}
	// Backfills may spend what the plan leaves of the tick budget, in klines calls.
	tb := plan.TickBudget(r.cfg.Budget(), run.tick.Period, r.cfg.WeightSharePct)
	costs := r.costs()
	rest := costs
	rest.Streamed = false
	if r.cfg.Streams != nil {
		// Stream mode plans no weight; REST fallbacks may take what a REST plan would, and
		// backfills what is left of a tenth of the budget beyond that.
		run.fallbackLeft.Store(int64(plan.Capacity(rest, tb)))
		run.backfillLeft.Store(int64(max(0, tb/10) / plan.KlinesWeight))
	} else {
		spare := tb - costs.Weight(plan.Capacity(costs, tb))
		run.backfillLeft.Store(int64(max(0, tb/10, spare) / plan.KlinesWeight))
	}
	defer r.logFallbacks(ctx, run)

	errs := make(chan error, r.cfg.Workers)
	for range r.cfg.Workers {
		go func() { errs <- r.worker(ctx, run, windows) }()
	}
	var first error
	for range r.cfg.Workers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (r *Runner) worker(ctx context.Context, run *periodRun, windows []window.Window) error {
	p := run.tick.PeriodStart
	poll := min(r.cfg.Lease/4, 500*time.Millisecond)
	failures := 0
	for {
		if r.isDraining() {
			return ErrDraining
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wake := run.wait()
		claims, err := r.claim(ctx, run)
		if err == nil && len(claims) > 0 {
			err = r.processChunk(ctx, run, claims, windows)
			run.finished()
			if err != nil {
				r.m.chunkErrors.Inc()
				// Hand the claims back for a quick retry. Not after a hard stop: a dead
				// replica cannot, its leases run out instead.
				if ctx.Err() == nil {
					if rerr := r.st.Release(ctx, p, symbolsOf(claims), r.cfg.Replica); rerr != nil {
						r.log.WarnContext(ctx, "release claims after a failed chunk", "err", rerr)
					}
				}
			}
		}
		if err != nil {
			failures++
			r.log.WarnContext(ctx, "tick work failed; retrying", "period_start", p, "err", err, "failures", failures)
			if !r.sleep(ctx, min(time.Duration(failures)*200*time.Millisecond, 5*time.Second)) {
				return ctx.Err()
			}
			continue
		}
		failures = 0
		if len(claims) > 0 {
			continue
		}
		// Nothing this replica may claim now. Wait for a local chunk to finish, else poll (for
		// other replicas to finish, their leases to run out, or the handover grace to pass),
		// rechecking with one count each time, until the period is done or a claim is not
		// leased, for the claim round to try again.
		for first := true; ; first = false {
			if !first {
				if !r.sleepOr(ctx, poll, wake) {
					return ctx.Err()
				}
				wake = run.wait()
			}
			open, leased, err := r.st.OpenClaims(ctx, p)
			if err != nil {
				failures++
				break
			}
			if open == 0 {
				return nil
			}
			if !first && open > leased {
				break
			}
		}
	}
}

// sleep waits d unless ctx ends or the runner drains; it reports false when ctx ended.
func (r *Runner) sleep(ctx context.Context, d time.Duration) bool { return r.sleepOr(ctx, d, nil) }

// sleepOr is sleep that also ends when wake is closed.
func (r *Runner) sleepOr(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-wake:
	case <-ctx.Done():
		return false
	case <-r.draining: // the loop sees the drain next
	}
	return true
}

// costs are what one symbol's sampling costs in this runner's mode.
func (r *Runner) costs() plan.Costs {
	return plan.Costs{DepthLimit: r.cfg.DepthLimit, Snapshots: r.cfg.Snapshots, Streamed: r.cfg.Streams != nil}
}

// claim takes a chunk of the period's open symbols. In stream mode, in three steps: first the
// symbols whose books this replica holds live; then, after the handover grace (not waited when
// no other replica holds books), the other symbols this replica holds (its own share and those
// lingering after a move: over REST, their books not being live); and only once half the
// period has passed since it joined, any symbol still open — their holders are gone or stuck
// (a dead replica's claims are also taken over when their leases run out).
func (r *Runner) claim(ctx context.Context, run *periodRun) ([]store.Claim, error) {
	p := run.tick.PeriodStart
	if r.cfg.Streams == nil {
		return r.st.Claim(ctx, p, r.cfg.Replica, r.cfg.ChunkSize, r.cfg.Lease)
	}
	st := r.cfg.Streams
	claims, err := r.st.ClaimAmong(ctx, p, r.cfg.Replica, r.cfg.ChunkSize, r.cfg.Lease, nonNil(st.Live()))
	if err != nil || len(claims) > 0 {
		return claims, err
	}
	since := time.Since(run.joined)
	if st.Shared() && since < r.cfg.HandoverGrace {
		return nil, nil
	}
	claims, err = r.st.ClaimAmong(ctx, p, r.cfg.Replica, r.cfg.ChunkSize, r.cfg.Lease, nonNil(st.Held()))
	if err != nil || len(claims) > 0 || (st.Shared() && since < run.tick.Period/2) {
		return claims, err
	}
	return r.st.Claim(ctx, p, r.cfg.Replica, r.cfg.ChunkSize, r.cfg.Lease)
}

// nonNil is ss, or an empty list for nil (ClaimAmong reads nil as "any symbol").
func nonNil(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}

// logFallbacks logs, once per period, what this replica sampled over REST in stream mode.
func (r *Runner) logFallbacks(ctx context.Context, run *periodRun) {
	n, byReason, first := run.fallbacks.total()
	if n == 0 {
		return
	}
	r.log.WarnContext(ctx, "symbols sampled over REST: their stream books were not live",
		"period_start", run.tick.PeriodStart, "symbols", n, "by_reason", byReason, "first", first)
}

func symbolsOf(claims []store.Claim) []string {
	out := make([]string, len(claims))
	for i, c := range claims {
		out[i] = c.Symbol
	}
	return out
}

// sampledRatios are what a closed period sampled over its universe and over its plan; an empty
// universe or plan counts as fully covered (nothing was promised).
func sampledRatios(o store.Outcome) (coverage, kept float64) {
	coverage, kept = 1, 1
	if o.Universe > 0 {
		coverage = float64(o.Sampled) / float64(o.Universe)
	}
	if o.Planned > 0 {
		kept = float64(o.Sampled) / float64(o.Planned)
	}
	return coverage, kept
}
