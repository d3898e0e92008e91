package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
)

// Publisher is what the relay needs from the event bus: an asynchronous publish whose outcome
// is reported exactly once.
type Publisher interface {
	// PublishAsync publishes c's payload on c.Subject in the events envelope with c.ID as ce-id
	// and Nats-Msg-Id. It may block while the publisher's own in-flight bound is reached. done is
	// called exactly once, from any goroutine, with nil after the PubAck or with the error; when
	// PublishAsync itself returns an error, done is not called.
	PublishAsync(ctx context.Context, c *Change, done func(error)) error
	// Stored reads what the stream already holds of tables (schema.table): the relay skips
	// replayed changes at or before the newest of the tables' last stored ones, and chains its
	// first publish to the stream's last message (Change.ExpectedLastID).
	Stored(ctx context.Context, tables []string) (Stored, error)
}

// Stored is the state of the change stream at the start of a session.
type Stored struct {
	// LastSeq is the stream's last sequence and LastID its last message's Nats-Msg-Id ("" when
	// it has none, or the stream is empty).
	LastSeq uint64
	LastID  string
	// Tables holds each table's last stored change; a table with none in the stream is absent.
	// Every change up to the newest of them (by stream sequence) is in the stream: the relay's
	// events are stored in the order it publishes them (each names its predecessor), and a
	// session skips only what is stored.
	Tables map[string]StoredChange
	// Unreadable holds the tables whose last stored message is not a change the relay wrote (it
	// names no position, or it is a copy stored under another id): it does not count, and the
	// relay says so.
	Unreadable map[string]error
}

// StoredChange is the position of a table's last stored change.
type StoredChange struct {
	// Seq is its stream sequence.
	Seq       uint64
	CommitLSN uint64
	Index     uint32
}

// covers reports whether the change at (commitLSN, index) is at or before s: already stored.
func (s StoredChange) covers(commitLSN uint64, index uint32) bool {
	return commitLSN < s.CommitLSN || commitLSN == s.CommitLSN && index <= s.Index
}

// later returns the later of s and o.
func (s StoredChange) later(o StoredChange) StoredChange {
	if s.covers(o.CommitLSN, o.Index) {
		return s
	}
	return o
}

// PublishError is the outcome of an event the publisher could not store.
type PublishError struct {
	ID      string
	Subject string
	Bytes   int
	Err     error
}

func (e *PublishError) Error() string {
	return fmt.Sprintf("publish %s %s (%d bytes): %v", e.Subject, e.ID, e.Bytes, e.Err)
}

func (e *PublishError) Unwrap() error { return e.Err }

// ConnectionReporter is implemented by publishers that can tell when their connection was
// replaced. Publishes in flight on a connection that dropped can be lost while later ones go
// through on the next one; a relay whose publisher reports a new generation (or no connection)
// ends its session and replays from the slot, which keeps every table's events in commit order.
type ConnectionReporter interface {
	Connection() (generation uint64, connected bool)
}

// Commit describes a relayed transaction, for Config.OnCommit.
type Commit struct {
	CommitLSN  uint64
	CommitTime time.Time
	// Tables are the schema-qualified tables the transaction changed.
	Tables []string
}

