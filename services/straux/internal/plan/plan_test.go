package plan_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/services/straux/internal/plan"
)

func TestWeightFixture(t *testing.T) {
	t.Parallel()
	c := plan.Costs{DepthLimit: 100, Snapshots: 1}
	// DOMAIN.md §6's worked example without the klines: 20 symbols, depth(100) and one ticker
	// batch = 5·20 + 2 = 102.
	require.Equal(t, 102, c.Weight(20))
	require.Equal(t, 5*21+2*2, c.Weight(21))
	require.Equal(t, 0, c.Weight(0))
	require.Equal(t, 25, plan.DepthWeight(500))
}

func TestTickBudget(t *testing.T) {
	t.Parallel()
	b := plan.Budget{PerWindow: 5400, Window: time.Minute} // 6000 less the limiter's 10%
	// 40 s ticks put two ticks in every other minute: each may spend half of the share, so the
	// busiest minute spends 0.7 of the budget, not more: 5400 · 0.7 / 2 = 1890.
	require.Equal(t, 1890, plan.TickBudget(b, 40*time.Second, 70))
	require.Equal(t, 1890, plan.TickBudget(b, 30*time.Second, 70))
	require.Equal(t, 1260, plan.TickBudget(b, 20*time.Second, 70))
	// A tick longer than the window may spend one window's budget at most.
	require.Equal(t, 3780, plan.TickBudget(b, 5*time.Minute, 70))
	// 2520 weight: 5·n + 2·⌈n/20⌉ ≤ 2520 → n = 494 (2470 + 50 = 2520).
	require.Equal(t, 494, plan.Capacity(plan.Costs{DepthLimit: 100, Snapshots: 1}, 2520))
}

func TestRotationCoversEverySymbol(t *testing.T) {
	t.Parallel()
	var universe []string
	for i := range 10 {
		universe = append(universe, fmt.Sprintf("S%02dUSDT", 9-i)) // unsorted on purpose
	}
	c := plan.Costs{DepthLimit: 100, Snapshots: 1}
	budget := c.Weight(4) // capacity 4 of 10: three rounds
	seen := map[string]int{}
	for k := int64(1000); k < 1003; k++ {
		p, err := plan.Make(universe, c, budget, k)
		require.NoError(t, err)
		require.Equal(t, 4, len(p.Symbols))
		require.Equal(t, 3, p.Rounds)
		require.InDelta(t, 0.4, p.Coverage(), 1e-12)
		require.LessOrEqual(t, p.Weight, budget)
		for _, s := range p.Symbols {
			seen[s]++
		}
		again, err := plan.Make(universe, c, budget, k)
		require.NoError(t, err)
		require.Equal(t, p, again, "deterministic")
	}
	require.Len(t, seen, 10, "every symbol within Rounds ticks")

	all, err := plan.Make(universe, c, c.Weight(10), 7)
	require.NoError(t, err)
	require.Len(t, all.Symbols, 10)
	require.Equal(t, 1, all.Rounds)
	require.Equal(t, "S00USDT", all.Symbols[0])

	_, err = plan.Make(universe, c, 3, 7)
	require.Error(t, err)
}
