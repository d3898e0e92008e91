package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCompareChanges(t *testing.T) {
	t.Parallel()
	// Commit order: a1 (trades), s1 (sessions), a2, a3 (trades), s2 (sessions).
	committed := []committedChange{
		{ID: "a1", Table: "market.account_trades", Pos: 0},
		{ID: "s1", Table: "cin_aux.rt_session", Pos: 1},
		{ID: "a2", Table: "market.account_trades", Pos: 2},
		{ID: "a3", Table: "market.account_trades", Pos: 3},
		{ID: "s2", Table: "cin_aux.rt_session", Pos: 4},
	}
	msg := func(seq uint64, id, table string) streamMsg {
		return streamMsg{Seq: seq, ID: id, Subject: "cp.cdc." + table + ".insert"}
	}
	for _, tc := range []struct {
		name   string
		stored []streamMsg
		want   changeCounts
	}{
		{
			name: "exact",
			stored: []streamMsg{msg(1, "a1", "market.account_trades"), msg(2, "s1", "cin_aux.rt_session"),
				msg(3, "a2", "market.account_trades"), msg(4, "a3", "market.account_trades"), msg(5, "s2", "cin_aux.rt_session")},
			want: changeCounts{Committed: 5, Stored: 5},
		},
		{
			// Tables interleave differently from commit order: that is allowed, order is per table.
			name: "other tables interleave freely",
			stored: []streamMsg{msg(1, "s1", "cin_aux.rt_session"), msg(2, "s2", "cin_aux.rt_session"),
				msg(3, "a1", "market.account_trades"), msg(4, "a2", "market.account_trades"), msg(5, "a3", "market.account_trades")},
			want: changeCounts{Committed: 5, Stored: 5},
		},
		{
			name:   "lost",
			stored: []streamMsg{msg(1, "a1", "market.account_trades"), msg(2, "a3", "market.account_trades")},
			want:   changeCounts{Committed: 5, Stored: 2, Lost: 3},
		},
		{
			// A replay past the duplicate window stores a2 and a3 again: two duplicates, and their
			// second copies do not count as reordered.
			name: "replayed past the window",
			stored: []streamMsg{msg(1, "a1", "market.account_trades"), msg(2, "s1", "cin_aux.rt_session"),
				msg(3, "a2", "market.account_trades"), msg(4, "a3", "market.account_trades"),
				msg(5, "a2", "market.account_trades"), msg(6, "a3", "market.account_trades"), msg(7, "s2", "cin_aux.rt_session")},
			want: changeCounts{Committed: 5, Stored: 7, Duplicates: 2},
		},
		{
			// A failed publish of a2 retried after a3 was stored: a2 is reordered.
			name: "reordered",
			stored: []streamMsg{msg(1, "a1", "market.account_trades"), msg(2, "a3", "market.account_trades"),
				msg(3, "a2", "market.account_trades"), msg(4, "s1", "cin_aux.rt_session"), msg(5, "s2", "cin_aux.rt_session")},
			want: changeCounts{Committed: 5, Stored: 5, Reordered: 1},
		},
		{
			name: "unmatched and mislabelled",
			stored: []streamMsg{msg(1, "zz", "market.account_trades"), msg(2, "a1", "cin_aux.rt_session"),
				msg(3, "a2", "market.account_trades"), msg(4, "a3", "market.account_trades"),
				msg(5, "s1", "cin_aux.rt_session"), msg(6, "s2", "cin_aux.rt_session")},
			want: changeCounts{Committed: 5, Stored: 6, Unmatched: 2, Lost: 0},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := compareChanges(committed, tc.stored)
			require.Len(t, got.Examples, min(maxExamples, got.Duplicates+got.Reordered+got.Unmatched))
			got.Examples, got.ExampleSeqs = nil, nil
			require.Equal(t, tc.want, got)
		})
	}
}

func TestTableOfSubject(t *testing.T) {
	t.Parallel()
	require.Equal(t, "market.account_trades", tableOfSubject("cp.cdc.market.account_trades.insert"))
	require.Equal(t, "", tableOfSubject("cp.tick.straux"))
	require.Equal(t, "", tableOfSubject("cp.cdc.market"))
}

func TestSummaryLine(t *testing.T) {
	t.Parallel()
	r := []scenarioResult{
		{Lost: 2, Duplicates: 1, Reordered: 0, Recovery: 3.25},
		{Lost: 0, Duplicates: 4, Reordered: 7, Recovery: 9.5},
	}
	require.Equal(t, "BENCH chaos scenarios=2 lost=2 duplicates=5 reordered=7 max_recovery_s=9.5", benchLine(r))
	require.Equal(t, "BENCH chaos scenarios=0 lost=0 duplicates=0 reordered=0 max_recovery_s=0.0", benchLine(nil))
}

func TestMissedTargets(t *testing.T) {
	ok := scenarioResult{Name: "a", Converged: true, Recovery: 3}
	require.Empty(t, missedTargets([]scenarioResult{ok}))
	require.Equal(t, []string{"b: lost=1 duplicates=0 reordered=0", "c: not recovered", "d: recovery 10.5s > 10s"}, missedTargets([]scenarioResult{
		ok,
		{Name: "b", Converged: true, Lost: 1},
		{Name: "c", Converged: false, Recovery: 60},
		{Name: "d", Converged: true, Recovery: 10.5},
	}))
}
