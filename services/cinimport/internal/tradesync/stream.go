package tradesync

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"cryptopill.dev/jobs/libs/exchange"
)

// Reasons a reconciliation sweep runs (the reason label of its metrics).
const (
	ReasonStart     = "start"     // the bootstrap: the first sweep of the process
	ReasonReconnect = "reconnect" // the user data stream (re)connected or lost a trade: events may be missing
	ReasonInterval  = "interval"  // the periodic check
	ReasonRetry     = "retry"     // the last sweep failed, or missed symbols (then those alone are retried)
)

// StreamConfig configures a StreamSync. Zero values take the documented defaults.
type StreamConfig struct {
	// ReconcileInterval is how often a sweep runs when nothing asks for one. Default 1h.
	ReconcileInterval time.Duration
	// RetryAfter is how soon after a sweep that failed or missed symbols it is retried (the
	// symbols it missed alone, or all when it failed as a whole); it doubles with each failure in
	// a row, up to ReconcileInterval. Default 1m.
	RetryAfter time.Duration
	// FirstConnectWait is how long the start sweep waits for the stream's first connection.
	// Default 15s.
	FirstConnectWait time.Duration
	// OnSweep is told of each finished sweep (the service imports what it stored). Optional.
	OnSweep func(ctx context.Context, reason string, res Result)
	// Registerer takes the metrics. Optional.
	Registerer prometheus.Registerer
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// StreamSync stores the account's trades as the user data stream delivers them (an
// exchange.UserStreamHandler) and runs the REST myTrades sync as reconciliation: a sweep at
// start, after every (re)connect of the stream (events may have been missed meanwhile), after a
// streamed trade could not be stored, and every ReconcileInterval. Streamed trades never move
// the fromId cursors, so a sweep fetches everything since the last sweep, including whatever the
// stream missed.
type StreamSync struct {
	sync *TradeSync
	cfg  StreamConfig

	mu     sync.Mutex
	gapAt  time.Time // the latest moment events may have been missed from
	hasGap bool
	// sweeping is the reason of the sweep running (the weight metric's label).
	sweeping string
	gapKick  chan struct{}
	// firstConnect closes at the stream's first connection.
	firstConnect chan struct{}
	connected    sync.Once

	// failures counts the sweeps in a row that failed or missed symbols.
	failures int

	up          prometheus.Gauge
	connects    prometheus.Counter
	disconnects prometheus.Counter
	trades      *prometheus.CounterVec
	sweeps      *prometheus.CounterVec
	weight      *prometheus.CounterVec
	recovered   prometheus.Counter
	lastSweep   prometheus.Gauge
	started     prometheus.Gauge
	interval    prometheus.Gauge
}

// NewStreamSync returns a StreamSync over s (whose WeightPerMinute paces the sweeps).
func NewStreamSync(s *TradeSync, cfg StreamConfig) *StreamSync {
	if cfg.ReconcileInterval <= 0 {
		cfg.ReconcileInterval = time.Hour
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = time.Minute
	}
	if cfg.FirstConnectWait <= 0 {
		cfg.FirstConnectWait = 15 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ss := &StreamSync{sync: s, cfg: cfg, gapKick: make(chan struct{}, 1), firstConnect: make(chan struct{}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cp_cinimport_user_stream_up",
			Help: "1 while the Binance user data stream is connected, else 0 (trades arrive only by the reconciliation sweeps)."}),
		connects: prometheus.NewCounter(prometheus.CounterOpts{Name: "cp_cinimport_user_stream_connects_total",
			Help: "User data stream connections opened (first, reconnects, new listenKeys, rotations); each is followed by a reconciliation sweep."}),
		disconnects: prometheus.NewCounter(prometheus.CounterOpts{Name: "cp_cinimport_user_stream_disconnects_total",
			Help: "User data stream connections lost (drops, expired listenKeys)."}),
		trades: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cp_cinimport_stream_trades_total",
			Help: "Trades received from the user data stream, by result (stored, duplicate, failed: not stored, left to the next sweep)."}, []string{"result"}),
		sweeps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cp_cinimport_reconcile_sweeps_total",
			Help: "myTrades reconciliation sweeps over every symbol, by reason (start, reconnect, interval) and result (ok, partial: some symbols failed, error)."}, []string{"reason", "result"}),
		weight: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cp_cinimport_reconcile_weight_total",
			Help: "REST request weight the reconciliation sweeps spent on myTrades, by reason."}, []string{"reason"}),
		recovered: prometheus.NewCounter(prometheus.CounterOpts{Name: "cp_cinimport_reconcile_trades_total",
			Help: "Trades a reconciliation sweep stored that the user data stream had not delivered (the bootstrap's included)."}),
		lastSweep: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cp_cinimport_reconcile_last_success_timestamp_seconds",
			Help: "When the reconciliation sweeps last reached every symbol (Unix seconds): a sweep, or the retry that completed what it missed."}),
		started: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cp_cinimport_reconcile_start_timestamp_seconds",
			Help: "When the trade sync started (Unix seconds): before its first complete sweep, trades are reconciled as of then."}),
		interval: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cp_cinimport_reconcile_interval_seconds",
			Help: "How often a reconciliation sweep runs when nothing asks for one (CIN_TRADE_RECONCILE_INTERVAL)."}),
	}
	ss.started.Set(float64(cfg.Now().UnixMilli()) / 1000)
	ss.interval.Set(cfg.ReconcileInterval.Seconds())
	for _, r := range []string{"stored", "duplicate", "failed"} {
		ss.trades.WithLabelValues(r)
	}
	for _, r := range []string{ReasonStart, ReasonReconnect, ReasonInterval, ReasonRetry} {
		ss.weight.WithLabelValues(r)
		for _, res := range []string{"ok", "partial", "error"} {
			ss.sweeps.WithLabelValues(r, res)
		}
	}
	// The weight is counted as each call spends it, so a long paced sweep shows as it goes.
	s.onCall = func(w int) {
		ss.mu.Lock()
		reason := ss.sweeping
		ss.mu.Unlock()
		ss.weight.WithLabelValues(reason).Add(float64(w))
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(ss.up, ss.connects, ss.disconnects, ss.trades, ss.sweeps, ss.weight, ss.recovered,
			ss.lastSweep, ss.started, ss.interval)
	}
	return ss
}

