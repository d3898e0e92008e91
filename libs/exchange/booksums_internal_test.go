package exchange

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"
)

// randomQty is a quantity text of the kinds a book may hold: Binance's (at most 8 fraction
// digits, padded or not), very large ones (past 64 bits once scaled), and ones with more fraction
// digits or longer than a level holds inline (summed as decimals).
func randomQty(r *rand.Rand) string {
	switch r.IntN(8) {
	case 0:
		return strconv.FormatUint(r.Uint64(), 10) + "." + strconv.Itoa(r.IntN(100))
	case 1:
		return "0." + strings.Repeat("0", r.IntN(6)) + strconv.Itoa(1+r.IntN(999)) + "123456789012" // > 8 fraction digits
	case 2:
		return strconv.Itoa(r.IntN(1000)) + "." + strings.Repeat("7", 30) // a long text
	case 3:
		return strconv.Itoa(r.IntN(50))
	default:
		return strconv.FormatFloat(r.Float64()*1e6, 'f', r.IntN(9), 64)
	}
}

func sumOf(ls []PriceLevel, n int) decimal.Decimal {
	var s decimal.Decimal
	for _, l := range ls[:min(n, len(ls))] {
		s = s.Add(l.Qty)
	}
	return s
}

// Sums reads the same book Book does: its best prices, and quantity sums equal to the decimals'
// sums, digit for digit, whatever the texts.
func TestBookSumsAgreeWithTheBook(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(5, 6))
	for round := range 200 {
		bb := setupBooks(t)
		snap := &OrderBook{LastUpdateID: 10}
		for i := range r.IntN(120) {
			snap.Bids = append(snap.Bids, level(strconv.FormatFloat(1000-float64(i)*0.5, 'f', 2, 64), randomQty(r)))
		}
		for i := range r.IntN(120) {
			snap.Asks = append(snap.Asks, level(strconv.FormatFloat(1000.25+float64(i)*0.5, 'f', 2, 64), randomQty(r)))
		}
		for i := range snap.Bids {
			snap.Bids[i].Qty = decimal.RequireFromString(randomQty(r))
		}
		bb.books.applySnapshot("S1USDT", snap)
		depth, top := 1+r.IntN(110), 1+r.IntN(10)
		ob, _, _, ok := bb.books.Book("S1USDT", depth)
		require.True(t, ok)
		s, state, _, ok := bb.books.Sums("S1USDT", depth, top)
		require.True(t, ok, state)
		require.Equal(t, ob.LastUpdateID, s.LastUpdateID)
		require.Equal(t, len(ob.Bids), s.BidLevels, "round %d", round)
		require.Equal(t, len(ob.Asks), s.AskLevels, "round %d", round)
		if len(ob.Bids) > 0 {
			require.Equal(t, ob.Bids[0].Price.String(), s.BestBid.String())
		}
		if len(ob.Asks) > 0 {
			require.Equal(t, ob.Asks[0].Price.String(), s.BestAsk.String())
		}
		for _, c := range []struct {
			name      string
			want, got decimal.Decimal
		}{
			{"bids", sumOf(ob.Bids, depth), s.BidQty}, {"asks", sumOf(ob.Asks, depth), s.AskQty},
			{"top bids", sumOf(ob.Bids, top), s.TopBidQty}, {"top asks", sumOf(ob.Asks, top), s.TopAskQty},
		} {
			require.True(t, c.want.Equal(c.got), "round %d %s: want %s got %s", round, c.name, c.want, c.got)
			require.Equal(t, c.want.String(), c.got.String(), "round %d %s", round, c.name)
		}
	}
}

// A level whose text is not a decimal is not served: the book resyncs, as with Book.
func TestBookSumsResyncAnUnreadableLevel(t *testing.T) {
	t.Parallel()
	bb := setupBooks(t)
	bb.books.applySnapshot("S1USDT", &OrderBook{LastUpdateID: 10,
		Bids: []PriceLevel{level("10.4", "1"), level("10.3", "2")}, Asks: []PriceLevel{level("11.3", "1")}})
	bb.books.mu.Lock()
	bk := bb.books.books["S1USDT"]
	q := &bk.texts[bk.bids[1].at].qty
	q.n = uint8(copy(q.b[:], "2x"))
	bb.books.mu.Unlock()
	_, state, _, ok := bb.books.Sums("S1USDT", 10, 5)
	require.False(t, ok)
	require.Equal(t, BookSyncing, state)
	bb.books.mu.Lock()
	defer bb.books.mu.Unlock()
	require.Equal(t, int64(1), bb.books.stats.BadEvents)
	require.True(t, bb.books.queued["S1USDT"], "queued for a resync")
}

func FuzzExactSum(f *testing.F) {
	f.Add("1.5", "18446744073709551615.12345678")
	f.Add("0.000000001", "7")
	f.Add("12345678901234567890123", "1e5")
	f.Fuzz(func(t *testing.T, a, b string) {
		da, errA := decimal.NewFromString(a)
		db, errB := decimal.NewFromString(b)
		var s exactSum
		s.add([]byte(a))
		s.add([]byte(b))
		got, err := s.value()
		if errA != nil || errB != nil {
			require.Error(t, err)
			return
		}
		require.NoError(t, err)
		require.True(t, da.Add(db).Equal(got), "%s + %s: want %s got %s", a, b, da.Add(db), got)
	})
}

func BenchmarkBookSums(b *testing.B) {
	bb := setupBooks(b)
	snap := &OrderBook{LastUpdateID: 10}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 100 {
		snap.Bids = append(snap.Bids, level(strconv.FormatFloat(1000-float64(i)*0.5, 'f', 2, 64), strconv.FormatFloat(r.Float64()*100, 'f', 8, 64)))
		snap.Asks = append(snap.Asks, level(strconv.FormatFloat(1000.5+float64(i)*0.5, 'f', 2, 64), strconv.FormatFloat(r.Float64()*100, 'f', 8, 64)))
	}
	bb.books.applySnapshot("S1USDT", snap)
	b.Run("Sums", func(b *testing.B) {
		for b.Loop() {
			bb.books.Sums("S1USDT", 100, 5)
		}
	})
	b.Run("Book", func(b *testing.B) {
		for b.Loop() {
			ob, _, _, _ := bb.books.Book("S1USDT", 100)
			sumOf(ob.Bids, 100)
			sumOf(ob.Asks, 100)
		}
	})
}
