package members_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/services/straux/internal/members"
)

func universe(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("SYM%04dUSDT", i)
	}
	return out
}

func replicas(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("straux-%d", i)
	}
	return out
}

func shares(symbols, live []string) map[string]string {
	out := make(map[string]string, len(symbols))
	for _, s := range symbols {
		out[s] = members.Owner(s, live)
	}
	return out
}

func TestOwnerIsDeterministicAndOrderFree(t *testing.T) {
	t.Parallel()
	require.Equal(t, "", members.Owner("BTCUSDT", nil))
	require.Equal(t, "a", members.Owner("BTCUSDT", []string{"a"}))
	live := replicas(5)
	reversed := []string{live[4], live[3], live[2], live[1], live[0], live[2]} // order and duplicates do not matter
	for _, s := range universe(500) {
		o := members.Owner(s, live)
		require.Contains(t, live, o)
		require.Equal(t, o, members.Owner(s, live), s)
		require.Equal(t, o, members.Owner(s, reversed), s)
	}
	// Pinned: replicas of different builds (a rolling deploy) must agree, so the hash may not
	// change without every replica changing at once.
	pinned := map[string]string{"BTCUSDT": "straux-0", "ETHUSDT": "straux-4", "SOLUSDT": "straux-1",
		"XRPUSDT": "straux-0", "DOGEUSDT": "straux-1", "ADAUSDT": "straux-3"}
	for s, o := range pinned {
		require.Equal(t, o, members.Owner(s, live), s)
	}
}

// Every member gets a fair share: 2,000 symbols over 10 members, each within ±30% of 200.
func TestOwnerSpreadsEvenly(t *testing.T) {
	t.Parallel()
	count := map[string]int{}
	for _, o := range shares(universe(2000), replicas(10)) {
		count[o]++
	}
	require.Len(t, count, 10)
	for m, n := range count {
		require.InDelta(t, 200, n, 60, "%s holds %d of 2000", m, n)
	}
}

// A joining member takes about 1/n of the symbols, every one of them from the others; a leaving
// member's symbols are the only ones that move.
func TestOwnerMovesOnlyWhatItMust(t *testing.T) {
	t.Parallel()
	syms := universe(2000)
	for n := 2; n <= 8; n++ {
		before := shares(syms, replicas(n))
		after := shares(syms, replicas(n+1))
		newcomer := fmt.Sprintf("straux-%d", n)
		moved := 0
		for _, s := range syms {
			if before[s] != after[s] {
				moved++
				require.Equal(t, newcomer, after[s], "%s moved from %s to %s, not to the newcomer", s, before[s], after[s])
			}
		}
		want := float64(len(syms)) / float64(n+1)
		require.InDelta(t, want, moved, want*0.3, "%d → %d members moved %d of %d symbols", n, n+1, moved, len(syms))
		// And back: the newcomer leaving moves exactly its symbols back.
		require.Equal(t, before, shares(syms, replicas(n)))
	}
}

// The brief's budget: 2,000 symbols × 10 members well under a millisecond. Measured, not
// asserted (the machine is shared): go test -bench Owned.
func BenchmarkOwner2000x10(b *testing.B) {
	syms, live := universe(2000), replicas(10)
	for b.Loop() {
		for _, s := range syms {
			_ = members.Owner(s, live)
		}
	}
}

func BenchmarkOwned2000x10(b *testing.B) {
	syms, live := universe(2000), replicas(10)
	for b.Loop() {
		_ = members.OwnedBy(live[3], syms, live)
	}
}

// Owned agrees with Owner, and the members' shares partition the universe.
func TestOwnedAgreesWithOwner(t *testing.T) {
	t.Parallel()
	syms, live := universe(2000), replicas(7)
	seen := map[string]string{}
	for _, m := range live {
		for _, s := range members.OwnedBy(m, syms, live) {
			require.Empty(t, seen[s], "%s owned by %s and %s", s, seen[s], m)
			require.Equal(t, m, members.Owner(s, live))
			seen[s] = m
		}
	}
	require.Len(t, seen, len(syms))
	require.Nil(t, members.OwnedBy("straux-0", syms, nil))
}
