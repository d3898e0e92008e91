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
	db := pgtest.NewDB(t)
	syms := make([]string, 60)
	for i := range syms {
		syms[i] = fmt.Sprintf("M%02dUSDT", i)
	}
	now := clocktest.Running(clocktest.Afternoon)
	ex, err := simex.New(simex.Config{Symbols: syms, Seed: 3, Now: now})
	require.NoError(t, err)
	srv := httptest.NewServer(ex)
	t.Cleanup(srv.Close)
	client, err := exchange.New(exchange.Config{BaseURL: srv.URL, Now: now})
	require.NoError(t, err)
	url, err := exchange.StreamURLFor(srv.URL)
	require.NoError(t, err)

	start := func(name string) *replica {
		pool, err := pgxpool.New(context.Background(), db.URL)
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		// Linger 0: a moved symbol is dropped at once, so "held once" is exact.
		mem, err := members.New(pool, members.Config{Replica: name, TTL: 600 * time.Millisecond, Every: 200 * time.Millisecond})
		require.NoError(t, err)
		f, err := feed.New(feed.Config{URL: url, Snapshot: client.Depth, ResyncPerSecond: 200, Members: mem,
			Universe: func(context.Context) ([]string, error) { return syms, nil }, Refresh: 100 * time.Millisecond,
			Linger: time.Nanosecond, Now: now})
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
	// held counts, per symbol, the replicas holding its book live.
	heldOnce := func(rs ...*replica) bool {
		n := map[string]int{}
		for _, r := range rs {
			for _, s := range r.feed.Live() {
				n[s]++
			}
			if o, l := r.feed.Held(); l != 0 || o == 0 {
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
