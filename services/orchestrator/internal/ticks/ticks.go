package ticks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"cryptopill.dev/jobs/libs/events"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
)

// Publisher publishes one event and waits for its PubAck (events.Publisher does).
type Publisher interface {
	Publish(ctx context.Context, ev events.Event) (*jetstream.PubAck, error)
}

// Module is one tick schedule.
type Module struct {
	// Name is the module, the last token of cp.tick.<module>.
	Name string
	// Period is the tick period; period starts are multiples of it since the Unix epoch.
	Period time.Duration
	// RunnerSessionID is carried in the ticks (STR_AUX_RUNNER_SESSION_ID for straux).
	RunnerSessionID string
}

// Config configures a TickPublisher.
type Config struct {
	// Modules to tick. Required.
	Modules []Module
	// Publisher publishes the ticks. Required.
	Publisher Publisher
	// JS reads the last tick of each module at start, to count periods missed while no
	// orchestrator ran. Required.
	JS jetstream.JetStream
	// Flags freezes ticks; nil never freezes.
	Flags *FreezeFlags
	// Session is the orchestrator's own session stamp, carried in every tick.
	Session *eventsv1.OrchestratorSession
	// Now is the wall clock. Default time.Now.
	Now func() time.Time
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	// TracerProvider makes a "tick <module>" span per period, the root of the tick's trace: the
	// publish and everything straux does for the tick are under it. Default: otel's global
	// provider.
	TracerProvider trace.TracerProvider
}

// TickPublisher publishes the ticks of every module.
type TickPublisher struct {
	cfg     Config
	log     *slog.Logger
	metrics *tickMetrics
	tracer  trace.Tracer
}

type tickMetrics struct {
	published *prometheus.CounterVec
	missed    *prometheus.CounterVec
	frozen    *prometheus.CounterVec
	frozenNow *prometheus.GaugeVec
	last      *prometheus.GaugeVec
	period    *prometheus.GaugeVec
}

// New validates cfg and returns a TickPublisher.
func New(cfg Config) (*TickPublisher, error) {
	if len(cfg.Modules) == 0 || cfg.Publisher == nil || cfg.JS == nil {
		return nil, errors.New("ticks: Modules, Publisher and JS are required")
	}
	for _, m := range cfg.Modules {
		if m.Name == "" || m.Period <= 0 {
			return nil, fmt.Errorf("ticks: module %q: name and a positive period are required", m.Name)
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	m := &tickMetrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cp_orchestrator_ticks_published_total",
			Help: "Ticks published, by module and result (stored, or duplicate: another orchestrator had published it)."}, []string{"module", "result"}),
		missed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cp_orchestrator_ticks_missed_total",
			Help: "Periods that got no tick: no orchestrator ran (counted at start from the stream) or this one fell behind."}, []string{"module"}),
		frozen: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cp_orchestrator_ticks_frozen_total",
			Help: "Periods skipped because the module was frozen."}, []string{"module"}),
		frozenNow: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cp_orchestrator_frozen",
			Help: "1 while the module's ticks are frozen."}, []string{"module"}),
		last: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cp_orchestrator_last_tick_period_start_timestamp_seconds",
			Help: "Period start of the module's last tick published or found, Unix seconds."}, []string{"module"}),
		period: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cp_orchestrator_tick_period_seconds",
			Help: "The module's tick period (alerts compare the last tick's age with it)."}, []string{"module"}),
	}
	for _, mod := range cfg.Modules {
		m.period.WithLabelValues(mod.Name).Set(mod.Period.Seconds())
		// Zero, not absent, until the first one: increase() and alerts see it.
		m.missed.WithLabelValues(mod.Name)
		m.frozen.WithLabelValues(mod.Name)
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(m.published, m.missed, m.frozen, m.frozenNow, m.last, m.period)
	}
	return &TickPublisher{cfg: cfg, log: cfg.Logger.With("component", "tick_publisher"), metrics: m,
		tracer: cfg.TracerProvider.Tracer("cryptopill.dev/jobs/services/orchestrator/ticks")}, nil
}

// PeriodStart is the start of the period containing t: the largest multiple of period since
// the Unix epoch not after t. Every orchestrator computes the same starts, whatever its start.
func PeriodStart(t time.Time, period time.Duration) time.Time {
	ns := t.UnixNano()
	p := int64(period)
	start := ns - ns%p
	if ns%p < 0 {
		start -= p
	}
	return time.Unix(0, start).UTC()
}

// Run publishes ticks until ctx ends.
func (p *TickPublisher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, m := range p.cfg.Modules {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.runModule(ctx, m)
		}()
	}
	wg.Wait()
	return nil
}

