package exchange

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/testkit/clocktest"
)

type booksBundle struct {
	books *Books
	now   time.Time
}

// setupBooks is Books over one symbol, S1USDT, whose snapshots the test applies itself.
func setupBooks(t testing.TB) booksBundle {
	t.Helper()
	clock := clocktest.NewClock(clocktest.Afternoon)
	b, err := NewBooks(BooksConfig{Now: clock.Now, Snapshot: func(context.Context, string, int) (*OrderBook, error) {
		return nil, context.Canceled
	}})
	require.NoError(t, err)
	b.SetSymbols([]string{"S1USDT"})
	return booksBundle{books: b, now: clock.Now()}
}

func level(price, qty string) PriceLevel {
	return PriceLevel{Price: decimal.RequireFromString(price), Qty: decimal.RequireFromString(qty)}
}

func requireSide(t *testing.T, want []PriceLevel, got []PriceLevel, side string) {
	t.Helper()
	require.Len(t, got, len(want), side)
	for i := range want {
		require.True(t, want[i].Price.Equal(got[i].Price) && want[i].Qty.Equal(got[i].Qty),
			"%s %d: want %v got %v", side, i, want[i], got[i])
		require.Equal(t, want[i].Price.String(), got[i].Price.String(), "%s %d price", side, i)
		require.Equal(t, want[i].Qty.String(), got[i].Qty.String(), "%s %d qty", side, i)
	}
}

// The feed reuses its read buffer: an event buffered while the book waits for its snapshot must
// not read what the next message wrote over it.
func TestBooksKeepBufferedEventsPastTheirMessage(t *testing.T) {
	t.Parallel()
	bb := setupBooks(t)
	msg := []byte(`{"e":"depthUpdate","E":1,"s":"S1USDT","U":11,"u":12,"b":[["10.50000000","2.00000000"]],"a":[["11.25000000","3.00000000"]]}`)
	buf := bytes.Clone(msg)
	bb.books.StreamMessage("s1usdt@depth@100ms", buf, bb.now)
	// The next message lands in the same buffer.
	copy(buf, bytes.Repeat([]byte("9"), len(buf)))
	bb.books.applySnapshot("S1USDT", &OrderBook{LastUpdateID: 10,
		Bids: []PriceLevel{level("10.4", "1")}, Asks: []PriceLevel{level("11.3", "1")}})
	ob, state, _, ok := bb.books.Book("S1USDT", 10)
	require.True(t, ok, state)
	require.Equal(t, int64(12), ob.LastUpdateID)
	requireSide(t, []PriceLevel{level("10.50000000", "2.00000000"), level("10.4", "1")}, ob.Bids, "bids")
	requireSide(t, []PriceLevel{level("11.25000000", "3.00000000"), level("11.3", "1")}, ob.Asks, "asks")
}

// A price or quantity longer than a level holds inline reads back exactly, and leaves nothing
// behind once its level goes.
func TestBooksKeepLongTexts(t *testing.T) {
	t.Parallel()
	bb := setupBooks(t)
	longPx := "10.5000000000000000000000000001" // 31 characters
	longQty := "2.000000000000000000000000000007"
	bb.books.applySnapshot("S1USDT", &OrderBook{LastUpdateID: 10,
		Bids: []PriceLevel{level("10.4", "1")}, Asks: []PriceLevel{level("11.3", "1")}})
	bb.books.StreamMessage("s1usdt@depth@100ms",
		[]byte(`{"e":"depthUpdate","E":1,"s":"S1USDT","U":11,"u":11,"b":[["`+longPx+`","`+longQty+`"]],"a":[]}`), bb.now)
	ob, _, _, ok := bb.books.Book("S1USDT", 10)
	require.True(t, ok)
	requireSide(t, []PriceLevel{level(longPx, longQty), level("10.4", "1")}, ob.Bids, "bids")

	// A short quantity replaces the long one.
	bb.books.StreamMessage("s1usdt@depth@100ms",
		[]byte(`{"e":"depthUpdate","E":2,"s":"S1USDT","U":12,"u":12,"b":[["`+longPx+`","5"]],"a":[]}`), bb.now)
	ob, _, _, ok = bb.books.Book("S1USDT", 10)
	require.True(t, ok)
	requireSide(t, []PriceLevel{level(longPx, "5"), level("10.4", "1")}, ob.Bids, "bids")

	bb.books.StreamMessage("s1usdt@depth@100ms",
		[]byte(`{"e":"depthUpdate","E":3,"s":"S1USDT","U":13,"u":13,"b":[["10.5","0"]],"a":[]}`), bb.now)
	ob, _, _, ok = bb.books.Book("S1USDT", 10)
	require.True(t, ok)
	requireSide(t, []PriceLevel{level("10.4", "1")}, ob.Bids, "bids")
	bb.books.mu.Lock()
	defer bb.books.mu.Unlock()
	require.Empty(t, bb.books.books["S1USDT"].long)
	require.Equal(t, int64(3), bb.books.stats.Applied)
}