// Config configures a ChangeRelay. Zero values take the documented defaults.
type Config struct {
	// ConnString is the Postgres URL of the database whose changes are relayed. Required. The
	// streaming connection adds replication=database to it.
	ConnString string
	// Pool is a pool on the same database, used to create the publication and slot and to sample
	// slot lag. Required.
	Pool *pgxpool.Pool
	// Publisher publishes the events. Required.
	Publisher Publisher
	// Slot is the logical replication slot, created (persistent, pgoutput) when absent.
	// Default "cp_relay".
	Slot string
	// Publication is the publication streamed; created for Tables when absent, and its table set
	// is brought in line with Tables at every start. Default "cp_cdc".
	Publication string
	// Tables are the schema-qualified tables relayed. Required.
	Tables []string
	// MaxInFlight bounds the events published and not yet acknowledged. Default 8192.
	MaxInFlight int
	// MaxInFlightBytes bounds the bytes of those events (payloads plus a fixed overhead each), so
	// memory stays bounded whatever the rows' sizes; an event larger than the bound goes alone.
	// Default 64 MiB.
	MaxInFlightBytes int64
	// BlockedAfter is how many sessions in a row must fail on the same event before the relay
	// reports itself blocked (StateBlocked, cp_relay_publish_blocked, one error log). Default 3.
	BlockedAfter int
	// RecreateLostSlot drops and recreates a slot Postgres has invalidated (wal_status lost)
	// instead of waiting for an operator. The changes in between are gone either way; see
	// docs/orchestrator.md. Default off.
	RecreateLostSlot bool
	// LostSlotRetry is how often a relay whose slot is lost checks again. Default 30 s.
	LostSlotRetry time.Duration
	// StatusInterval is how often standby status goes to Postgres, carrying the confirmed
	// position; keep it well inside the server's wal_sender_timeout (60 s by default). Default 2 s.
	StatusInterval time.Duration
	// StandbyRetry is how often a relay whose slot is held by another one tries again. Default 1 s.
	StandbyRetry time.Duration
	// MaxBackoff caps the wait between attempts after a failed session, and so how long after
	// Postgres or NATS are back the relay can take to notice. Default 3 s.
	MaxBackoff time.Duration
	// DrainTimeout is how long a stopping relay waits for outstanding PubAcks before it reports
	// its final position. Default 5 s.
	DrainTimeout time.Duration
	// LagInterval is how often slot lag is sampled for cp_relay_slot_lag_bytes. Default 10 s.
	LagInterval time.Duration
	// OnCommit, when set, is called after each relayed transaction's Commit with the tables it
	// changed, on the relay's goroutine: it must not block.
	OnCommit func(Commit)
	// OnStreaming, when set, is called each time a session starts streaming, with the position it
	// streams from, on the relay's goroutine: it must not block. A change committed before the
	// slot existed is never streamed; a caller that published a snapshot of a table before that
	// (the universe at start) publishes it again from here.
	OnStreaming func(from pglogrepl.LSN)
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer receives the relay's metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
}

func (c *Config) validate() error {
	var errs []error
	if c.ConnString == "" {
		errs = append(errs, errors.New("ConnString is required"))
	}
	if c.Pool == nil {
		errs = append(errs, errors.New("Pool is required"))
	}
	if c.Publisher == nil {
		errs = append(errs, errors.New("Publisher is required"))
	}
	if len(c.Tables) == 0 {
		errs = append(errs, errors.New("Tables is required"))
	}
	for _, t := range c.Tables {
		if s, n, ok := strings.Cut(t, "."); !ok || s == "" || n == "" {
			errs = append(errs, fmt.Errorf("table %q: want schema.table", t))
		}
	}
	if c.Slot == "" {
		c.Slot = "cp_relay"
	}
	if c.Publication == "" {
		c.Publication = "cp_cdc"
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 8192
	}
	if c.MaxInFlightBytes <= 0 {
		c.MaxInFlightBytes = 64 << 20
	}
	if c.BlockedAfter <= 0 {
		c.BlockedAfter = 3
	}
	if c.LostSlotRetry <= 0 {
		c.LostSlotRetry = 30 * time.Second
	}
	if c.StatusInterval <= 0 {
		c.StatusInterval = 2 * time.Second
	}
	if c.StandbyRetry <= 0 {
		c.StandbyRetry = time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 3 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 5 * time.Second
	}
	if c.LagInterval <= 0 {
		c.LagInterval = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("relay config: %w", err)
	}
	return nil
}

// ChangeRelay streams the row changes of a publication from a logical replication slot to
// JetStream. Run it with Run; it returns when its context is cancelled, after draining.
type ChangeRelay struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	state   atomic.Value // State
	// confirmed is the last position reported to Postgres, for tests and status.
	confirmed atomic.Uint64
	// blocked is set while sessions keep failing on one event (see Config.BlockedAfter).
	blocked atomic.Bool
	// streamedAt is when the last session started streaming (unix ns), for the reconnect backoff.
	streamedAt atomic.Int64
	// acked is the last change of a session whose events up to it were all acknowledged (stored,
	// or already in the stream): the next session skips it and all before it. The stream's own
	// state cannot always say as much: a copy of an older change stored by hand hides a table's
	// last change, and a change published again would be acknowledged as a duplicate without
	// becoming the stream's last message, so every event chained after it would be refused.
	ackedMu sync.Mutex
	acked   StoredChange
	// streamLastSeq is CP_CDC's last sequence at the last session start: one lower means the
	// stream was recreated, and acked says nothing of it any more.
	streamLastSeq uint64
	// createdSlot is set when this relay created the slot, until the next session start reads
	// the stream; trustAfter is CP_CDC's last sequence then. A new slot streams only changes no
	// one has published, so what the stream held before says nothing of them (and a restored
	// database's old history could name positions its new WAL reaches).
	createdSlot bool
	trustAfter  uint64
}