func (p *TickPublisher) runModule(ctx context.Context, m Module) {
	log := p.log.With("module", m.Name, "period", m.Period.String())
	if p.cfg.Flags != nil {
		// Do not tick before knowing whether the module is frozen: a freeze must hold across a
		// restart. Missed periods are counted once ticking starts.
		for waited := false; ; waited = true {
			select {
			case <-p.cfg.Flags.Ready():
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Second):
				log.Warn("freeze flags not known yet (is the flags bucket readable?); not ticking until they are")
				continue
			}
			if waited {
				log.Info("freeze flags known; ticking")
			}
			break
		}
	}
	// last is the start of the last period known to have its tick.
	last, found := p.lastInStream(ctx, m)
	if found {
		p.metrics.last.WithLabelValues(m.Name).Set(float64(last.Unix()))
	}
	var skipped time.Time // the period last skipped because frozen
	for first := true; ; first = false {
		// Taken before the frozen check, so an unfreeze between the two is not missed.
		var changed <-chan struct{}
		if p.cfg.Flags != nil {
			changed = p.cfg.Flags.Changed()
		}
		current := PeriodStart(p.cfg.Now(), m.Period)
		if !found || current.After(last) {
			if gap := int64(current.Sub(last)/m.Period) - 1; found && gap > 0 {
				p.metrics.missed.WithLabelValues(m.Name).Add(float64(gap))
				msg := "periods without a tick: this orchestrator fell behind"
				if first {
					msg = "periods without a tick while no orchestrator ran (or ticks were frozen)"
				}
				log.Warn(msg, "missed", gap, "last_tick_period_start", last, "current_period_start", current)
			}
			if frozen, key := p.frozen(m.Name); frozen {
				p.metrics.frozen.WithLabelValues(m.Name).Inc()
				skipped = current
				log.Info("tick skipped: frozen", "flag", key, "period_start", current)
			} else if err := p.publish(ctx, m, current); err != nil {
				if ctx.Err() != nil {
					return
				}
				p.metrics.missed.WithLabelValues(m.Name).Inc()
				log.Error("publishing tick failed; the period goes without one", "period_start", current, "err", err)
			}
			// A frozen or failed period counts as handled: the next is due at its start.
			last, found = current, true
		}
		next := current.Add(m.Period)
		timer := time.NewTimer(next.Sub(p.cfg.Now()))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		case <-changed:
			timer.Stop()
			// Unfrozen in a period that was skipped: tick it now rather than at its end.
			if frozen, _ := p.frozen(m.Name); !frozen && skipped.Equal(current) {
				found = false
			}
		}
	}
}

func (p *TickPublisher) frozen(module string) (bool, string) {
	if p.cfg.Flags == nil {
		return false, ""
	}
	frozen, key := p.cfg.Flags.Frozen(module)
	v := 0.0
	if frozen {
		v = 1
	}
	p.metrics.frozenNow.WithLabelValues(module).Set(v)
	return frozen, key
}

func (p *TickPublisher) publish(ctx context.Context, m Module, start time.Time) (err error) {
	ctx, span := p.tracer.Start(ctx, "tick "+m.Name, trace.WithAttributes(
		attribute.String("cp.module", m.Name),
		attribute.String("cp.period_start", start.UTC().Format(time.RFC3339)),
		attribute.String("cp.period", m.Period.String())))
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "tick not published")
		}
		span.End()
	}()
	tick := &eventsv1.Tick{
		Module:              m.Name,
		PeriodStart:         timestamppb.New(start),
		Period:              durationpb.New(m.Period),
		RunnerSessionId:     m.RunnerSessionID,
		OrchestratorSession: p.cfg.Session,
	}
	// Retrying past the period would only delay the next tick.
	ctx, cancel := context.WithTimeout(ctx, m.Period)
	defer cancel()
	ack, err := p.cfg.Publisher.Publish(ctx, events.Event{
		Subject: events.TickSubject(m.Name),
		ID:      events.TickID(m.Name, start),
		Time:    p.cfg.Now(),
		Payload: tick,
	})
	if err != nil {
		return err
	}
	result := "stored"
	if ack.Duplicate {
		result = "duplicate"
	}
	span.SetAttributes(attribute.String("cp.result", result))
	p.metrics.published.WithLabelValues(m.Name, result).Inc()
	p.metrics.last.WithLabelValues(m.Name).Set(float64(start.Unix()))
	p.log.DebugContext(ctx, "tick", "module", m.Name, "period_start", start, "result", result)
	return nil
}

// lastInStream finds the period start of the module's last tick in CP_TICKS.
func (p *TickPublisher) lastInStream(ctx context.Context, m Module) (time.Time, bool) {
	s, err := p.cfg.JS.Stream(ctx, events.StreamTicks)
	if err != nil {
		p.log.Warn("reading last tick: stream unavailable", "module", m.Name, "err", err)
		return time.Time{}, false
	}
	raw, err := s.GetLastMsgForSubject(ctx, events.TickSubject(m.Name))
	if err != nil {
		if !errors.Is(err, jetstream.ErrMsgNotFound) {
			p.log.Warn("reading last tick failed", "module", m.Name, "err", err)
		}
		return time.Time{}, false
	}
	_, ev, err := events.Decode(ctx, &nats.Msg{Subject: raw.Subject, Header: raw.Header, Data: raw.Data})
	if err != nil {
		p.log.Warn("last tick in the stream does not decode", "module", m.Name, "seq", raw.Sequence, "err", err)
		return time.Time{}, false
	}
	tick, ok := ev.Payload.(*eventsv1.Tick)
	if !ok || tick.PeriodStart == nil {
		return time.Time{}, false
	}
	return tick.PeriodStart.AsTime(), true
}
