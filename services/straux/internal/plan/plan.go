// Package plan decides how much of the universe one tick samples. The exchange counts request
// weight per window (a minute on Binance); a tick may spend its share of the budget that the
// tick interval covers. When the universe costs more than that, each tick samples a rotating,
// deterministic slice of it, so every symbol is sampled within Rounds ticks.
package plan

import (
	"fmt"
	"math"
	"slices"
	"time"

	"cryptopill.dev/jobs/libs/exchange"
)

// Weights of the calls a tick makes, per Binance's documentation (DOMAIN.md §6).
const (
	// TickerBatch is how many symbols one ticker/24hr call carries at its lowest weight.
	TickerBatch = 20
	// KlinesWeight is one klines call's weight.
	KlinesWeight = exchange.KlinesWeight
)

// TickerBatchWeight is the weight of a ticker/24hr call for a full batch.
var TickerBatchWeight = exchange.Ticker24hWeight(TickerBatch)

// DepthWeight is the weight of one depth call with this limit.
func DepthWeight(limit int) int { return exchange.DepthWeight(limit) }

// Budget is the exchange's weight budget as the limiter reports it.
type Budget struct {
	// PerWindow is the weight the limiter lets through per Window (limit less its margin).
	PerWindow int
	Window    time.Duration
}

// Costs describe one symbol's sampling.
type Costs struct {
	DepthLimit int
	// Snapshots is how many depth calls a symbol gets per tick.
	Snapshots int
	// Streamed: symbols are sampled from local books fed by the exchange's streams, which cost
	// no request weight per tick; every symbol fits (REST calls are only a fallback, capped
	// apart by the runner).
	Streamed bool
}

// Weight is what sampling n symbols in one tick costs: their depth calls and one ticker batch
// per TickerBatch symbols; nothing when they are streamed.
func (c Costs) Weight(n int) int {
	if n <= 0 || c.Streamed {
		return 0
	}
	return n*DepthWeight(c.DepthLimit)*max(1, c.Snapshots) + TickerBatchWeight*((n+TickerBatch-1)/TickerBatch)
}

// TickBudget is the weight one tick may spend: sharePct percent of a window's budget, split
// among the ticks that can start within one window — ceil(window/interval), since period starts
// do not line up with the exchange's windows (a 40 s tick puts two ticks in every other minute).
// A tick's calls go out together, so a longer interval gets one window's share. Rounded down.
func TickBudget(b Budget, interval time.Duration, sharePct int) int {
	if b.PerWindow <= 0 || b.Window <= 0 || interval <= 0 {
		return 0
	}
	ticksPerWindow := int64((b.Window + interval - 1) / interval)
	return int(int64(b.PerWindow) * int64(sharePct) / 100 / ticksPerWindow)
}

// Capacity is the most symbols a tick budget samples.
func Capacity(c Costs, tickBudget int) int {
	if c.Streamed {
		return math.MaxInt
	}
	// Weight is monotone in n: binary search the largest n with Weight(n) ≤ budget.
	lo, hi := 0, tickBudget+1
	for lo+1 < hi {
		mid := (lo + hi) / 2
		if c.Weight(mid) <= tickBudget {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// Plan is one tick's share of the universe.
type Plan struct {
	// Symbols to sample, sorted.
	Symbols []string
	// Universe is the size of the enabled universe, Capacity what the budget allows.
	Universe int
	Capacity int
	// Offset is where in the sorted universe this tick's slice starts.
	Offset int
	// Rounds is how many ticks cover every symbol: ⌈Universe/Capacity⌉ (1 when all fit).
	Rounds int
	// Weight is the planned weight, TickBudget what the tick could spend.
	Weight     int
	TickBudget int
}

// Coverage is the share of the universe this tick samples.
func (p Plan) Coverage() float64 {
	if p.Universe == 0 {
		return 1
	}
	return float64(len(p.Symbols)) / float64(p.Universe)
}

// Make plans the tick with index periodIndex (period start / interval; consecutive ticks have
// consecutive indices). The slice is [offset, offset+capacity) of the sorted universe, wrapping,
// with offset = periodIndex·capacity mod |universe|: consecutive ticks take consecutive slices,
// so every symbol comes up within Rounds ticks, and every replica computes the same plan.
func Make(universe []string, c Costs, tickBudget int, periodIndex int64) (Plan, error) {
	u := slices.Clone(universe)
	slices.Sort(u)
	u = slices.Compact(u)
	capacity := Capacity(c, tickBudget)
	if c.Streamed {
		capacity = len(u)
	}
	p := Plan{Universe: len(u), Capacity: capacity, TickBudget: tickBudget, Rounds: 1}
	if len(u) == 0 {
		return p, nil
	}
	if capacity == 0 && !c.Streamed {
		return p, fmt.Errorf("plan: tick budget %d weight cannot sample one symbol (costs %d)", tickBudget, c.Weight(1))
	}
	if capacity >= len(u) {
		p.Symbols = u
	} else {
		p.Rounds = (len(u) + capacity - 1) / capacity
		n := int64(len(u))
		p.Offset = int(((periodIndex%n)*int64(capacity)%n + n) % n)
		p.Symbols = make([]string, 0, capacity)
		for i := range capacity {
			p.Symbols = append(p.Symbols, u[(p.Offset+i)%len(u)])
		}
		slices.Sort(p.Symbols)
	}
	p.Weight = c.Weight(len(p.Symbols))
	return p, nil
}