// RegisterStreamStats exports the user data stream's own counters (what it did between the
// handler's calls: keys, keepalives, dials, unreadable messages) to reg at each scrape.
func RegisterStreamStats(reg prometheus.Registerer, stats func() exchange.UserStreamStats) {
	counter := func(name, help string, v func(exchange.UserStreamStats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v(stats())) })
	}
	reg.MustRegister(
		counter("cp_cinimport_user_stream_listen_keys_total", "listenKeys created (at start, and after one expired).",
			func(s exchange.UserStreamStats) int64 { return s.ListenKeys }),
		counter("cp_cinimport_user_stream_keepalives_total", "listenKeys extended (every keepalive period, 30 minutes by default).",
			func(s exchange.UserStreamStats) int64 { return s.KeepAlives }),
		counter("cp_cinimport_user_stream_keepalive_failures_total", "listenKey keepalives that failed (the key is renewed or retried; a sweep covers what was missed).",
			func(s exchange.UserStreamStats) int64 { return s.KeepAliveFailures }),
		counter("cp_cinimport_user_stream_listen_key_expiries_total", "listenKeys the exchange no longer knew (listenKeyExpired, or a keepalive answered -1125).",
			func(s exchange.UserStreamStats) int64 { return s.Expired }),
		counter("cp_cinimport_user_stream_rotations_total", "Connections replaced ahead of the exchange's 24-hour cutoff.",
			func(s exchange.UserStreamStats) int64 { return s.Rotations }),
		counter("cp_cinimport_user_stream_dial_failures_total", "Connection attempts that failed.",
			func(s exchange.UserStreamStats) int64 { return s.DialFailures }),
		counter("cp_cinimport_user_stream_bad_messages_total", "Stream messages that could not be read (each asks for a sweep).",
			func(s exchange.UserStreamStats) int64 { return s.BadMessages }),
		counter("cp_cinimport_user_stream_other_events_total", "Stream events that are not trades (other execution types, balance updates).",
			func(s exchange.UserStreamStats) int64 { return s.OtherEvents }),
	)
}

