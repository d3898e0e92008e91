package ticks_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/libs/simex"
	"cryptopill.dev/jobs/services/straux/internal/feed"
	"cryptopill.dev/jobs/services/straux/internal/plan"
	"cryptopill.dev/jobs/services/straux/internal/store"
	"cryptopill.dev/jobs/services/straux/internal/ticks"
)

// startFeed holds the streams of syms from the bundle's simulated exchange until the test ends,
// and waits until every book is live.
func (b *bundle) startFeed(t *testing.T, syms []string, staleAfter time.Duration, members feed.Membership) *feed.Feed {
	t.Helper()
	url, err := exchange.StreamURLFor(b.url)
	require.NoError(t, err)
	f, err := feed.New(feed.Config{URL: url, Snapshot: b.client.Depth, ResyncPerSecond: 100, StaleAfter: staleAfter,
		Universe: func(context.Context) ([]string, error) { return syms, nil }, Members: members, Now: b.exchangeClock})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	require.Eventually(t, func() bool { return len(f.Live()) == len(syms) }, 60*time.Second, 20*time.Millisecond, "books never all live")
	return f
}

func symbolsN(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%02dUSDT", prefix, i)
	}
	return out
}

// In stream mode every symbol is sampled every tick from its local book, whatever the weight
// budget would allow over REST, and the tick makes no depth call.
func TestStreamModeSamplesEverySymbolFromItsBook(t *testing.T) {
	t.Parallel()
	syms := symbolsN("S", 30)
	b := setup(t, syms, syms)
	f := b.startFeed(t, syms, 0, nil)
	// A budget that pays for 4 REST symbols a tick.
	perWindow := plan.Costs{DepthLimit: 100, Snapshots: 1}.Weight(4) * 2
	b.startReplica(t, replicaOpts{cfg: ticks.Config{WeightSharePct: 100, Streams: f,
		Budget: func() plan.Budget { return plan.Budget{PerWindow: perWindow, Window: time.Minute} }}})

	depthBefore := b.simex.Stats().Requests["/api/v3/depth"]
	b.publishTick(t, b.p, "")
	b.waitStatus(t, b.p, store.StatusDone)
	require.Equal(t, depthBefore, b.simex.Stats().Requests["/api/v3/depth"], "no depth call in the tick")
	require.Equal(t, 30, b.count(t, `SELECT count(*) FROM str_aux.samples WHERE period_start = $1 AND mid IS NOT NULL
		AND source = 'stream' AND book_age_ms >= 0 AND spread_bps > 0 AND bid_vol > 0 AND NOT ('rest_fallback' = ANY(flags))`, b.p))
	require.Equal(t, 1, b.count(t, `SELECT rotation_rounds FROM str_aux.tick_periods WHERE period_start = $1`, b.p))
	require.Zero(t, b.count(t, `SELECT planned_weight FROM str_aux.tick_periods WHERE period_start = $1`, b.p))
}

