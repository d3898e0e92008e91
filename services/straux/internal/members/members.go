package members

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

//go:embed sql/*.sql
var sqlFiles embed.FS

func mustSQL(name string) string {
	b, err := sqlFiles.ReadFile("sql/" + name + ".sql")
	if err != nil {
		panic(fmt.Sprintf("members: embedded sql/%s.sql: %v", name, err)) // a build bug
	}
	return string(b)
}

var (
	sqlHeartbeat = mustSQL("heartbeat")
	sqlLeave     = mustSQL("leave")
)

// Defaults of Config.
const (
	DefaultTTL        = 3 * time.Second
	DefaultEvery      = time.Second
	DefaultPruneAfter = time.Hour
	// leaveTimeout bounds the delete of a graceful stop, which runs after ctx is cancelled.
	leaveTimeout = 2 * time.Second
)

// ErrInvalidConfig is wrapped by New's errors for a Config it cannot run with.
var ErrInvalidConfig = errors.New("members: invalid config")

// ErrAlreadyRunning is returned by Run while another Run of the same Members is active.
var ErrAlreadyRunning = errors.New("members: already running")

// Config configures a Members. The zero value of every field but Replica is a sensible default.
type Config struct {
	// Replica is this replica's name (STRAUX_REPLICA), unique among the replicas sharing the
	// database. Required.
	Replica string
	// TTL is how long a heartbeat keeps the replica a member, in database time; the others take
	// its streams over once it passes. Default DefaultTTL (3s). Must be longer than Every.
	TTL time.Duration
	// Every is the heartbeat interval, and so how soon a change of the live set is seen.
	// Default DefaultEvery (1s).
	Every time.Duration
	// PruneAfter: rows expired longer ago than this are deleted by the live members (a replica
	// that never comes back). Default DefaultPruneAfter (1h).
	PruneAfter time.Duration
	// Host is stored in the row for operators. Default os.Hostname().
	Host string
	// SessionID is the process's ops.session_log id, stored in the row; 0: none (NULL).
	SessionID int64
	// Logger. Default slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics. nil: not registered.
	Registerer prometheus.Registerer
}

