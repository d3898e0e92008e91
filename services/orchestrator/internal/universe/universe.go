// Package universe is the orchestrator's UniverseWatcher: it publishes cp.universe.changed with
// the full enabled coin universe once at start and after every committed change to
// settings.coin_universe that the change relay streams.
package universe

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"cryptopill.dev/jobs/libs/events"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
)

// Table is the table whose changes drive the watcher.
const Table = "settings.coin_universe"

// Publisher publishes one event and waits for its PubAck (events.Publisher does).
type Publisher interface {
	Publish(ctx context.Context, ev events.Event) (*jetstream.PubAck, error)
}

// Config configures a Watcher.
type Config struct {
	// Pool reads settings.coin_universe. Required.
	Pool *pgxpool.Pool
	// Publisher publishes the events. Required.
	Publisher Publisher
	// JS reads the last published universe at start, for added and removed. Required.
	JS jetstream.JetStream
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
}

// Change is one committed transaction that changed the universe table.
type Change struct {
	CommitLSN  uint64
	CommitTime time.Time
	// Resync marks no particular commit: the relay has started streaming and the universe is
	// published again, under its start id (the version alone), so an unchanged universe is
	// dropped as a duplicate and one changed before the slot existed is stored.
	Resync bool
}

// Watcher publishes the enabled universe.
type Watcher struct {
	cfg       Config
	log       *slog.Logger
	changes   chan Change
	published *prometheus.CounterVec
	size      prometheus.Gauge

	// enabled is the set last published, for the next event's added and removed.
	enabled []string
	// started is set once this watcher has published its start event.
	started bool
}

// New returns a Watcher.
func New(cfg Config) (*Watcher, error) {
	if cfg.Pool == nil || cfg.Publisher == nil || cfg.JS == nil {
		return nil, errors.New("universe: Pool, Publisher and JS are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	w := &Watcher{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "universe_watcher"),
		changes: make(chan Change, 1024),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cp_orchestrator_universe_published_total",
			Help: "cp.universe.changed events published, by reason (start, change, resync) and result (stored, duplicate, unchanged: equal to the last event, not published)."}, []string{"reason", "result"}),
		size: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cp_orchestrator_universe_enabled",
			Help: "Symbols in the enabled universe last published."}),
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(w.published, w.size)
	}
	return w, nil
}

// Notify tells the watcher a transaction changed the universe table. It never blocks: when the
// queue is full the change is folded into the ones queued (each event carries the whole set).
func (w *Watcher) Notify(c Change) {
	select {
	case w.changes <- c:
	default:
		w.log.Warn("universe change queue full; folding into queued changes", "commit_lsn", c.CommitLSN)
	}
}

// Version is the version of an enabled set: a digest of its sorted symbols. Equal sets have equal
// versions on every orchestrator.
func Version(enabled []string) string {
	sorted := slices.Clone(enabled)
	slices.Sort(sorted)
	sum := sha256.Sum256([]byte(strings.Join(sorted, "\n")))
	return hex.EncodeToString(sum[:12])
}

// ChangeID is the id of the event published for the transaction committed at commitLSN. It
// includes the LSN: with the version alone, a universe changed A → B → A inside the stream's
// duplicate window would have its return to A dropped as a duplicate.
func ChangeID(version string, commitLSN uint64) string {
	return events.StableID("universe_change", version, strconv.FormatUint(commitLSN, 10))
}

// Run publishes the current universe, then one event per notified change, until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	for {
		err := w.publishStart(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		w.log.Warn("publishing the universe at start failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case c := <-w.changes:
			for {
				err := w.publishChange(ctx, c)
				if err == nil || ctx.Err() != nil {
					break
				}
				w.log.Warn("publishing a universe change failed; retrying", "commit_lsn", c.CommitLSN, "err", err)
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(time.Second):
				}
			}
		}
	}
}

