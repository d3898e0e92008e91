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
	// published again if it differs from the last event (a change committed before the slot
	// existed is never streamed).
	Resync bool
}

// Watcher publishes the enabled universe.
type Watcher struct {
	cfg       Config
	log       *slog.Logger
	changes   chan Change
	published *prometheus.CounterVec
	size      prometheus.Gauge
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

// publishStart publishes the current universe unless the stream's last event already holds it.
func (w *Watcher) publishStart(ctx context.Context) error {
	return w.publishSet(ctx, "start", Change{CommitTime: time.Now()})
}

func (w *Watcher) publishChange(ctx context.Context, c Change) error {
	if c.Resync {
		return w.publishSet(ctx, "resync", c)
	}
	return w.publishSet(ctx, "change", c)
}

// publishSet publishes the enabled set as it is now, compared with the stream's last event: an
// equal set adds nothing and is not published (a restart, a resync that found nothing missed, a
// change notified after a resync published it). The id of a change event includes its commit
// LSN; a start or resync event's id includes the sequence of the event it follows, so two
// orchestrators starting together store it once, and a set that comes back (A → B → A inside
// the duplicate window) is stored again rather than dropped as a duplicate of its first event.
func (w *Watcher) publishSet(ctx context.Context, reason string, c Change) error {
	enabled, err := w.load(ctx)
	if err != nil {
		return err
	}
	previous, seq, err := w.lastPublished(ctx)
	if err != nil {
		return fmt.Errorf("read the last published universe: %w", err)
	}
	version := Version(enabled)
	if seq > 0 && previous != nil && Version(previous) == version {
		w.published.WithLabelValues(reason, "unchanged").Inc()
		w.size.Set(float64(len(enabled)))
		w.log.Debug("universe unchanged since the last event; not published", "reason", reason, "version", version)
		return nil
	}
	id := events.UniverseID(version, seq)
	if reason == "change" {
		id = ChangeID(version, c.CommitLSN)
	}
	ev := &eventsv1.UniverseChanged{
		Version:   version,
		Enabled:   enabled,
		Added:     minus(enabled, previous),
		Removed:   minus(previous, enabled),
		ChangedAt: timestamppb.New(c.CommitTime),
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

// lastPublished is the enabled set of the last event in the stream and its sequence; 0 and nil
// when there is none. A last message that is not a universe event (published by hand) is
// reported and treated as unknown: the next event is published whatever it holds.
func (w *Watcher) lastPublished(ctx context.Context) ([]string, uint64, error) {
	s, err := w.cfg.JS.Stream(ctx, events.StreamUniverse)
	if err != nil {
		return nil, 0, err
	}
	raw, err := s.GetLastMsgForSubject(ctx, events.SubjectUniverseChanged)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	_, ev, err := events.Decode(ctx, &nats.Msg{Subject: raw.Subject, Header: raw.Header, Data: raw.Data})
	if err == nil {
		if u, ok := ev.Payload.(*eventsv1.UniverseChanged); ok {
			return u.Enabled, raw.Sequence, nil
		}
		err = fmt.Errorf("a %s", ev.Type)
	}
	w.log.Warn("the last message on "+events.SubjectUniverseChanged+" is not a universe event; publishing the universe whatever it holds",
		"stream_seq", raw.Sequence, "err", err)
	return nil, raw.Sequence, nil
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