// markGap asks for a sweep that starts at or after at.
func (s *StreamSync) markGap(at time.Time) {
	s.mu.Lock()
	if !s.hasGap || at.After(s.gapAt) {
		s.gapAt, s.hasGap = at, true
	}
	s.mu.Unlock()
	select {
	case s.gapKick <- struct{}{}:
	default:
	}
}

// UserStreamConnected asks for a sweep: what happened before the connection may be missing.
func (s *StreamSync) UserStreamConnected(at time.Time) {
	s.up.Set(1)
	s.connects.Inc()
	s.cfg.Logger.Info("user data stream connected; trades arrive as they happen, a reconciliation sweep covers any gap before")
	s.markGap(at)
	s.connected.Do(func() { close(s.firstConnect) })
}

// UserStreamGap asks for a sweep: an event the stream sent could not be read.
func (s *StreamSync) UserStreamGap(at time.Time) {
	s.cfg.Logger.Warn("user data stream event lost; a reconciliation sweep covers it")
	s.markGap(at)
}

// UserStreamDown records the loss; the reconnect asks for the sweep.
func (s *StreamSync) UserStreamDown(err error) {
	s.up.Set(0)
	s.disconnects.Inc()
	s.cfg.Logger.Warn("user data stream down: trades are missed until it reconnects and a sweep runs", "err", err)
}

// UserTrade stores a streamed trade at once. One that cannot be stored is counted, logged, and
// left to a sweep (asked for now), so it is not lost.
func (s *StreamSync) UserTrade(ctx context.Context, t exchange.Trade) {
	if s.sync.Include(t.Symbol) {
		s.cfg.Logger.Info("streamed trade in a symbol the sweeps did not cover; they cover it from now on",
			"symbol", t.Symbol)
	}
	stored, err := s.sync.StoreStreamed(ctx, t)
	switch {
	case err != nil:
		s.trades.WithLabelValues("failed").Inc()
		s.cfg.Logger.Warn("streamed trade not stored; a reconciliation sweep will fetch it", "symbol", t.Symbol, "trade_id", t.ID, "err", err)
		s.markGap(s.cfg.Now())
	case stored:
		s.trades.WithLabelValues("stored").Inc()
	default:
		s.trades.WithLabelValues("duplicate").Inc()
	}
}

