package trigger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	"cryptopill.dev/jobs/libs/events"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
	"cryptopill.dev/jobs/services/cinimport/internal/importer"
)

// Importer is what the trigger needs from the SessionImporter.
type Importer interface {
	OpenSessions(ctx context.Context, scopes ...string) ([]int64, error)
	Import(ctx context.Context, sessions []importer.Session, opts importer.Options) ([]importer.Result, error)
}

// Publisher publishes the MovesImported events; *events.Publisher satisfies it.
type Publisher interface {
	Publish(ctx context.Context, ev events.Event) (*jetstream.PubAck, error)
}

// Config configures an ImportTrigger. Zero values take the documented defaults.
type Config struct {
	// Debounce is how long a burst of trade inserts of one scope is collected before its
	// import runs. Default 250ms.
	Debounce time.Duration
	// ImportTimeout bounds one coalesced import. Default 10m.
	ImportTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer receives the import metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	// TracerProvider makes a "cinimport.import" span per import run, holding its statements
	// and MovesImported publishes: a child of the change (or tick) that caused it, linked to
	// the other changes coalesced into it. Default: otel's global provider.
	TracerProvider trace.TracerProvider
}

// ImportTrigger runs imports when sessions open, trades arrive and sweeps tick.
type ImportTrigger struct {
	im     Importer
	pub    Publisher
	cfg    Config
	log    *slog.Logger
	tracer trace.Tracer

	mu      sync.Mutex
	pending map[string]*batch // by account scope
	wg      sync.WaitGroup

	waitingMu sync.Mutex
	waitingOf map[int64]bool // the sessions with a cp_cinimport_pending_markets series

	runs     *prometheus.CounterVec
	moves    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	waiting  *prometheus.GaugeVec
	distrust *prometheus.CounterVec
}

// batch is one coalesced import of a scope.
type batch struct {
	trigger eventsv1.MovesImported_Trigger
	done    chan struct{}
	err     error
	// joined are the spans of the later calls coalesced into the batch (under the trigger's mu).
	joined []trace.Link
}

// New returns a trigger. pub may be nil: imports then publish nothing.
func New(im Importer, pub Publisher, cfg Config) *ImportTrigger {
	if cfg.Debounce <= 0 {
		cfg.Debounce = 250 * time.Millisecond
	}
	if cfg.ImportTimeout <= 0 {
		cfg.ImportTimeout = 10 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	t := &ImportTrigger{im: im, pub: pub, cfg: cfg, log: cfg.Logger, pending: map[string]*batch{}, waitingOf: map[int64]bool{},
		tracer: cfg.TracerProvider.Tracer("cryptopill.dev/jobs/services/cinimport/trigger"),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cp_cinimport_import_runs_total",
			Help: "Import runs by trigger and result (ok, error)."}, []string{"trigger", "result"}),
		moves: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cp_cinimport_moves_imported_total",
			Help: "Moves inserted into cin_aux.rt_move, by trigger."}, []string{"trigger"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "cp_cinimport_import_duration_seconds",
			Help: "Duration of import runs, by trigger.", Buckets: prometheus.ExponentialBuckets(0.005, 4, 8)}, []string{"trigger"}),
		waiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cp_cinimport_pending_markets",
			Help: "Markets whose trades a session's imports pass over until their quote asset is known (market.symbols or the universe), by session, as of its last import."},
			[]string{"rt_session_id"}),
		distrust: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cp_cinimport_snapshots_discarded_total",
			Help: "Imports that did not trust their session's stored snapshot and looked at every trade of the session once, by reason (other_cluster: a dump restored into another cluster; ahead_of_cluster: its xmax is beyond the cluster's xids; unrecorded_cluster: a cursor from before migration 00013)."},
			[]string{"reason"}),
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(t.runs, t.moves, t.duration, t.waiting, t.distrust)
	}
	return t
}

// Wait blocks until every coalesced import started so far has finished.
func (t *ImportTrigger) Wait() { t.wg.Wait() }

// HandleChange is the events.Handler of the cinimport-changes consumer.
func (t *ImportTrigger) HandleChange(ctx context.Context, ev events.Event) error {
	rc, ok := ev.Payload.(*eventsv1.RowChange)
	if !ok {
		return events.Permanent(fmt.Errorf("%s: payload %T, want RowChange", ev.Subject, ev.Payload))
	}
	switch rc.GetSchema() + "." + rc.GetTable() {
	case "cin_aux.rt_session":
		return t.sessionChanged(ctx, rc)
	case "market.account_trades":
		if rc.GetOp() != eventsv1.RowChange_OP_INSERT {
			return nil
		}
		scope := text(rc.GetNewValues(), "account_scope")
		if scope == "" {
			scope = "default"
		}
		// No trade time hint: the import finds every trade stored since the last one, whatever
		// its trade time (a hint would rescan every trade from it on).
		return t.ImportScope(ctx, scope, eventsv1.MovesImported_TRIGGER_TRADES_INSERTED)
	}
	return nil
}