// New validates cfg and returns a relay.
func New(cfg Config) (*ChangeRelay, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &ChangeRelay{cfg: cfg, log: cfg.Logger.With("component", "change_relay", "slot", cfg.Slot), metrics: newMetrics(cfg.Registerer, cfg.Slot)}
	r.setState(StateStarting)
	return r, nil
}

// State reports what the relay is doing.
func (r *ChangeRelay) State() State { return r.state.Load().(State) }

// ConfirmedLSN is the last position the relay reported to Postgres as flushed.
func (r *ChangeRelay) ConfirmedLSN() pglogrepl.LSN { return pglogrepl.LSN(r.confirmed.Load()) }

func (r *ChangeRelay) setState(s State) {
	if old, _ := r.state.Load().(State); old != s {
		r.state.Store(s)
		r.metrics.setState(s)
	}
}

// errSlotInUse: another relay is streaming from the slot.
var errSlotInUse = errors.New("replication slot is in use by another relay")

// errSlotLost: Postgres invalidated the slot (wal_status lost); it cannot be streamed again.
var errSlotLost = errors.New("replication slot was invalidated by Postgres (wal_status lost)")

// Run relays until ctx is cancelled. It reconnects after failures of Postgres or the publisher,
// waits while another relay holds the slot, and returns nil after a clean stop.
func (r *ChangeRelay) Run(ctx context.Context) error {
	go r.sampleLag(ctx)
	backoff := 250 * time.Millisecond
	standbyLogged, lostLogged := false, false
	var (
		failedID string // the event the last sessions failed on
		repeats  int
	)
	for {
		started := time.Now()
		err := r.session(ctx)
		if ctx.Err() != nil {
			r.setState(StateStopped)
			r.metrics.sessions.WithLabelValues("stopped").Inc()
			return nil
		}
		if !errors.Is(err, errSlotLost) && lostLogged {
			lostLogged = false
			r.metrics.slotLost.Set(0)
		}
		var wait time.Duration
		switch {
		case errors.Is(err, errSlotInUse):
			r.metrics.sessions.WithLabelValues("slot_in_use").Inc()
			r.setState(StateStandby)
			if !standbyLogged {
				r.log.Info("standing by: another relay holds the slot; taking over when it goes away", "err", err)
				standbyLogged = true
			}
			wait = r.cfg.StandbyRetry
		case errors.Is(err, errSlotLost):
			r.metrics.sessions.WithLabelValues("slot_lost").Inc()
			r.metrics.slotLost.Set(1)
			r.setState(StateSlotLost)
			if !lostLogged {
				r.log.Error("replication slot lost: Postgres invalidated it (max_slot_wal_keep_size exceeded while nobody read it) and the changes since are gone; "+
					"recreate it with SELECT pg_drop_replication_slot('"+r.cfg.Slot+"') (or set CDC_RECREATE_LOST_SLOT=1 and restart), "+
					"then run `cinimport once -full` to import what was missed; retrying in the meantime",
					"err", err, "retry_every", r.cfg.LostSlotRetry)
				lostLogged = true
			}
			standbyLogged = false
			wait = r.cfg.LostSlotRetry
		default:
			reason := "postgres"
			var pe *PublishError
			if errors.Is(err, errPublish) {
				reason = "publish"
				if errors.As(err, &pe) {
					if pe.ID == failedID {
						repeats++
					} else {
						failedID, repeats = pe.ID, 1
						r.unblock()
					}
				}
			}
			r.metrics.sessions.WithLabelValues(reason).Inc()
			standbyLogged = false
			// A session that streamed for a while was no tight failure loop: the next attempt
			// starts from the shortest wait, so an outage is left as soon as it ends.
			if at := r.streamedAt.Load(); time.Since(started) > time.Minute ||
				(at >= started.UnixNano() && time.Since(time.Unix(0, at)) > 5*time.Second) {
				backoff = 250 * time.Millisecond
			}
			wait = backoff
			backoff = min(backoff*2, r.cfg.MaxBackoff)
			if pe != nil && repeats >= r.cfg.BlockedAfter {
				if !r.blocked.Swap(true) {
					r.metrics.blocked.Set(1)
					r.log.Error("change relay blocked: the server rejects this event in every session; it is retried and never skipped, "+
						"and the slot retains WAL meanwhile: remove the cause (e.g. CP_CDC's max message size or the account's limits)",
						"event_id", pe.ID, "subject", pe.Subject, "bytes", pe.Bytes, "err", pe.Err, "sessions", repeats)
				}
				wait = max(r.cfg.MaxBackoff, 10*time.Second)
			}
			if r.blocked.Load() {
				r.setState(StateBlocked)
			} else {
				r.setState(StateBackoff)
			}
			r.log.Warn("replication session ended; reconnecting", "err", err, "retry_in", wait)
		}
		select {
		case <-ctx.Done():
			r.setState(StateStopped)
			return nil
		case <-time.After(wait):
		}
	}
}