// Run sweeps at start, then whenever a gap is marked after the last sweep began, and every
// ReconcileInterval, until ctx ends. A sweep that failed or missed symbols is logged, counted and
// retried RetryAfter after it ended (doubling while it keeps failing, up to ReconcileInterval):
// the symbols it missed alone, or every symbol when it failed as a whole.
func (s *StreamSync) Run(ctx context.Context) error {
	// The bootstrap sweep waits for the stream's first connection (for a while), so it covers
	// the stream's start too instead of being followed at once by a second sweep.
	first := time.NewTimer(s.cfg.FirstConnectWait)
	select {
	case <-ctx.Done():
		first.Stop()
		return nil
	case <-s.firstConnect:
	case <-first.C:
	}
	first.Stop()
	var (
		reason = ReasonStart
		// fullBegan is when the last sweep of every symbol began: gaps and the interval count
		// from it. A retry of the symbols a sweep missed covers those alone.
		fullBegan time.Time
		// retryAt is when the pending retry is due (zero: none), and retry the symbols it
		// sweeps (nil: every symbol).
		retryAt time.Time
		retry   []string
	)
	for {
		began := s.cfg.Now()
		s.mu.Lock()
		s.sweeping = reason
		s.mu.Unlock()
		var (
			res Result
			err error
		)
		if reason == ReasonRetry && retry != nil {
			res, err = s.sync.SyncSymbols(ctx, retry)
		} else {
			fullBegan = began
			res, err = s.sync.Sync(ctx)
		}
		if ctx.Err() != nil {
			return nil
		}
		retried := reason == ReasonRetry
		retryAt = time.Time{}
		if s.record(ctx, reason, began, res, err) {
			s.failures, retry = 0, nil
		} else {
			// From the sweep's end: a paced sweep takes minutes.
			s.failures++
			retryAt = s.cfg.Now().Add(s.retryAfter(s.failures))
			switch {
			case err == nil:
				retry = slices.Sorted(maps.Keys(res.Failed))
			case !retried:
				retry = nil // a sweep of every symbol failed as a whole: retry them all
			} // a retry that failed as a whole retries the same symbols
		}
		// The waits are read from the clock (checked every second), not timers: an injected
		// clock that jumps must bring the sweep along.
		tick := time.NewTicker(time.Second)
		reason = ""
		for reason == "" {
			now := s.cfg.Now()
			switch {
			case s.gapSince(fullBegan):
				reason = ReasonReconnect
			case now.Sub(fullBegan) >= s.cfg.ReconcileInterval:
				reason = ReasonInterval
			case !retryAt.IsZero() && !now.Before(retryAt):
				reason = ReasonRetry
			}
			if reason != "" {
				break
			}
			select {
			case <-ctx.Done():
				tick.Stop()
				return nil
			case <-tick.C:
			case <-s.gapKick:
			}
		}
		tick.Stop()
	}
}

// retryAfter is the wait before retrying after failures failed sweeps in a row.
func (s *StreamSync) retryAfter(failures int) time.Duration {
	d := s.cfg.RetryAfter
	for i := 1; i < failures && d < s.cfg.ReconcileInterval; i++ {
		d *= 2
	}
	return min(d, s.cfg.ReconcileInterval)
}

func (s *StreamSync) gapSince(began time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.hasGap {
		return false
	}
	s.hasGap = false
	// A sweep that began at the gap's instant fetches every symbol after it: covered.
	return s.gapAt.After(began)
}

// record counts and logs a finished sweep; it reports whether the sweep reached every symbol.
func (s *StreamSync) record(ctx context.Context, reason string, began time.Time, res Result, err error) (complete bool) {
	s.recovered.Add(float64(res.Stored))
	took := s.cfg.Now().Sub(began).Round(time.Millisecond).String()
	switch {
	case err != nil:
		s.sweeps.WithLabelValues(reason, "error").Inc()
		s.cfg.Logger.Warn("trade reconciliation sweep failed; retried", "reason", reason, "err", err, "weight", res.Weight,
			"retry_in", s.retryAfter(s.failures+1).String())
	case len(res.Failed) > 0:
		s.sweeps.WithLabelValues(reason, "partial").Inc()
		s.cfg.Logger.Warn("trade reconciliation sweep missed symbols; retried", "reason", reason, "failed_symbols", len(res.Failed),
			"stored", res.Stored, "weight", res.Weight, "took", took, "retry_in", s.retryAfter(s.failures+1).String())
	default:
		complete = true
		s.sweeps.WithLabelValues(reason, "ok").Inc()
		s.lastSweep.Set(float64(s.cfg.Now().UnixMilli()) / 1000)
		level := slog.LevelDebug
		if res.Stored > 0 || reason != ReasonInterval {
			level = slog.LevelInfo
		}
		s.cfg.Logger.Log(ctx, level, "trade reconciliation sweep done", "reason", reason, "stored", res.Stored,
			"calls", res.Calls, "weight", res.Weight, "took", took)
	}
	if s.cfg.OnSweep != nil && err == nil {
		s.cfg.OnSweep(ctx, reason, res)
	}
	return complete
}