// sessionChanged imports a session that is OPEN after the change (opened, or updated while
// open). Closed and deleted sessions are not imported, and their pending-markets series goes.
func (t *ImportTrigger) sessionChanged(ctx context.Context, rc *eventsv1.RowChange) error {
	nv := rc.GetNewValues()
	if rc.GetOp() == eventsv1.RowChange_OP_DELETE {
		nv = rc.GetOldValues()
	}
	id, err := strconv.ParseInt(text(nv, "session_id"), 10, 64)
	if err != nil {
		if rc.GetOp() == eventsv1.RowChange_OP_DELETE || text(nv, "status") != "OPEN" {
			return nil // nothing to import; a deleted row's key may not come with the event
		}
		return events.Permanent(fmt.Errorf("rt_session change without a session_id: %w", err))
	}
	if rc.GetOp() == eventsv1.RowChange_OP_DELETE || text(nv, "status") != "OPEN" {
		t.forgetWaiting(id)
		return nil
	}
	// A start moved earlier is found by the import itself (from the start its cursor covers);
	// the change's start is not needed, but one that is not a timestamptz is a fault upstream
	// (the relay, a DateStyle other than ISO) that must be seen: dead-lettered after the import.
	var badStart error
	if start := text(nv, "started_at"); start != "" {
		if _, ok := parseTimestamptz(start); !ok {
			badStart = events.Permanent(fmt.Errorf("rt_session %d change: started_at %q is not a timestamptz in ISO DateStyle", id, start))
		}
	}
	if _, err := t.run(ctx, []importer.Session{{ID: id}}, importer.Options{}, eventsv1.MovesImported_TRIGGER_SESSION_CHANGED); err != nil {
		return err
	}
	return badStart
}

// HandleTick is the events.Handler of the cinimport-ticks consumer: the sweep.
func (t *ImportTrigger) HandleTick(ctx context.Context, ev events.Event) error {
	_, err := t.ImportAll(ctx, importer.Options{}, eventsv1.MovesImported_TRIGGER_SWEEP)
	return err
}

// ImportAll imports every OPEN session in one run.
func (t *ImportTrigger) ImportAll(ctx context.Context, opts importer.Options, trigger eventsv1.MovesImported_Trigger) ([]importer.Result, error) {
	ids, err := t.im.OpenSessions(ctx)
	if err != nil {
		return nil, err
	}
	sessions := make([]importer.Session, len(ids))
	for i, id := range ids {
		sessions[i] = importer.Session{ID: id}
	}
	// Sessions no longer OPEN keep no pending-markets series.
	t.waitingMu.Lock()
	var gone []int64
	for id := range t.waitingOf {
		if !slices.Contains(ids, id) {
			gone = append(gone, id)
		}
	}
	t.waitingMu.Unlock()
	for _, id := range gone {
		t.forgetWaiting(id)
	}
	return t.run(ctx, sessions, opts, trigger)
}

// setWaiting sets a session's pending-markets series, or removes it when nothing waits.
func (t *ImportTrigger) setWaiting(id int64, markets int) {
	if markets == 0 {
		t.forgetWaiting(id)
		return
	}
	t.waitingMu.Lock()
	defer t.waitingMu.Unlock()
	t.waitingOf[id] = true
	t.waiting.WithLabelValues(strconv.FormatInt(id, 10)).Set(float64(markets))
}

// forgetWaiting removes a session's pending-markets series (nothing waits, or it is not OPEN).
func (t *ImportTrigger) forgetWaiting(id int64) {
	t.waitingMu.Lock()
	defer t.waitingMu.Unlock()
	delete(t.waitingOf, id)
	t.waiting.DeleteLabelValues(strconv.FormatInt(id, 10))
}

// ImportScope imports the OPEN sessions of scope, coalesced with every other call for the same
// scope within the debounce, and returns when the import that covers this call has committed.
func (t *ImportTrigger) ImportScope(ctx context.Context, scope string, trigger eventsv1.MovesImported_Trigger) error {
	t.mu.Lock()
	b, ok := t.pending[scope]
	if !ok {
		b = &batch{trigger: trigger, done: make(chan struct{})}
		t.pending[scope] = b
		t.wg.Add(1)
		// The import outlives the handler that opened the batch: others wait on it too.
		go t.flush(context.WithoutCancel(ctx), scope, b)
	} else if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		b.joined = append(b.joined, trace.Link{SpanContext: sc})
	}
	t.mu.Unlock()
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *ImportTrigger) flush(ctx context.Context, scope string, b *batch) {
	defer t.wg.Done()
	defer close(b.done)
	time.Sleep(t.cfg.Debounce)
	t.mu.Lock()
	delete(t.pending, scope) // later calls open the next batch
	links := b.joined
	t.mu.Unlock()
	// In the trace of the call that opened the batch, linked to the others it covers.
	ctx = contextWithLinks(ctx, links)

	ctx, cancel := context.WithTimeout(ctx, t.cfg.ImportTimeout)
	defer cancel()
	ids, err := t.im.OpenSessions(ctx, scope)
	if err != nil {
		b.err = err
		return
	}
	sessions := make([]importer.Session, len(ids))
	for i, id := range ids {
		sessions[i] = importer.Session{ID: id}
	}
	_, b.err = t.run(ctx, sessions, importer.Options{}, b.trigger)
}