// unblock clears the blocked report: the event it was stuck on went through (or another failed).
func (r *ChangeRelay) unblock() {
	if r.blocked.Swap(false) {
		r.metrics.blocked.Set(0)
		r.log.Info("change relay unblocked: the event it was stuck on is stored")
	}
}

// errPublish marks a session that ended because a publish failed.
var errPublish = errors.New("publish failed")

// session runs one replication connection from the slot's confirmed position.
func (r *ChangeRelay) session(ctx context.Context) error {
	start, err := r.prepare(ctx)
	if err != nil {
		return err
	}
	cfg, err := pgconn.ParseConfig(r.cfg.ConnString)
	if err != nil {
		return fmt.Errorf("parse database url: %w", err)
	}
	cfg.RuntimeParams["replication"] = "database"
	cfg.RuntimeParams["application_name"] = "cp_change_relay"
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	conn, err := pgconn.ConnectConfig(cctx, cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("connect for replication: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	err = pglogrepl.StartReplication(ctx, conn, r.cfg.Slot, 0, pglogrepl.StartReplicationOptions{
		Mode: pglogrepl.LogicalReplication,
		PluginArgs: []string{
			"proto_version '1'",
			fmt.Sprintf("publication_names '%s'", r.cfg.Publication),
		},
	})
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55006" { // object_in_use
			return fmt.Errorf("%w: %s", errSlotInUse, pgErr.Message)
		}
		if errors.As(err, &pgErr) && pgErr.Code == "55000" && r.slotLost(ctx) { // invalidated since prepare
			return fmt.Errorf("%w: %s", errSlotLost, pgErr.Message)
		}
		return fmt.Errorf("start replication on slot %s: %w", r.cfg.Slot, err)
	}
	// The slot is ours: only now is the stream read, so no other relay of this slot writes it.
	stored, err := r.cfg.Publisher.Stored(ctx, r.cfg.Tables)
	if err != nil {
		return fmt.Errorf("%w: read the change stream's last events: %w", errPublish, err)
	}
	if !r.blocked.Load() {
		r.setState(StateStreaming)
	}
	r.log.Info("streaming changes", "from_lsn", start.String(), "publication", r.cfg.Publication, "stream_last_seq", stored.LastSeq)
	r.streamedAt.Store(time.Now().UnixNano())
	if r.cfg.OnStreaming != nil {
		r.cfg.OnStreaming(start)
	}
	s := &stream{
		relay: r, conn: conn, dec: newDecoder(), start: start, reported: start,
		count: semaphore.NewWeighted(int64(r.cfg.MaxInFlight)), bytes: semaphore.NewWeighted(r.cfg.MaxInFlightBytes),
		lastID: stored.LastID,
	}
	walEnd, err := r.currentWAL(ctx)
	if err != nil {
		return err
	}
	for t, err := range stored.Unreadable {
		r.log.Warn("CP_CDC's last message of a table is not a change the relay wrote; it does not count toward what replays skip", "table", t, "err", err)
	}
	r.ackedMu.Lock()
	if r.createdSlot {
		r.createdSlot, r.trustAfter, r.acked = false, stored.LastSeq, StoredChange{}
	}
	if stored.LastSeq < r.streamLastSeq {
		r.acked = StoredChange{} // the stream was recreated
	}
	r.streamLastSeq = stored.LastSeq
	if r.acked.CommitLSN > uint64(walEnd) {
		r.acked = StoredChange{} // another database's history, as below
	}
	s.skipThrough = r.acked
	trustAfter := r.trustAfter
	r.ackedMu.Unlock()
	// The newest of the tables' last changes is the latest stored: the relay's events are stored
	// in publish order. By stream order, not position: after a restore, an idle table's last
	// change may be from the old history.
	var newest StoredChange
	for t, sc := range stored.Tables {
		if sc.CommitLSN > uint64(walEnd) {
			// Not this database's history (a restored or new cluster starts its WAL over):
			// skipping by it would drop real changes.
			r.log.Warn("CP_CDC's last change of a table lies beyond this database's WAL; replays are not skipped by it",
				"table", t, "stored_commit_lsn", pglogrepl.LSN(sc.CommitLSN).String(), "stream_seq", sc.Seq, "wal_lsn", walEnd.String())
			continue
		}
		if sc.Seq > trustAfter && sc.Seq > newest.Seq {
			newest = sc
		}
	}
	if newest.Seq > 0 {
		s.skipThrough = s.skipThrough.later(newest)
	}
	r.confirmed.Store(uint64(start))
	err = s.run(ctx, start)
	// Whatever ended the session, let its publishes resolve before the next one reads the
	// stream's state: one landing after that read would upset the next session's sequence.
	s.awaitOutstanding()
	return err
}