// A symbol whose stream stalls goes stale and is sampled over REST, flagged, as long as the
// tick's REST budget lasts; beyond it the sample says why there is none.
func TestStalledStreamFallsBackToRESTWithinTheBudget(t *testing.T) {
	t.Parallel()
	syms := symbolsN("F", 12)
	b := setup(t, syms, syms)
	f := b.startFeed(t, syms, time.Second, nil)
	stalled := syms[:5]
	b.simex.SetStreamFaults(simex.StreamFaults{StallSymbols: stalled})
	require.Eventually(t, func() bool { return len(f.Live()) == len(syms)-len(stalled) }, 30*time.Second, 20*time.Millisecond)

	// REST may sample 3 symbols this tick.
	perWindow := plan.Costs{DepthLimit: 100, Snapshots: 1}.Weight(3) * 2
	b.startReplica(t, replicaOpts{cfg: ticks.Config{WeightSharePct: 100, Streams: f,
		Budget: func() plan.Budget { return plan.Budget{PerWindow: perWindow, Window: time.Minute} }}})
	b.publishTick(t, b.p, "")
	b.waitStatus(t, b.p, store.StatusDone)

	require.Equal(t, 7, b.count(t, `SELECT count(*) FROM str_aux.samples WHERE period_start = $1 AND source = 'stream'
		AND symbol <> ALL($2)`, b.p, stalled))
	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM str_aux.samples WHERE period_start = $1 AND source = 'rest'
		AND book_age_ms IS NULL AND 'rest_fallback' = ANY(flags) AND mid IS NOT NULL AND symbol = ANY($2)`, b.p, stalled))
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM str_aux.samples WHERE period_start = $1 AND mid IS NULL
		AND reason = 'stream stale: REST fallback budget of this tick spent' AND symbol = ANY($2)`, b.p, stalled))

	// The stream comes back: the books resync and the next tick is all stream again.
	b.simex.SetStreamFaults(simex.StreamFaults{})
	require.Eventually(t, func() bool { return len(f.Live()) == len(syms) }, 30*time.Second, 20*time.Millisecond)
	next := b.p.Add(interval)
	b.setNow(next.Add(time.Second))
	// The clock jumped a period: wait for every book's next event (before it, a book is as old
	// as the jump, and stale as soon as the books' sweep sees it).
	require.Eventually(t, func() bool {
		for _, sym := range syms {
			if _, _, age, ok := f.Book(sym, 5); !ok || age > 100*time.Millisecond {
				return false
			}
		}
		return true
	}, 30*time.Second, 5*time.Millisecond)
	b.publishTick(t, next, "")
	b.waitStatus(t, next, store.StatusDone)
	require.Equal(t, 12, b.count(t, `SELECT count(*) FROM str_aux.samples WHERE period_start = $1 AND source = 'stream'`, next))
}

// Two replicas holding disjoint halves of the books each sample their own half: the tick is
// written once, nothing over REST.
func TestReplicasSampleTheBooksTheyHold(t *testing.T) {
	t.Parallel()
	syms := symbolsN("H", 20)
	b := setup(t, syms, syms)
	two := fixedMembers{"A", "B"}
	fa := b.startFeed(t, syms[:10], 0, two)
	fb := b.startFeed(t, syms[10:], 0, two)
	depthBefore := b.simex.Stats().Requests["/api/v3/depth"]
	// A grace longer than any replica takes to join the tick on a loaded machine.
	b.startReplica(t, replicaOpts{cfg: ticks.Config{Replica: "A", Streams: fa, ChunkSize: 3, HandoverGrace: 20 * time.Second}})
	b.startReplica(t, replicaOpts{cfg: ticks.Config{Replica: "B", Streams: fb, ChunkSize: 3, HandoverGrace: 20 * time.Second}})
	// Both replicas watch the ticks (the durable and two assist consumers) before the tick: an
	// assist consumer delivers only ticks published after it exists.
	require.Eventually(t, func() bool {
		s, err := b.bus.JS.Stream(context.Background(), events.StreamTicks)
		if err != nil {
			return false
		}
		info, err := s.Info(context.Background())
		return err == nil && info.State.Consumers >= 3
	}, 30*time.Second, 20*time.Millisecond)
	b.publishTick(t, b.p, "")
	b.waitStatus(t, b.p, store.StatusDone)
	waitAcked(t, b.bus.JS)
	_, sa := fa.Stats()
	_, sb := fb.Stats()
	require.Equal(t, depthBefore, b.simex.Stats().Requests["/api/v3/depth"], "no depth call in the tick; books %+v %+v", sa, sb)
	require.Equal(t, 10, b.count(t, `SELECT count(*) FROM str_aux.tick_claims WHERE period_start = $1 AND done_by = 'A' AND symbol = ANY($2)`, b.p, syms[:10]))
	require.Equal(t, 10, b.count(t, `SELECT count(*) FROM str_aux.tick_claims WHERE period_start = $1 AND done_by = 'B' AND symbol = ANY($2)`, b.p, syms[10:]))
	require.Equal(t, 20, b.count(t, `SELECT count(*) FROM str_aux.samples WHERE period_start = $1 AND source = 'stream'`, b.p))
}

// fixedMembers is a membership of fixed replicas that owns every symbol it is asked about (each
// test feed is given its own half of the universe).
type fixedMembers []string

func (m fixedMembers) Owned(symbols []string) []string { return symbols }
func (m fixedMembers) Changes() <-chan struct{}        { return nil }
func (m fixedMembers) Live() []string                  { return m }