// run imports and publishes one MovesImported per session.
func (t *ImportTrigger) run(ctx context.Context, sessions []importer.Session, opts importer.Options, trigger eventsv1.MovesImported_Trigger) ([]importer.Result, error) {
	if len(sessions) == 0 {
		return nil, nil
	}
	runID := events.NewID()
	ctx, span := t.tracer.Start(ctx, "cinimport.import", trace.WithLinks(linksOf(ctx)...), trace.WithAttributes(
		attribute.String("cp.run_id", runID), attribute.String("cp.trigger", trigger.String()),
		attribute.Int("cp.sessions", len(sessions)), attribute.Bool("cp.full", opts.Full)))
	defer span.End()
	started := time.Now()
	results, err := t.im.Import(ctx, sessions, opts)
	label := strings.ToLower(strings.TrimPrefix(trigger.String(), "TRIGGER_"))
	t.duration.WithLabelValues(label).Observe(time.Since(started).Seconds())
	if err != nil {
		t.runs.WithLabelValues(label, "error").Inc()
		t.log.ErrorContext(ctx, "import failed", "run_id", runID, "trigger", trigger.String(), "err", err)
		span.RecordError(err)
		span.SetStatus(codes.Error, "import failed")
		return nil, err
	}
	t.runs.WithLabelValues(label, "ok").Inc()
	importedAt := time.Now()
	// A session asked for but not imported is not OPEN (or gone): nothing of it waits.
	for _, s := range sessions {
		if !slices.ContainsFunc(results, func(r importer.Result) bool { return r.SessionID == s.ID }) {
			t.forgetWaiting(s.ID)
		}
	}
	var errs []error
	for _, r := range results {
		t.moves.WithLabelValues(label).Add(float64(r.Moves))
		t.setWaiting(r.SessionID, len(r.PendingMarkets))
		if len(r.PendingMarkets) > 0 {
			t.log.WarnContext(ctx, "trades wait for their market to be known", "rt_session_id", r.SessionID, "markets", r.PendingMarkets,
				"run_id", runID, "hint", "add the markets to market.symbols or settings.coin_universe; the next import takes their trades")
		}
		if r.SnapshotDiscarded != "" {
			t.distrust.WithLabelValues(r.SnapshotDiscarded).Inc()
			t.log.WarnContext(ctx, "stored import snapshot not trusted: every trade of the session was looked at once", "rt_session_id", r.SessionID,
				"reason", r.SnapshotDiscarded, "checked", r.Checked, "run_id", runID,
				"hint", "expected once after a dump restored into another cluster or an upgrade to migration 00013; if it repeats, the cluster's transaction ids went back")
		}
		// rt_session_id: the process's own ops.session_log id is already session_id in its logs.
		t.log.InfoContext(ctx, "moves imported", "rt_session_id", r.SessionID, "moves", r.Moves, "checked", r.Checked, "run_id", runID,
			"trigger", trigger.String(), "took", importedAt.Sub(started).Round(time.Millisecond).String())
		if t.pub == nil {
			continue
		}
		msg := &eventsv1.MovesImported{
			SessionId:  r.SessionID,
			Moves:      r.Moves,
			RunId:      runID,
			Trigger:    trigger,
			ImportedAt: timestamppb.New(importedAt),
		}
		if r.Moves > 0 {
			msg.From, msg.To = timestamppb.New(r.FirstTrade), timestamppb.New(r.LastTrade)
		}
		if _, err := t.pub.Publish(ctx, events.Event{
			Subject: events.MovesImportedSubject(r.SessionID),
			ID:      events.MovesImportedID(r.SessionID, runID),
			Payload: msg,
		}); err != nil {
			errs = append(errs, fmt.Errorf("publish moves imported of session %d: %w", r.SessionID, err))
		}
	}
	var moves int64
	for _, r := range results {
		moves += r.Moves
	}
	span.SetAttributes(attribute.Int64("cp.moves", moves))
	if err := errors.Join(errs...); err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "moves imported not published")
		return results, err
	}
	return results, nil
}

// linksKey carries the span links of a coalesced import to the span of its run.
type linksKey struct{}

func contextWithLinks(ctx context.Context, links []trace.Link) context.Context {
	if len(links) == 0 {
		return ctx
	}
	return context.WithValue(ctx, linksKey{}, links)
}

func linksOf(ctx context.Context) []trace.Link {
	links, _ := ctx.Value(linksKey{}).([]trace.Link)
	return links
}

// text returns a column's text value from a RowChange, "" when absent or NULL.
func text(values map[string]*eventsv1.Value, column string) string {
	if v, ok := values[column]; ok {
		return v.GetText()
	}
	return ""
}

// parseTimestamptz reads a timestamptz in Postgres text output (ISO DateStyle), e.g.
// "2025-03-01 12:00:00.123+00" or "2025-03-01 12:00:00+05:30".
func parseTimestamptz(s string) (time.Time, bool) {
	for _, layout := range []string{"2006-01-02 15:04:05.999999999-07", "2006-01-02 15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999-07:00:00", time.RFC3339Nano} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