// prepare reads the slot and returns its confirmed position. Only a relay about to stream the
// slot (it is free) or create it touches anything shared: it brings the publication in line with
// Tables, then creates the slot when absent (in that order: a slot must not decode WAL from before
// its publication existed). A standby (the slot is active) changes nothing.
func (r *ChangeRelay) prepare(ctx context.Context) (pglogrepl.LSN, error) {
	var (
		confirmed *string
		walStatus *string
		active    bool
		sameDB    bool
		plugin    *string
	)
	const q = `SELECT active, confirmed_flush_lsn::text, wal_status, database IS NOT DISTINCT FROM current_database(), plugin FROM pg_replication_slots WHERE slot_name = $1`
	read := func() error {
		return r.cfg.Pool.QueryRow(ctx, q, r.cfg.Slot).Scan(&active, &confirmed, &walStatus, &sameDB, &plugin)
	}
	err := read()
	if err == nil && (!sameDB || plugin == nil || *plugin != "pgoutput") {
		// Slot names are cluster-wide: refuse to stream another database's (or a physical) slot.
		return 0, fmt.Errorf("replication slot %s exists but is not a pgoutput slot of this database; choose another CDC_SLOT", r.cfg.Slot)
	}
	if err == nil && active {
		return 0, fmt.Errorf("%w (pg_replication_slots.active)", errSlotInUse)
	}
	if err == nil && walStatus != nil {
		r.metrics.setWALStatus(*walStatus)
		switch *walStatus {
		case "lost":
			if !r.cfg.RecreateLostSlot {
				return 0, errSlotLost
			}
			// The operator opted in: the changes since the slot was lost are gone either way.
			if _, err := r.cfg.Pool.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, r.cfg.Slot); err != nil {
				return 0, fmt.Errorf("drop lost replication slot %s: %w", r.cfg.Slot, err)
			}
			r.log.Error("dropped the lost replication slot to recreate it (CDC_RECREATE_LOST_SLOT): the changes committed while it was lost are not relayed; run `cinimport once -full` to import them")
			err = pgx.ErrNoRows
		case "unreserved":
			r.log.Warn("replication slot is about to be lost: its WAL exceeds max_slot_wal_keep_size and Postgres will invalidate it at the next checkpoint unless the relay catches up")
		}
	}
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("read replication slot %s: %w", r.cfg.Slot, err)
	}
	if err := r.ensurePublication(ctx); err != nil {
		return 0, err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		_, err = r.cfg.Pool.Exec(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, r.cfg.Slot)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42710" { // created by another relay meanwhile
			err = nil
		}
		if err != nil {
			return 0, fmt.Errorf("create replication slot %s: %w", r.cfg.Slot, err)
		}
		if pgErr == nil {
			r.ackedMu.Lock()
			r.createdSlot = true
			r.ackedMu.Unlock()
		}
		r.log.Info("created replication slot")
		if err := read(); err != nil {
			return 0, fmt.Errorf("read replication slot %s: %w", r.cfg.Slot, err)
		}
	}
	if confirmed == nil {
		return 0, nil
	}
	lsn, err := pglogrepl.ParseLSN(*confirmed)
	if err != nil {
		return 0, fmt.Errorf("slot %s confirmed_flush_lsn %q: %w", r.cfg.Slot, *confirmed, err)
	}
	return lsn, nil
}

// currentWAL is the server's current WAL position.
func (r *ChangeRelay) currentWAL(ctx context.Context) (pglogrepl.LSN, error) {
	var v string
	if err := r.cfg.Pool.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read the current WAL position: %w", err)
	}
	lsn, err := pglogrepl.ParseLSN(v)
	if err != nil {
		return 0, fmt.Errorf("current WAL position %q: %w", v, err)
	}
	return lsn, nil
}

// slotLost reports whether Postgres has invalidated the slot.
func (r *ChangeRelay) slotLost(ctx context.Context) bool {
	var status *string
	err := r.cfg.Pool.QueryRow(ctx, `SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1`, r.cfg.Slot).Scan(&status)
	return err == nil && status != nil && *status == "lost"
}

