package book_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/services/straux/internal/book"
)

func orderBook(t *testing.T, body string) *exchange.OrderBook {
	t.Helper()
	var ob exchange.OrderBook
	require.NoError(t, json.Unmarshal([]byte(body), &ob))
	return &ob
}

func TestMeasureFixture(t *testing.T) {
	t.Parallel()
	// Best bid 99, best ask 101: mid 100, spread 2/100 = 200 bps.
	// Top-5 bid qty 1+2+3+4+5 = 15 (the 6th level, 100, is outside the top 5); ask qty 1+1+1 = 3:
	// imbalance (15−3)/(15+3) = 2/3. Total volumes 115 and 3.
	ob := orderBook(t, `{"lastUpdateId":1,
		"bids":[["99","1"],["98","2"],["97","3"],["96","4"],["95","5"],["94","100"]],
		"asks":[["101","1"],["102","1"],["103","1"]]}`)
	s, ok := book.Measure(ob)
	require.True(t, ok)
	require.Equal(t, "100", s.Mid.String())
	require.InDelta(t, 200, s.SpreadBps, 1e-9)
	require.InDelta(t, 2.0/3, s.Imbalance, 1e-12)
	require.Equal(t, "115", s.BidVol.String())
	require.Equal(t, "3", s.AskVol.String())
}

func TestMeasureEmptyBook(t *testing.T) {
	t.Parallel()
	_, ok := book.Measure(orderBook(t, `{"lastUpdateId":1,"bids":[],"asks":[["1","1"]]}`))
	require.False(t, ok)
}

func TestAggregate(t *testing.T) {
	t.Parallel()
	p := time.Date(2025, 1, 1, 0, 0, 40, 0, time.UTC)
	d := decimal.RequireFromString
	a := book.Snapshot{Mid: d("100"), SpreadBps: 10, Imbalance: 0.5, BidVol: d("1"), AskVol: d("2")}
	b := book.Snapshot{Mid: d("102"), SpreadBps: 20, Imbalance: -0.5, BidVol: d("3"), AskVol: d("4")}

	s := book.Aggregate("BTCUSDT", p, []book.Snapshot{a, b}, 0, 2)
	require.True(t, s.Valid)
	require.Equal(t, "101", s.Mid.String())
	require.Equal(t, "100", s.MidMin.String())
	require.Equal(t, "102", s.MidMax.String())
	require.InDelta(t, 15, s.SpreadBps, 1e-12)
	require.InDelta(t, 0, s.Imbalance, 1e-12)
	require.Equal(t, "4", s.BidVol.String())
	require.Equal(t, "6", s.AskVol.String())
	require.Empty(t, s.Flags)

	// One good snapshot of two wanted, the other an empty book.
	s = book.Aggregate("BTCUSDT", p, []book.Snapshot{a}, 1, 2)
	require.Equal(t, []string{book.FlagEmptyBook, book.FlagLowSamples}, s.Flags)
	// One snapshot when one was wanted is complete.
	s = book.Aggregate("BTCUSDT", p, []book.Snapshot{a}, 0, 1)
	require.Empty(t, s.Flags)
	// No book at all: no mid, the reason says why.
	s = book.Aggregate("BTCUSDT", p, nil, 1, 1)
	require.False(t, s.Valid)
	require.Equal(t, book.FlagEmptyBook, s.Reason)

	// Spacing: the previous good sample three periods back is irregular, two is not.
	s = book.Aggregate("BTCUSDT", p, []book.Snapshot{a}, 0, 1)
	s.MarkSpacing(p.Add(-80*time.Second), 40*time.Second)
	require.Empty(t, s.Flags)
	s.MarkSpacing(p.Add(-120*time.Second), 40*time.Second)
	require.Equal(t, []string{book.FlagIrregularSpacing}, s.Flags)
}