func (c Config) withDefaults() (Config, error) {
	if c.Replica == "" {
		return c, fmt.Errorf("%w: Replica is empty", ErrInvalidConfig)
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.Every == 0 {
		c.Every = DefaultEvery
	}
	if c.PruneAfter == 0 {
		c.PruneAfter = DefaultPruneAfter
	}
	switch {
	case c.TTL < 0:
		return c, fmt.Errorf("%w: TTL %v is negative", ErrInvalidConfig, c.TTL)
	case c.Every < 0:
		return c, fmt.Errorf("%w: Every %v is negative", ErrInvalidConfig, c.Every)
	case c.PruneAfter < 0:
		return c, fmt.Errorf("%w: PruneAfter %v is negative", ErrInvalidConfig, c.PruneAfter)
	case c.Every >= c.TTL:
		return c, fmt.Errorf("%w: Every %v is not shorter than TTL %v: the row would expire between heartbeats", ErrInvalidConfig, c.Every, c.TTL)
	case c.TTL%time.Microsecond != 0 || c.PruneAfter%time.Microsecond != 0:
		return c, fmt.Errorf("%w: TTL %v and PruneAfter %v must be whole microseconds (Postgres' resolution)", ErrInvalidConfig, c.TTL, c.PruneAfter)
	}
	if c.Host == "" {
		h, err := os.Hostname()
		if err != nil {
			h = "unknown"
		}
		c.Host = h
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// Members is one replica's membership of the stream sharing: its heartbeat, its view of the live
// set, and the symbols that view gives it.
type Members struct {
	pool *pgxpool.Pool
	cfg  Config
	pid  int
	log  *slog.Logger
	m    *metrics

	streams   atomic.Int64
	running   atomic.Bool
	skipLeave atomic.Bool // tests: stop as a crash would, leaving the row to expire
	changes   chan struct{}

	mu sync.Mutex
	// live is the live set read by the last successful heartbeat, sorted, self included; it
	// counts only until validUntil (the heartbeat's send time + TTL, on this host's monotonic
	// clock), after which the replica is no member and owns nothing.
	live       []string
	validUntil time.Time
	beats      int  // successful heartbeats of this Members
	duplicate  bool // the last heartbeat found the row written by another process
}

// New returns the membership of cfg.Replica on pool; Run makes it a member.
func New(pool *pgxpool.Pool, cfg Config) (*Members, error) {
	if pool == nil {
		return nil, fmt.Errorf("%w: pool is nil", ErrInvalidConfig)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Members{
		pool:    pool,
		cfg:     cfg,
		pid:     os.Getpid(),
		log:     cfg.Logger.With("component", "members", "replica", cfg.Replica),
		m:       newMetrics(cfg.Registerer),
		changes: make(chan struct{}, 1),
	}, nil
}

// Replica is this replica's name.
func (m *Members) Replica() string { return m.cfg.Replica }

// Changes is signalled (coalesced: one pending signal at most) whenever this replica's view of
// the live set changes: a member joined or left, this replica became a member, or it stopped
// being one (no successful heartbeat for TTL, or Run returned). The receiver re-reads Owned.
func (m *Members) Changes() <-chan struct{} { return m.changes }

// Live is the live set as this replica sees it, sorted, itself included; nil while it is not a
// member (before its first heartbeat, after TTL without a successful one, after Run returned).
func (m *Members) Live() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.currentLocked(time.Now()))
}

// Member reports whether this replica is a member now: its last successful heartbeat is less
// than TTL old.
func (m *Members) Member() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.currentLocked(time.Now()) != nil
}

// Owned returns the symbols of symbols this replica holds under its current view, in their
// order: those Owner assigns to it among Live(). Nil while it is not a member.
func (m *Members) Owned(symbols []string) []string {
	return owned(m.cfg.Replica, symbols, m.Live())
}

// SetStreams records how many streams the replica holds; the next heartbeat stores it in its row
// (cpctl status). A negative n is stored as 0 and logged.
func (m *Members) SetStreams(n int) {
	if n < 0 {
		m.log.Error("stream count is negative; storing 0", "streams", n)
		n = 0
	}
	m.streams.Store(int64(n))
}

func (m *Members) currentLocked(now time.Time) []string {
	if m.live == nil || !now.Before(m.validUntil) {
		return nil
	}
	return m.live
}

func (m *Members) signal() {
	select {
	case m.changes <- struct{}{}:
	default:
	}
}

// Run heartbeats every Every until ctx is cancelled, then deletes the replica's row (with a short
// context of its own) so the others take its streams over at once. A failed heartbeat is logged,
// counted and retried at the next tick; after TTL without a successful one the replica is no
// member. Run returns nil when ctx is cancelled.
func (m *Members) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer m.running.Store(false)
	tick := time.NewTicker(m.cfg.Every)
	defer tick.Stop()
	// lapse fires when the last successful heartbeat is TTL old, on its own goroutine, so
	// Changes is signalled then even while a heartbeat hangs in the loop.
	lapse := time.AfterFunc(m.cfg.TTL, m.lapsed)
	defer lapse.Stop()
	for {
		if until, ok := m.beat(ctx); ok {
			lapse.Reset(time.Until(until))
		}
		select {
		case <-ctx.Done():
			lapse.Stop()
			m.stop()
			return nil
		case <-tick.C:
		}
	}
}