func (r *ChangeRelay) ensurePublication(ctx context.Context) error {
	want := slices.Clone(r.cfg.Tables)
	slices.Sort(want)
	quoted := make([]string, len(want))
	for i, t := range want {
		s, n, _ := strings.Cut(t, ".")
		quoted[i] = pgx.Identifier{s, n}.Sanitize()
	}
	pub := pgx.Identifier{r.cfg.Publication}.Sanitize()
	var exists bool
	if err := r.cfg.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, r.cfg.Publication).Scan(&exists); err != nil {
		return fmt.Errorf("read publication %s: %w", r.cfg.Publication, err)
	}
	if !exists {
		_, err := r.cfg.Pool.Exec(ctx, "CREATE PUBLICATION "+pub+" FOR TABLE "+strings.Join(quoted, ", "))
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42710" {
			err = nil
		}
		if err != nil {
			return fmt.Errorf("create publication %s: %w%s", r.cfg.Publication, err, ownerHint(err, "CREATE PUBLICATION "+pub+" FOR TABLE "+strings.Join(quoted, ", ")))
		}
		r.log.Info("created publication", "publication", r.cfg.Publication, "tables", want)
		return nil
	}
	rows, err := r.cfg.Pool.Query(ctx, `SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1`, r.cfg.Publication)
	if err != nil {
		return fmt.Errorf("read publication %s tables: %w", r.cfg.Publication, err)
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("read publication %s tables: %w", r.cfg.Publication, err)
	}
	if slices.Equal(have, want) {
		return nil
	}
	alter := "ALTER PUBLICATION " + pub + " SET TABLE " + strings.Join(quoted, ", ")
	if _, err := r.cfg.Pool.Exec(ctx, alter); err != nil {
		return fmt.Errorf("set publication %s tables (it has %v, CDC_TABLES wants %v): %w%s", r.cfg.Publication, have, want, err, ownerHint(err, alter))
	}
	r.log.Info("updated publication tables", "publication", r.cfg.Publication, "was", have, "now", want)
	return nil
}

// ownerHint says what to do when the relay's role may not change the publication: creating one,
// or changing its tables, needs the ownership of the tables, which the relay's own role
// (cp_replication) does not have. Migration 00016 creates the default one.
func ownerHint(err error, stmt string) string {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" { // insufficient_privilege
		return ""
	}
	return "; the relay's role may not change publications (it does not own the tables): run `" + stmt + "` as the schema owner, or set CDC_TABLES to the publication's tables"
}