// publishStart publishes the current universe with an id derived from its version alone, so an
// unchanged universe republished by a restart is dropped as a duplicate.
func (w *Watcher) publishStart(ctx context.Context) error {
	enabled, err := w.load(ctx)
	if err != nil {
		return err
	}
	previous, err := w.lastPublished(ctx)
	if err != nil {
		w.log.Warn("reading the last published universe failed; reporting every symbol as added", "err", err)
	}
	w.enabled = previous
	version := Version(enabled)
	return w.publish(ctx, "start", events.UniverseID(version), enabled, time.Now())
}

func (w *Watcher) publishChange(ctx context.Context, c Change) error {
	enabled, err := w.load(ctx)
	if err != nil {
		return err
	}
	if c.Resync {
		return w.publish(ctx, "resync", events.UniverseID(Version(enabled)), enabled, c.CommitTime)
	}
	return w.publish(ctx, "change", ChangeID(Version(enabled), c.CommitLSN), enabled, c.CommitTime)
}

func (w *Watcher) publish(ctx context.Context, reason, id string, enabled []string, at time.Time) error {
	// After the start event, one whose set equals the last this watcher published adds nothing: a
	// change notified after a resync already published it, or a resync with nothing missed.
	if reason != "start" && w.started && Version(enabled) == Version(w.enabled) {
		w.published.WithLabelValues(reason, "unchanged").Inc()
		w.log.Debug("universe unchanged since the last event; not published", "reason", reason, "version", Version(enabled))
		return nil
	}
	ev := &eventsv1.UniverseChanged{
		Version:   Version(enabled),
		Enabled:   enabled,
		Added:     minus(enabled, w.enabled),
		Removed:   minus(w.enabled, enabled),
		ChangedAt: timestamppb.New(at),
	}
	ack, err := w.cfg.Publisher.Publish(ctx, events.Event{Subject: events.SubjectUniverseChanged, ID: id, Payload: ev})
	if err != nil {
		return err
	}
	result := "stored"
	if ack.Duplicate {
		result = "duplicate"
	}
	w.published.WithLabelValues(reason, result).Inc()
	w.size.Set(float64(len(enabled)))
	w.log.Info("universe published", "reason", reason, "result", result, "version", ev.Version,
		"enabled", len(enabled), "added", ev.Added, "removed", ev.Removed)
	w.enabled = enabled
	w.started = true
	return nil
}

func (w *Watcher) load(ctx context.Context) ([]string, error) {
	rows, err := w.cfg.Pool.Query(ctx, `SELECT symbol FROM settings.coin_universe WHERE COALESCE(enabled, true) ORDER BY symbol`)
	if err != nil {
		return nil, fmt.Errorf("read settings.coin_universe: %w", err)
	}
	enabled, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read settings.coin_universe: %w", err)
	}
	if enabled == nil {
		enabled = []string{}
	}
	return enabled, nil
}

// lastPublished is the enabled set of the last event in the stream, nil when there is none.
func (w *Watcher) lastPublished(ctx context.Context) ([]string, error) {
	s, err := w.cfg.JS.Stream(ctx, events.StreamUniverse)
	if err != nil {
		return nil, err
	}
	raw, err := s.GetLastMsgForSubject(ctx, events.SubjectUniverseChanged)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	_, ev, err := events.Decode(ctx, &nats.Msg{Subject: raw.Subject, Header: raw.Header, Data: raw.Data})
	if err != nil {
		return nil, err
	}
	u, ok := ev.Payload.(*eventsv1.UniverseChanged)
	if !ok {
		return nil, fmt.Errorf("last message on %s is a %s", events.SubjectUniverseChanged, ev.Type)
	}
	return u.Enabled, nil
}

// minus is a \ b for sorted a and b.
func minus(a, b []string) []string {
	out := []string{}
	for _, s := range a {
		if _, found := slices.BinarySearch(b, s); !found {
			out = append(out, s)
		}
	}
	return out
}