// beat runs one heartbeat; on success it returns until when the view it read counts.
func (m *Members) beat(ctx context.Context) (time.Time, bool) {
	sent := time.Now()
	bctx, cancel := context.WithTimeout(ctx, m.cfg.TTL)
	defer cancel()
	var (
		live     []string
		prevHost *string
		prevPID  *int32
		prevLive bool
		session  *int64
	)
	if m.cfg.SessionID != 0 {
		session = &m.cfg.SessionID
	}
	err := m.pool.QueryRow(bctx, sqlHeartbeat, m.cfg.Replica, m.cfg.TTL.Microseconds(), m.cfg.Host, m.pid, session,
		m.streams.Load(), m.cfg.PruneAfter.Microseconds()).Scan(&live, &prevHost, &prevPID, &prevLive)
	if err != nil {
		if ctx.Err() != nil {
			return time.Time{}, false // stopping: not a failure
		}
		m.m.errors.WithLabelValues("heartbeat").Inc()
		m.mu.Lock()
		left := time.Until(m.validUntil)
		m.mu.Unlock()
		if left > 0 {
			m.log.Warn("stream membership heartbeat failed; retrying", "err", err, "member_for", left.Round(time.Millisecond))
		} else {
			m.log.Error("stream membership heartbeat failed; not a member, holding no streams", "err", err)
		}
		return time.Time{}, false
	}
	until := sent.Add(m.cfg.TTL)

	m.mu.Lock()
	before := m.currentLocked(sent)
	// After this Members' first heartbeat the row is its own: a live row with another host or
	// pid means a second process heartbeats the same replica name, and both hold the same
	// streams.
	dup := m.beats > 0 && prevLive && prevHost != nil && prevPID != nil && (*prevHost != m.cfg.Host || int(*prevPID) != m.pid)
	wasDup := m.duplicate
	m.live, m.validUntil, m.duplicate = live, until, dup
	m.beats++
	m.m.live.Set(float64(len(live))) // under mu: a concurrent lapse may not overwrite it with a stale 0
	m.mu.Unlock()

	if dup {
		m.m.errors.WithLabelValues("duplicate_replica").Inc()
		if !wasDup {
			m.log.Error("another process heartbeats this replica name: both hold the same streams; give every replica its own STRAUX_REPLICA",
				"other_host", *prevHost, "other_pid", *prevPID, "host", m.cfg.Host, "pid", m.pid)
		}
	}
	if !slices.Equal(before, live) {
		joined, left := diff(before, live)
		if before == nil {
			m.log.Info("stream member", "live", live)
		} else {
			m.log.Info("stream members changed", "live", live, "joined", joined, "left", left)
		}
		m.signal()
	}
	return until, true
}

// lapsed ends the view when its last heartbeat is TTL old.
func (m *Members) lapsed() {
	m.mu.Lock()
	expired := m.live != nil && !time.Now().Before(m.validUntil)
	if expired {
		m.live = nil
		m.m.live.Set(0)
	}
	m.mu.Unlock()
	if expired {
		m.log.Error("no successful stream membership heartbeat for the TTL: not a member, holding no streams; the others take them over",
			"ttl", m.cfg.TTL)
		m.signal()
	}
}

// stop leaves: the row is deleted with a fresh short context (ctx is already cancelled), and the
// view ends.
func (m *Members) stop() {
	m.mu.Lock()
	had := m.live != nil
	m.live = nil
	m.m.live.Set(0)
	m.mu.Unlock()
	if had {
		m.signal()
	}
	if m.skipLeave.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	if _, err := m.pool.Exec(ctx, sqlLeave, m.cfg.Replica, m.cfg.Host, m.pid); err != nil {
		m.m.errors.WithLabelValues("leave").Inc()
		m.log.Error("stream membership: delete own row at stop failed; the others take its streams over when it expires",
			"err", err, "ttl", m.cfg.TTL)
		return
	}
	m.log.Info("left the stream members")
}

// diff returns what is in b but not a (joined) and in a but not b (left); both sorted.
func diff(a, b []string) (joined, left []string) {
	for _, x := range b {
		if _, ok := slices.BinarySearch(a, x); !ok {
			joined = append(joined, x)
		}
	}
	for _, x := range a {
		if _, ok := slices.BinarySearch(b, x); !ok {
			left = append(left, x)
		}
	}
	return joined, left
}

// metrics are the membership's Prometheus series.
type metrics struct {
	live   prometheus.Gauge
	errors *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		live: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cp_straux_stream_members",
			Help: "Live stream members (straux replicas sharing the websocket streams) this replica sees, itself included; 0 while it is not a member."}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cp_straux_stream_members_errors_total",
			Help: "Stream membership failures, by op: heartbeat (retried; TTL without one ends the membership), leave (the row expires instead), duplicate_replica (another process heartbeats this replica name)."},
			[]string{"op"}),
	}
	for _, op := range []string{"heartbeat", "leave", "duplicate_replica"} {
		m.errors.WithLabelValues(op)
	}
	if reg != nil {
		reg.MustRegister(m.live, m.errors)
	}
	return m
}
