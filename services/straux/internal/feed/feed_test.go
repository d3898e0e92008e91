package feed_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/libs/simex"
	"cryptopill.dev/jobs/libs/testkit/clocktest"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
	"cryptopill.dev/jobs/services/straux/internal/feed"
	"cryptopill.dev/jobs/services/straux/internal/members"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type replica struct {
	name  string
	feed  *feed.Feed
	stop  context.CancelFunc // graceful: the membership row is deleted
	crash func()             // the membership stops without deleting its row
	done  chan struct{}
}

// Replicas share the universe's books: every symbol is held live by exactly one replica (the
// moved ones linger elsewhere only for Linger), and when one leaves or dies the others take its
// symbols within seconds.
func TestReplicasHoldEverySymbolOnceAndTakeOver(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 60)
	syms := e.syms
	start := func(name string) *replica { return e.start(t, name, -1) }
	// held counts, per symbol, the replicas holding its book live.
	heldOnce := func(rs ...*replica) bool {
		n := map[string]int{}
		for _, r := range rs {
			for _, s := range r.feed.Live() {
				n[s]++
			}
			if o, l := r.feed.HeldCounts(); l != 0 || o == 0 {
				return false
			}
		}
		for _, s := range syms {
			if n[s] != 1 {
				return false
			}
		}
		return len(n) == len(syms)
	}
	a, b, c := start("A"), start("B"), start("C")
	require.Eventually(t, func() bool { return heldOnce(a, b, c) }, 30*time.Second, 20*time.Millisecond, "three replicas share the books")

	b.stop()
	<-b.done
	took := time.Now()
	require.Eventually(t, func() bool { return heldOnce(a, c) }, 30*time.Second, 20*time.Millisecond, "B left: A and C hold everything")
	t.Logf("after a graceful leave, covered again in %s", time.Since(took).Round(time.Millisecond))

	c.crash()
	<-c.done
	took = time.Now()
	require.Eventually(t, func() bool { return heldOnce(a) }, 30*time.Second, 20*time.Millisecond, "C died: A holds everything")
	t.Logf("after a crash, covered again in %s", time.Since(took).Round(time.Millisecond))
}

// env is a database, a simulated exchange of syms and a client of it.
type env struct {
	dbURL, url string
	client     *exchange.Client
	syms       []string
	now        func() time.Time
}

func newEnv(t *testing.T, n int) *env {
	t.Helper()
	e := &env{dbURL: pgtest.NewDB(t).URL, now: clocktest.Running(clocktest.Afternoon)}
	for i := range n {
		e.syms = append(e.syms, fmt.Sprintf("M%02dUSDT", i))
	}
	ex, err := simex.New(simex.Config{Symbols: e.syms, Seed: 3, Now: e.now})
	require.NoError(t, err)
	srv := httptest.NewServer(ex)
	t.Cleanup(srv.Close)
	e.client, err = exchange.New(exchange.Config{BaseURL: srv.URL, Now: e.now})
	require.NoError(t, err)
	e.url, err = exchange.StreamURLFor(srv.URL)
	require.NoError(t, err)
	return e
}

// start runs one replica's membership and feed until the test ends.
func (e *env) start(t *testing.T, name string, linger time.Duration) *replica {
	t.Helper()
	dbURL, url, client, syms, now := e.dbURL, e.url, e.client, e.syms, e.now
	pool, err := pgxpool.New(context.Background(), dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	mem, err := members.New(pool, members.Config{Replica: name, TTL: 2 * time.Second, Every: 300 * time.Millisecond})
	require.NoError(t, err)
	f, err := feed.New(feed.Config{URL: url, Snapshot: client.Depth, ResyncPerSecond: 200, Members: mem,
		Universe: func(context.Context) ([]string, error) { return syms, nil }, Refresh: 100 * time.Millisecond,
		Linger: linger, Now: now})
	require.NoError(t, err)
	r := &replica{name: name, feed: f, done: make(chan struct{})}
	fctx, stopFeed := context.WithCancel(context.Background())
	mctx, stopMem := context.WithCancel(context.Background())
	r.stop = func() { stopMem(); stopFeed() }
	// A crash: the database connection is gone, so the row is not deleted and expires.
	r.crash = func() { pool.Close(); stopMem(); stopFeed() }
	go func() { _ = mem.Run(mctx) }()
	go func() { defer close(r.done); _ = f.Run(fctx) }()
	t.Cleanup(func() { r.stop(); <-r.done })
	return r
}

// Make before break: the symbols a joining replica takes stay held by their old holder for
// Linger (a fixed time meant to cover the new holder's resync), and then are dropped.
func TestMovedSymbolsLingerWithTheirOldHolder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 40)
	const linger = 3 * time.Second
	a := e.start(t, "A", linger)
	require.Eventually(t, func() bool { return len(a.feed.Live()) == len(e.syms) }, 30*time.Second, 20*time.Millisecond)
	b := e.start(t, "B", linger)
	var moved int
	require.Eventually(t, func() bool {
		o, l := a.feed.HeldCounts()
		moved = l
		return l > 0 && o+l == len(e.syms)
	}, 30*time.Second, 10*time.Millisecond, "A keeps the moved symbols while lingering")
	require.Len(t, a.feed.Live(), len(e.syms), "A still samples every symbol from a book")
	require.Eventually(t, func() bool { bo, _ := b.feed.HeldCounts(); return bo == moved && len(b.feed.Live()) == moved },
		30*time.Second, 10*time.Millisecond, "B holds the moved symbols live")
	require.Eventually(t, func() bool { _, l := a.feed.HeldCounts(); return l == 0 && len(a.feed.Live()) == len(e.syms)-moved },
		30*time.Second, 20*time.Millisecond, "A drops them after the linger")
}