// sampleLag exports how far the slot's confirmed position trails the server's WAL.
func (r *ChangeRelay) sampleLag(ctx context.Context) {
	t := time.NewTicker(r.cfg.LagInterval)
	defer t.Stop()
	for {
		var (
			lag       *int64
			walStatus *string
		)
		err := r.cfg.Pool.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint, wal_status FROM pg_replication_slots WHERE slot_name = $1`, r.cfg.Slot).Scan(&lag, &walStatus)
		if err == nil && lag != nil {
			r.metrics.slotLag.Set(float64(*lag))
		}
		if err == nil && walStatus != nil {
			r.metrics.setWALStatus(*walStatus)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// stream is one replication session: it owns the connection, decodes, publishes and reports.
type stream struct {
	relay   *ChangeRelay
	conn    *pgconn.PgConn
	dec     *decoder
	tracker *ackTracker
	// count and bytes bound the events in flight.
	count, bytes *semaphore.Weighted
	start        pglogrepl.LSN

	// skipThrough is the last change known to be in the stream: replayed changes at or before
	// it are skipped (a replay can outlast the stream's duplicate window, and within it a
	// duplicate would break the chain of Change.ExpectedLastID). Zero once the replay is past it.
	skipThrough StoredChange
	// unacked is set once an event of the session failed: ChangeRelay.acked stops there.
	unacked bool
	// lastID is the id of the last event published (or of the stream's last message at session
	// start): the next event names it as its predecessor.
	lastID string

	tx         *txAcks
	txTables   []string
	reported   pglogrepl.LSN // last position sent to Postgres; never moves back
	idleLSN    pglogrepl.LSN // server WAL end seen while nothing was outstanding
	nextStatus time.Time
}

func (s *stream) run(ctx context.Context, start pglogrepl.LSN) error {
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s.tracker = newAckTracker(start, func(err error) { cancel(fmt.Errorf("%w: %w", errPublish, err)) })
	if cr, ok := s.relay.cfg.Publisher.(ConnectionReporter); ok {
		gen, connected := cr.Connection()
		if !connected {
			return fmt.Errorf("%w: not connected to NATS", errPublish)
		}
		go watchConnection(sctx, cancel, cr, gen)
	}
	s.nextStatus = time.Now().Add(s.relay.cfg.StatusInterval)
	for {
		if !time.Now().Before(s.nextStatus) {
			if err := s.sendStatus(); err != nil {
				return err
			}
		}
		rctx, rcancel := context.WithDeadline(sctx, s.nextStatus)
		msg, err := s.conn.ReceiveMessage(rctx)
		rcancel()
		if err != nil {
			if sctx.Err() != nil {
				break
			}
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("receive replication message: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if err := s.handleCopyData(sctx, m.Data); err != nil {
				if sctx.Err() != nil {
					break
				}
				return err
			}
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("replication stream: %w", pgconn.ErrorResponseToPgError(m))
		}
	}
	if cause := context.Cause(sctx); errors.Is(cause, errPublish) {
		// Confirm what was stored before the failure, so the replay starts as late as it can.
		if err := s.drain(); err != nil {
			s.relay.log.Warn("could not confirm the acknowledged position before ending the session", "err", err)
		}
		return cause
	}
	return s.drain()
}

func watchConnection(ctx context.Context, cancel context.CancelCauseFunc, cr ConnectionReporter, gen uint64) {
	t := time.NewTicker(25 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if g, connected := cr.Connection(); g != gen || !connected {
				cancel(fmt.Errorf("%w: NATS connection lost", errPublish))
				return
			}
		}
	}
}

// drain waits for outstanding PubAcks (bounded) and reports the final position, so a clean stop
// leaves the least to replay.
func (s *stream) drain() error {
	s.awaitOutstanding()
	return s.sendStatus()
}

// awaitOutstanding waits (at most DrainTimeout) until every publish of the session has resolved.
func (s *stream) awaitOutstanding() {
	if s.tracker == nil {
		return
	}
	deadline := time.Now().Add(s.relay.cfg.DrainTimeout)
	for time.Now().Before(deadline) && s.tracker.outstanding() > 0 {
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *stream) handleCopyData(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		pkm, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return fmt.Errorf("parse keepalive: %w", err)
		}
		// Everything before the keepalive has been received; when it is all acknowledged and no
		// transaction is open, the slot can confirm up to the server's WAL end: an idle slot (or
		// one whose WAL is all other tables' changes) keeps advancing and pins no WAL.
		if _, idle := s.tracker.position(); idle && s.dec.tx == nil && pkm.ServerWALEnd > s.idleLSN {
			s.idleLSN = pkm.ServerWALEnd
		}
		if s.relay.blocked.Load() {
			pos, _ := s.tracker.position()
			s.checkUnblocked(pos)
		}
		if pkm.ReplyRequested {
			return s.sendStatus()
		}
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("parse xlogdata: %w", err)
		}
		return s.handleWAL(ctx, xld.WALData)
	}
	return nil
}

func (s *stream) handleWAL(ctx context.Context, data []byte) error {
	msg, err := parseMessage(data)
	if err != nil {
		return fmt.Errorf("parse pgoutput message: %w", err)
	}
	switch m := msg.(type) {
	case *pglogrepl.RelationMessage:
		s.dec.relation(m)
	case *pglogrepl.BeginMessage:
		s.dec.begin(m)
		s.tx = s.tracker.begin()
		s.txTables = s.txTables[:0]
	case *pglogrepl.InsertMessage, *pglogrepl.UpdateMessage, *pglogrepl.DeleteMessage:
		if s.skipThrough != (StoredChange{}) {
			if table, lsn, index, ok := s.dec.position(m); ok {
				if s.skipThrough.covers(lsn, index) {
					s.dec.skip()
					s.relay.metrics.skipped.Inc()
					if !slices.Contains(s.txTables, table) {
						s.txTables = append(s.txTables, table)
					}
					return nil
				}
				s.skipThrough = StoredChange{} // changes come in commit order: the rest are new
			}
		}
		c, err := s.dec.change(m)
		if err != nil {
			return err
		}
		if err := s.publish(ctx, &c); err != nil {
			return err
		}
		if !slices.Contains(s.txTables, c.Table) {
			s.txTables = append(s.txTables, c.Table)
		}
	case *pglogrepl.CommitMessage:
		if s.tx == nil {
			return errors.New("commit without begin")
		}
		s.tracker.commit(s.tx, m.TransactionEndLSN)
		s.tx = nil
		if s.relay.blocked.Load() {
			pos, _ := s.tracker.position()
			s.checkUnblocked(pos)
		}
		tx := s.dec.tx
		s.dec.commit()
		if s.relay.cfg.OnCommit != nil && len(s.txTables) > 0 {
			s.relay.cfg.OnCommit(Commit{CommitLSN: uint64(tx.commitLSN), CommitTime: tx.commitTime, Tables: slices.Clone(s.txTables)})
		}
	case *pglogrepl.TruncateMessage:
		s.relay.metrics.truncates.Inc()
		s.relay.log.Warn("TRUNCATE on a relayed table is not relayed as row changes", "relations", m.RelationIDs)
	}
	return nil
}

// eventOverhead is what an event costs in flight besides its payload: headers, the message and
// its future.
const eventOverhead = 512

// publish hands one event to the publisher, waiting for room in flight (count and bytes) while
// still sending standby status on time.
func (s *stream) publish(ctx context.Context, c *Change) error {
	size := int64(len(c.Data)) + eventOverhead
	weight := min(size, s.relay.cfg.MaxInFlightBytes) // a larger event goes alone
	if err := s.acquire(ctx, s.count, 1); err != nil {
		return err
	}
	if err := s.acquire(ctx, s.bytes, weight); err != nil {
		s.count.Release(1)
		return err
	}
	// A session cancelled meanwhile (its NATS connection dropped) must not publish on a new
	// connection ahead of the events that will be replayed.
	if err := context.Cause(ctx); err != nil {
		s.count.Release(1)
		s.bytes.Release(weight)
		return err
	}
	c.ExpectedLastID = s.lastID
	m := s.relay.metrics
	tx, tracker, count, bytes := s.tx, s.tracker, s.count, s.bytes
	commitTime := c.CommitTime
	id, subject, n := c.ID, c.Subject, len(c.Data)
	tracker.sent(tx)
	m.inflight.Inc()
	m.inflightB.Add(float64(size))
	release := func(err error) {
		m.inflight.Dec()
		m.inflightB.Sub(float64(size))
		if err != nil {
			m.failed.Inc()
			err = &PublishError{ID: id, Subject: subject, Bytes: n, Err: err}
		}
		tracker.acked(tx, err)
		count.Release(1)
		bytes.Release(weight)
	}
	pos := StoredChange{CommitLSN: c.CommitLSN, Index: c.Index}
	err := s.relay.cfg.Publisher.PublishAsync(ctx, c, func(err error) {
		if err == nil {
			m.acked.Inc()
			m.latency.Observe(time.Since(commitTime).Seconds())
		}
		s.noteAck(pos, err)
		release(err)
	})
	if err != nil {
		s.noteAck(pos, err)
		release(err)
		return fmt.Errorf("%w: %w", errPublish, &PublishError{ID: id, Subject: subject, Bytes: n, Err: err})
	}
	s.lastID = c.ID
	m.published.Inc()
	return nil
}

// noteAck advances ChangeRelay.acked while every event of the session so far is acknowledged
// (outcomes come in publish order).
func (s *stream) noteAck(pos StoredChange, err error) {
	r := s.relay
	r.ackedMu.Lock()
	defer r.ackedMu.Unlock()
	if err != nil {
		s.unacked = true
	}
	if !s.unacked {
		r.acked = r.acked.later(pos)
	}
}

// checkUnblocked ends a blocked report once the session has stored past where it started: the
// event it was stuck on is in the stream.
func (s *stream) checkUnblocked(pos pglogrepl.LSN) {
	if pos > s.start && s.relay.blocked.Load() {
		s.relay.unblock()
		s.relay.setState(StateStreaming)
	}
}

// acquire takes n from sem, sending standby status whenever it is due while waiting.
func (s *stream) acquire(ctx context.Context, sem *semaphore.Weighted, n int64) error {
	if sem.TryAcquire(n) {
		return nil
	}
	for {
		wctx, cancel := context.WithDeadline(ctx, s.nextStatus)
		err := sem.Acquire(wctx, n)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if err := s.sendStatus(); err != nil {
			return err
		}
	}
}

// sendStatus reports the confirmed position: the end of the last transaction whose events are
// all acknowledged, or the server's WAL end seen while nothing was outstanding.
func (s *stream) sendStatus() error {
	pos, idle := s.tracker.position()
	if idle && s.dec.tx == nil && s.idleLSN > pos {
		pos = s.idleLSN
	}
	if pos < s.reported {
		pos = s.reported
	}
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), s.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pos, WALFlushPosition: pos, WALApplyPosition: pos,
	})
	s.nextStatus = time.Now().Add(s.relay.cfg.StatusInterval)
	if err != nil {
		return fmt.Errorf("send standby status: %w", err)
	}
	s.checkUnblocked(pos)
	s.reported = pos
	s.relay.confirmed.Store(uint64(pos))
	s.relay.metrics.confirmedLSN.Set(float64(pos))
	return nil
}