// Levels beyond the snapshot's depth are trimmed and their texts reused.
func TestBooksTrimReusesTexts(t *testing.T) {
	t.Parallel()
	bb := setupBooks(t)
	bb.books.cfg.SnapshotLimit = 2
	bb.books.books["S1USDT"].max = 2
	bb.books.applySnapshot("S1USDT", &OrderBook{LastUpdateID: 10,
		Bids: []PriceLevel{level("10.4", "1"), level("10.3", "1")}, Asks: []PriceLevel{level("11.3", "1")}})
	for i := range 50 {
		px := strconv.FormatFloat(10.41+float64(i)*0.01, 'f', 2, 64)
		bb.books.StreamMessage("s1usdt@depth@100ms", []byte(`{"e":"depthUpdate","E":1,"s":"S1USDT","U":`+
			strconv.Itoa(11+i)+`,"u":`+strconv.Itoa(11+i)+`,"b":[["`+px+`","`+strconv.Itoa(i+1)+`"]],"a":[]}`), bb.now)
	}
	ob, _, _, ok := bb.books.Book("S1USDT", 10)
	require.True(t, ok)
	requireSide(t, []PriceLevel{level("10.90", "50"), level("10.89", "49")}, ob.Bids, "bids")
	bb.books.mu.Lock()
	defer bb.books.mu.Unlock()
	require.LessOrEqual(t, len(bb.books.books["S1USDT"].texts), 5, "texts of trimmed levels are reused")
}

func TestParsePriceAgreesWithStrconv(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"12.34560000", "0.00000001", "0", "0.0", "1.", ".5", "", ".", "..1", "1.2.3", "1e5", "-1",
		"+1", "00012.5", "9007199254740992", "9007199254740993", "123456789.123456789012345", "0.0000000000000000000001",
		"0.00000000000000000000001", "NaN", "inf", "62280.21000000", "34287562.91948610", "1_0", "0x10"} {
		checkParsePrice(t, []byte(s))
	}
}

func FuzzParsePrice(f *testing.F) {
	for _, s := range []string{"12.34560000", "0.00000001", "9007199254740993", "1e5", ".5"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkParsePrice(t, b) })
}

func checkParsePrice(t *testing.T, b []byte) {
	t.Helper()
	want, err := strconv.ParseFloat(string(b), 64)
	got, ok := parsePrice(b)
	if ok != (err == nil) || (ok && math.Float64bits(got) != math.Float64bits(want)) {
		t.Fatalf("%q: parsePrice %v %v, strconv %v %v", b, got, ok, want, err)
	}
}

