package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Publisher is what the relay needs from the event bus: an asynchronous publish whose outcome
// is reported exactly once.
type Publisher interface {
	// PublishAsync publishes c's payload on c.Subject in the events envelope with c.ID as ce-id
	// and Nats-Msg-Id. It may block while the publisher's own in-flight bound is reached. done is
	// called exactly once, from any goroutine, with nil after the PubAck or with the error; when
	// PublishAsync itself returns an error, done is not called.
	PublishAsync(ctx context.Context, c *Change, done func(error)) error
}

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
	// MaxInFlight bounds the events published and not yet acknowledged; it also bounds memory
	// for transactions of any size. Default 8192.
	MaxInFlight int
	// StatusInterval is how often standby status goes to Postgres, carrying the confirmed
	// position; keep it well inside the server's wal_sender_timeout (60 s by default). Default 2 s.
	StatusInterval time.Duration
	// StandbyRetry is how often a relay whose slot is held by another one tries again. Default 1 s.
	StandbyRetry time.Duration
	// MaxBackoff caps the wait between attempts after a failed session. Default 10 s.
	MaxBackoff time.Duration
	// DrainTimeout is how long a stopping relay waits for outstanding PubAcks before it reports
	// its final position. Default 5 s.
	DrainTimeout time.Duration
	// LagInterval is how often slot lag is sampled for cp_relay_slot_lag_bytes. Default 10 s.
	LagInterval time.Duration
	// OnCommit, when set, is called after each relayed transaction's Commit with the tables it
	// changed, on the relay's goroutine: it must not block.
	OnCommit func(Commit)
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
	if c.StatusInterval <= 0 {
		c.StatusInterval = 2 * time.Second
	}
	if c.StandbyRetry <= 0 {
		c.StandbyRetry = time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 10 * time.Second
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

// Run relays until ctx is cancelled. It reconnects after failures of Postgres or the publisher,
// waits while another relay holds the slot, and returns nil after a clean stop.
func (r *ChangeRelay) Run(ctx context.Context) error {
	go r.sampleLag(ctx)
	backoff := 250 * time.Millisecond
	standbyLogged := false
	for {
		started := time.Now()
		err := r.session(ctx)
		if ctx.Err() != nil {
			r.setState(StateStopped)
			r.metrics.sessions.WithLabelValues("stopped").Inc()
			return nil
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
		default:
			reason := "postgres"
			if errors.Is(err, errPublish) {
				reason = "publish"
			}
			r.metrics.sessions.WithLabelValues(reason).Inc()
			r.setState(StateBackoff)
			standbyLogged = false
			if time.Since(started) > time.Minute {
				backoff = 250 * time.Millisecond
			}
			wait = backoff
			backoff = min(backoff*2, r.cfg.MaxBackoff)
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
		return fmt.Errorf("start replication on slot %s: %w", r.cfg.Slot, err)
	}
	r.setState(StateStreaming)
	r.log.Info("streaming changes", "from_lsn", start.String(), "publication", r.cfg.Publication)
	s := &stream{relay: r, conn: conn, dec: newDecoder(), sem: make(chan struct{}, r.cfg.MaxInFlight), reported: start}
	r.confirmed.Store(uint64(start))
	return s.run(ctx, start)
}

// prepare creates the publication and then the slot when absent (in that order: a slot must not
// decode WAL from before its publication existed) and returns the slot's confirmed position.
func (r *ChangeRelay) prepare(ctx context.Context) (pglogrepl.LSN, error) {
	if err := r.ensurePublication(ctx); err != nil {
		return 0, err
	}
	var (
		confirmed *string
		sameDB    bool
		plugin    *string
	)
	const q = `SELECT confirmed_flush_lsn::text, database IS NOT DISTINCT FROM current_database(), plugin FROM pg_replication_slots WHERE slot_name = $1`
	err := r.cfg.Pool.QueryRow(ctx, q, r.cfg.Slot).Scan(&confirmed, &sameDB, &plugin)
	if err == nil && (!sameDB || plugin == nil || *plugin != "pgoutput") {
		// Slot names are cluster-wide: refuse to stream another database's (or a physical) slot.
		return 0, fmt.Errorf("replication slot %s exists but is not a pgoutput slot of this database; choose another CDC_SLOT", r.cfg.Slot)
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
		r.log.Info("created replication slot")
		err = r.cfg.Pool.QueryRow(ctx, q, r.cfg.Slot).Scan(&confirmed, &sameDB, &plugin)
	}
	if err != nil {
		return 0, fmt.Errorf("read replication slot %s: %w", r.cfg.Slot, err)
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
			return fmt.Errorf("create publication %s: %w", r.cfg.Publication, err)
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
	if _, err := r.cfg.Pool.Exec(ctx, "ALTER PUBLICATION "+pub+" SET TABLE "+strings.Join(quoted, ", ")); err != nil {
		return fmt.Errorf("set publication %s tables: %w", r.cfg.Publication, err)
	}
	r.log.Info("updated publication tables", "publication", r.cfg.Publication, "was", have, "now", want)
	return nil
}

// sampleLag exports how far the slot's confirmed position trails the server's WAL.
func (r *ChangeRelay) sampleLag(ctx context.Context) {
	t := time.NewTicker(r.cfg.LagInterval)
	defer t.Stop()
	for {
		var lag *int64
		err := r.cfg.Pool.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1`, r.cfg.Slot).Scan(&lag)
		if err == nil && lag != nil {
			r.metrics.slotLag.Set(float64(*lag))
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
	sem     chan struct{}

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
	deadline := time.Now().Add(s.relay.cfg.DrainTimeout)
	for time.Now().Before(deadline) {
		if _, idle := s.tracker.position(); idle || s.tracker.failed() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return s.sendStatus()
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

// publish hands one event to the publisher, waiting for an in-flight slot while still sending
// standby status on time.
func (s *stream) publish(ctx context.Context, c *Change) error {
	select {
	case s.sem <- struct{}{}:
	default:
		for acquired := false; !acquired; {
			wait := time.Until(s.nextStatus)
			timer := time.NewTimer(max(wait, 0))
			select {
			case s.sem <- struct{}{}:
				acquired = true
			case <-timer.C:
				if err := s.sendStatus(); err != nil {
					timer.Stop()
					return err
				}
			case <-ctx.Done():
				timer.Stop()
				return context.Cause(ctx)
			}
			timer.Stop()
		}
	}
	// A session cancelled meanwhile (its NATS connection dropped) must not publish on a new
	// connection ahead of the events that will be replayed.
	if err := context.Cause(ctx); err != nil {
		<-s.sem
		return err
	}
	m := s.relay.metrics
	tx, tracker, sem := s.tx, s.tracker, s.sem
	commitTime := c.CommitTime
	tracker.sent(tx)
	m.inflight.Inc()
	err := s.relay.cfg.Publisher.PublishAsync(ctx, c, func(err error) {
		m.inflight.Dec()
		if err != nil {
			m.failed.Inc()
		} else {
			m.acked.Inc()
			m.latency.Observe(time.Since(commitTime).Seconds())
		}
		tracker.acked(tx, err)
		<-sem
	})
	if err != nil {
		m.inflight.Dec()
		m.failed.Inc()
		tracker.acked(tx, err)
		<-sem
		return fmt.Errorf("%w: %s: %w", errPublish, c.ID, err)
	}
	m.published.Inc()
	return nil
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
	s.reported = pos
	s.relay.confirmed.Store(uint64(pos))
	s.relay.metrics.confirmedLSN.Set(float64(pos))
	return nil
}
