package members_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/testkit/pgtest"
	"cryptopill.dev/jobs/services/straux/internal/members"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Short enough for quick tests; the bounds asserted below are generous multiples of them, since
// the machine is shared. Real elapsed time is what is measured: the database's clock judges
// liveness, there is no clock to inject.
const (
	ttl   = 300 * time.Millisecond
	every = 100 * time.Millisecond
	// settle bounds every wait for a view to converge.
	settle = 10 * time.Second
)

type bundle struct {
	t       *testing.T
	db      *pgtest.DB
	symbols []string
}

func setup(t *testing.T) *bundle {
	t.Helper()
	return &bundle{t: t, db: pgtest.NewDB(t), symbols: universe(2000)}
}

// replica is one running Members.
type replica struct {
	*members.Members
	reg    *prometheus.Registry
	pool   *pgxpool.Pool
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned, with its error in err
	err    error
}

// stop cancels its Run and waits for it to return.
func (r *replica) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		require.NoError(t, r.err)
	case <-time.After(settle):
		t.Fatalf("%s: Run did not return after its context was cancelled", r.Replica())
	}
}

func (r *replica) errors(op string) float64 {
	return metricValue(r.reg, "cp_straux_stream_members_errors_total", op)
}

// metricValue reads a counter or gauge of reg; op is the counter's op label ("" for the gauge).
func metricValue(reg *prometheus.Registry, name, op string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if op != "" && (len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != op) {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	panic(fmt.Sprintf("%s{op=%q} is not registered", name, op))
}

// start runs a Members named name on pool (the test database's when nil).
func (b *bundle) start(name string, pool *pgxpool.Pool, tweak ...func(*members.Config)) *replica {
	b.t.Helper()
	if pool == nil {
		pool = b.db.Pool
	}
	reg := prometheus.NewRegistry()
	cfg := members.Config{Replica: name, TTL: ttl, Every: every, Registerer: reg, Logger: testLogger(b.t)}
	for _, f := range tweak {
		f(&cfg)
	}
	m, err := members.New(pool, cfg)
	require.NoError(b.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{Members: m, reg: reg, pool: pool, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = m.Run(ctx)
	}()
	b.t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// converge waits until every replica's view is want, and returns how long that took.
func (b *bundle) converge(want []string, rs ...*replica) time.Duration {
	b.t.Helper()
	want = slices.Sorted(slices.Values(want))
	start := time.Now()
	require.Eventually(b.t, func() bool {
		for _, r := range rs {
			if !slices.Equal(r.Live(), want) {
				return false
			}
		}
		return true
	}, settle, 10*time.Millisecond, "views did not converge on %v", want)
	return time.Since(start)
}

// requirePartition checks that the replicas' shares cover every symbol exactly once, and
// returns each symbol's holder.
func (b *bundle) requirePartition(rs ...*replica) map[string]string {
	b.t.Helper()
	holder := make(map[string]string, len(b.symbols))
	for _, r := range rs {
		own := r.Owned(b.symbols)
		require.NotEmpty(b.t, own, "%s holds nothing", r.Replica())
		for _, s := range own {
			require.Empty(b.t, holder[s], "%s is held by both %s and %s", s, holder[s], r.Replica())
			holder[s] = r.Replica()
		}
	}
	require.Len(b.t, holder, len(b.symbols), "some symbols are held by nobody")
	return holder
}

func (b *bundle) rowCount(name string) int {
	b.t.Helper()
	var n int
	require.NoError(b.t, b.db.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM str_aux.stream_members WHERE replica = $1`, name).Scan(&n))
	return n
}

func names(rs ...*replica) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Replica()
	}
	return out
}

// Three replicas on one database hold disjoint shares covering every symbol; one of them logs in
// as cp_straux, as deployed (its grants suffice), and the row says what an operator needs.
func TestThreeMembersPartitionTheUniverse(t *testing.T) {
	t.Parallel()
	b := setup(t)
	asStraux, err := pgxpool.New(context.Background(), b.db.RoleURL(t, "cp_straux"))
	require.NoError(t, err)
	t.Cleanup(asStraux.Close)
	a, c := b.start("straux-a", nil), b.start("straux-c", nil)
	r := b.start("straux-b", asStraux, func(c *members.Config) { c.Host = "host-b"; c.SessionID = 42 })
	b.converge([]string{"straux-a", "straux-b", "straux-c"}, a, r, c)
	holder := b.requirePartition(a, r, c)
	for s, h := range holder {
		require.Equal(t, members.Owner(s, names(a, r, c)), h)
	}

	own := r.Owned(b.symbols)
	r.SetStreams(len(own))
	require.Eventually(t, func() bool {
		var streams int
		err := b.db.Pool.QueryRow(context.Background(),
			`SELECT streams FROM str_aux.stream_members WHERE replica = 'straux-b'`).Scan(&streams)
		return err == nil && streams == len(own)
	}, settle, 10*time.Millisecond, "the stream count reaches the row")
	var (
		host             string
		pid              int
		session          *int64
		seenBeforeExpiry bool
		joinedNotAfter   bool
	)
	require.NoError(t, b.db.Pool.QueryRow(context.Background(), `
		SELECT host, pid, session_id, seen_at < expires_at, joined_at <= seen_at
		  FROM str_aux.stream_members WHERE replica = 'straux-b'`).Scan(&host, &pid, &session, &seenBeforeExpiry, &joinedNotAfter))
	require.Equal(t, "host-b", host)
	require.NotZero(t, pid)
	require.NotNil(t, session)
	require.EqualValues(t, 42, *session)
	require.True(t, seenBeforeExpiry)
	require.True(t, joinedNotAfter)
	require.Zero(t, r.errors("heartbeat"))
}

// A graceful stop deletes the row at once: the others hold everything at their next heartbeat.
func TestGracefulStopHandsOverAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a, r, c := b.start("straux-a", nil), b.start("straux-b", nil), b.start("straux-c", nil)
	b.converge([]string{"straux-a", "straux-b", "straux-c"}, a, r, c)
	before := b.requirePartition(a, r, c)

	r.stop(t)
	require.Zero(t, b.rowCount("straux-b"), "a graceful stop deletes its row")
	require.False(t, r.Member())
	require.Nil(t, r.Owned(b.symbols), "a stopped replica holds nothing")
	took := b.converge([]string{"straux-a", "straux-c"}, a, c)
	t.Logf("handed over %v after the stop (Every %v)", took, every)
	after := b.requirePartition(a, c)
	for s, h := range before {
		if h != "straux-b" {
			require.Equal(t, h, after[s], "%s moved from %s though its holder stayed", s, h)
		}
	}
	require.Zero(t, r.errors("leave"))
}

// A crashed replica (no delete) is dropped when its row expires: within TTL + Every.
func TestCrashHandsOverAfterTTL(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a, r, c := b.start("straux-a", nil), b.start("straux-b", nil), b.start("straux-c", nil)
	b.converge([]string{"straux-a", "straux-b", "straux-c"}, a, r, c)

	r.SkipLeave()
	r.stop(t)
	require.Equal(t, 1, b.rowCount("straux-b"), "a crash leaves its row behind")
	took := b.converge([]string{"straux-a", "straux-c"}, a, c)
	t.Logf("handed over %v after the crash (TTL %v + Every %v)", took, ttl, every)
	b.requirePartition(a, c)
}

// A joining replica takes about a quarter of the symbols from three, and only those move.
func TestJoinMovesAboutOneNth(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a, r, c := b.start("straux-a", nil), b.start("straux-b", nil), b.start("straux-c", nil)
	b.converge([]string{"straux-a", "straux-b", "straux-c"}, a, r, c)
	before := b.requirePartition(a, r, c)
	// Drain the signals of the joins so far.
	for _, x := range []*replica{a, r, c} {
		select {
		case <-x.Changes():
		default:
		}
	}

	d := b.start("straux-d", nil)
	b.converge([]string{"straux-a", "straux-b", "straux-c", "straux-d"}, a, r, c, d)
	for _, x := range []*replica{a, r, c} {
		select {
		case <-x.Changes():
		default:
			t.Fatalf("%s was not signalled of the join", x.Replica())
		}
	}
	after := b.requirePartition(a, r, c, d)
	moved := 0
	for s, h := range before {
		if after[s] != h {
			moved++
			require.Equal(t, "straux-d", after[s], "%s moved from %s to %s, not to the newcomer", s, h, after[s])
		}
	}
	require.InDelta(t, len(b.symbols)/4, moved, float64(len(b.symbols))/4*0.3, "moved %d of %d", moved, len(b.symbols))
}

// A replica whose heartbeats fail (its pool closed) holds nothing once TTL has passed since its
// last successful heartbeat; the failures are counted; the others take its symbols.
func TestFailingHeartbeatsEndMembership(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pool, err := pgxpool.New(context.Background(), b.db.URL)
	require.NoError(t, err)
	a := b.start("straux-a", nil)
	r := b.start("straux-b", pool)
	b.converge([]string{"straux-a", "straux-b"}, a, r)
	select { // the join
	case <-r.Changes():
	default:
	}

	pool.Close()
	start := time.Now()
	require.Eventually(t, func() bool { return !r.Member() }, settle, 5*time.Millisecond)
	t.Logf("membership ended %v after the pool closed (TTL %v)", time.Since(start), ttl)
	require.Nil(t, r.Owned(b.symbols))
	require.Nil(t, r.Live())
	select {
	case <-r.Changes():
	case <-time.After(settle):
		t.Fatal("the end of membership was not signalled")
	}
	require.Positive(t, r.errors("heartbeat"))
	require.Zero(t, metricValue(r.reg, "cp_straux_stream_members", ""), "the members gauge drops to 0")
	b.converge([]string{"straux-a"}, a)
	require.Len(t, a.Owned(b.symbols), len(b.symbols))
}

// Two processes heartbeating one replica name would hold the same streams: it is counted and
// logged.
func TestDuplicateReplicaNameIsCounted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	x := b.start("straux-a", nil, func(c *members.Config) { c.Host = "host-1" })
	y := b.start("straux-a", nil, func(c *members.Config) { c.Host = "host-2" })
	require.Eventually(t, func() bool {
		return x.errors("duplicate_replica") > 0 || y.errors("duplicate_replica") > 0
	}, settle, 10*time.Millisecond)
}

// Rows expired longer ago than PruneAfter go with a live member's heartbeat; recent ones stay.
func TestOldRowsArePruned(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.db.Pool.Exec(context.Background(), `
		INSERT INTO str_aux.stream_members (replica, joined_at, seen_at, expires_at)
		VALUES ('gone-long-ago', now() - interval '2 hours', now() - interval '2 hours', now() - interval '2 hours' + interval '3 seconds'),
		       ('gone-recently', now() - interval '1 minute', now() - interval '1 minute', now() - interval '1 minute' + interval '3 seconds')`)
	require.NoError(t, err)
	a := b.start("straux-a", nil)
	b.converge([]string{"straux-a"}, a)
	require.Zero(t, b.rowCount("gone-long-ago"))
	require.Equal(t, 1, b.rowCount("gone-recently"))
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for name, tc := range map[string]struct {
		cfg  members.Config
		want string
	}{
		"no replica":      {members.Config{}, "Replica is empty"},
		"negative ttl":    {members.Config{Replica: "a", TTL: -time.Second}, "TTL -1s is negative"},
		"every too long":  {members.Config{Replica: "a", TTL: time.Second, Every: time.Second}, "Every 1s is not shorter than TTL 1s"},
		"default ttl":     {members.Config{Replica: "a", Every: 5 * time.Second}, "Every 5s is not shorter than TTL 3s"},
		"sub-microsecond": {members.Config{Replica: "a", TTL: time.Second + 1}, "whole microseconds"},
	} {
		_, err := members.New(b.db.Pool, tc.cfg)
		require.ErrorIs(t, err, members.ErrInvalidConfig, name)
		require.ErrorContains(t, err, tc.want, name)
	}
	_, err := members.New(nil, members.Config{Replica: "a"})
	require.ErrorIs(t, err, members.ErrInvalidConfig)
	m, err := members.New(b.db.Pool, members.Config{Replica: "a"})
	require.NoError(t, err)
	require.False(t, m.Member(), "no member before Run")
	require.Nil(t, m.Owned([]string{"BTCUSDT"}))
}

// Run may not run twice at once.
func TestRunTwiceIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.start("straux-a", nil)
	b.converge([]string{"straux-a"}, r)
	require.ErrorIs(t, r.Run(context.Background()), members.ErrAlreadyRunning)
}

// testLogger writes to the test's output, shown for a failing or -v test.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// A replica cut off for longer than the TTL (here: its rights revoked) holds nothing, and when
// its heartbeats succeed again it is a member again, with a fresh joined_at, and holds its share.
func TestRejoinAfterLapse(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	asStraux, err := pgxpool.New(ctx, b.db.RoleURL(t, "cp_straux"))
	require.NoError(t, err)
	t.Cleanup(asStraux.Close)
	a := b.start("straux-a", nil)
	r := b.start("straux-b", asStraux)
	b.converge([]string{"straux-a", "straux-b"}, a, r)
	var joined time.Time
	require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT joined_at FROM str_aux.stream_members WHERE replica = 'straux-b'`).Scan(&joined))

	_, err = b.db.Pool.Exec(ctx, `REVOKE ALL ON str_aux.stream_members FROM cp_straux`)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return !r.Member() }, settle, 5*time.Millisecond)
	b.converge([]string{"straux-a"}, a)
	require.Positive(t, r.errors("heartbeat"))

	_, err = b.db.Pool.Exec(ctx, `GRANT SELECT, INSERT, UPDATE, DELETE ON str_aux.stream_members TO cp_straux`)
	require.NoError(t, err)
	b.converge([]string{"straux-a", "straux-b"}, a, r)
	b.requirePartition(a, r)
	var rejoined time.Time
	require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT joined_at FROM str_aux.stream_members WHERE replica = 'straux-b'`).Scan(&rejoined))
	require.True(t, rejoined.After(joined), "joined_at %v is not later than the first join %v", rejoined, joined)
}