// diffMessages are n diff events of a book around 1000.00: each touches 30 levels of the best
// 120 per side, in the side's order (updates, new levels and 30 % removals), as the simulated
// exchange sends them.
func diffMessages(n int) [][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	side := func(buf []byte, ask bool) []byte {
		ks := r.Perm(120)[:30]
		slices.Sort(ks)
		for i, k := range ks {
			if i > 0 {
				buf = append(buf, ',')
			}
			px := 100000 - k
			if ask {
				px = 100001 + k
			}
			qty := "0.00000000"
			if r.IntN(10) >= 3 {
				qty = strconv.FormatFloat(float64(r.IntN(1_000_000))/1e4, 'f', 8, 64)
			}
			buf = fmt.Appendf(buf, `["%d.%02d000000","%s"]`, px/100, px%100, qty)
		}
		return buf
	}
	out := make([][]byte, n)
	for i := range out {
		b := fmt.Appendf(nil, `{"e":"depthUpdate","E":1773759845100,"s":"S1USDT","U":%d,"u":%d,"b":[`, 2*i+1, 2*i+2)
		b = side(b, false)
		b = append(b, `],"a":[`...)
		b = side(b, true)
		out[i] = append(b, "]}"...)
	}
	return out
}

// BenchmarkBooksApplyDiffs is a live book of 100 levels a side taking diff events of 60 levels.
func BenchmarkBooksApplyDiffs(b *testing.B) {
	bb := setupBooks(&testing.T{})
	snap := &OrderBook{LastUpdateID: 0}
	for k := range 100 {
		snap.Bids = append(snap.Bids, level(fmt.Sprintf("%d.%02d", (100000-k)/100, (100000-k)%100), "1.5"))
		snap.Asks = append(snap.Asks, level(fmt.Sprintf("%d.%02d", (100001+k)/100, (100001+k)%100), "1.5"))
	}
	bb.books.applySnapshot("S1USDT", snap)
	msgs := diffMessages(1000)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%len(msgs) == 0 {
			bb.books.mu.Lock()
			bb.books.books["S1USDT"].lastID = 0
			bb.books.mu.Unlock()
		}
		bb.books.StreamMessage("s1usdt@depth@100ms", msgs[i%len(msgs)], bb.now)
	}
	if st := bb.books.Stats(); st.BadEvents != 0 || st.Gaps != 0 {
		b.Fatalf("%+v", st)
	}
}

// The one-pass merge of an event's side gives the book that setting its levels one by one
// gives, whatever their order.
func TestBooksMergeAgreesWithSettingLevelsOneByOne(t *testing.T) {
	t.Parallel()
	merged := &localBook{symbol: "S1USDT", max: 100}
	oneByOne := &localBook{symbol: "S1USDT", max: 100}
	r := rand.New(rand.NewPCG(3, 4))
	for i, msg := range diffMessages(300) {
		var ev depthEvent
		require.NoError(t, decodeDepthEvent(msg, &ev))
		switch i % 3 {
		case 1: // the reverse order merges too
			slices.Reverse(ev.Bids)
		case 2: // any other order is set one by one
			r.Shuffle(len(ev.Asks), func(a, b int) { ev.Asks[a], ev.Asks[b] = ev.Asks[b], ev.Asks[a] })
		}
		merged.apply(&ev)
		for _, l := range ev.Bids {
			oneByOne.set(false, l[0], l[1])
		}
		for _, l := range ev.Asks {
			oneByOne.set(true, l[0], l[1])
		}
		oneByOne.trim()
		require.Equal(t, sideText(oneByOne, false), sideText(merged, false), "event %d bids", i)
		require.Equal(t, sideText(oneByOne, true), sideText(merged, true), "event %d asks", i)
	}
	require.NotEmpty(t, merged.bids)
}

// sideText renders a side as "price qty" lines.
func sideText(bk *localBook, ask bool) string {
	ls := bk.bids
	if ask {
		ls = bk.asks
	}
	var b strings.Builder
	for _, l := range bk.copyLevels(ls) {
		fmt.Fprintf(&b, "%v %s %s\n", l.key, l.price.text(bk.long, longKey{ask: ask, key: l.key}), l.qty.text(bk.long, longKey{ask: ask, qty: true, key: l.key}))
	}
	return b.String()
}
