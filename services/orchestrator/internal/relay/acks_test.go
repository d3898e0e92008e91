package relay

import (
	"errors"
	"testing"

	"github.com/jackc/pglogrepl"
	"github.com/stretchr/testify/require"
)

func TestAckTrackerAdvancesInCommitOrder(t *testing.T) {
	t.Parallel()
	var failed error
	tr := newAckTracker(100, func(err error) { failed = err })
	a, b := tr.begin(), tr.begin()
	tr.sent(a)
	tr.sent(a)
	tr.sent(b)
	tr.commit(a, 200)
	tr.commit(b, 300)
	tr.acked(b, nil) // a later transaction acknowledged first does not move the position
	pos, idle := tr.position()
	require.Equal(t, pglogrepl.LSN(100), pos)
	require.False(t, idle)
	tr.acked(a, nil)
	pos, _ = tr.position()
	require.Equal(t, pglogrepl.LSN(100), pos, "a has an event outstanding")
	tr.acked(a, nil)
	pos, idle = tr.position()
	require.Equal(t, pglogrepl.LSN(300), pos, "a and then b are complete")
	require.True(t, idle)

	// An open transaction holds the position even with every event acknowledged.
	c := tr.begin()
	tr.sent(c)
	tr.acked(c, nil)
	pos, idle = tr.position()
	require.Equal(t, pglogrepl.LSN(300), pos)
	require.False(t, idle)
	tr.commit(c, 400)
	pos, _ = tr.position()
	require.Equal(t, pglogrepl.LSN(400), pos)

	// A failed publish stops the position for good.
	d, e := tr.begin(), tr.begin()
	tr.sent(d)
	tr.sent(e)
	tr.commit(d, 500)
	tr.commit(e, 600)
	tr.acked(d, errors.New("boom"))
	tr.acked(e, nil)
	pos, idle = tr.position()
	require.Equal(t, pglogrepl.LSN(400), pos)
	require.False(t, idle)
	require.EqualError(t, failed, "boom")
	require.Zero(t, tr.outstanding())
}

// A session that ends on a failure still confirms the transactions before the failed one whose
// acknowledgements arrive after the failure: they are stored, and a replay of them beyond the
// stream's duplicate window would store them twice.
func TestAckTrackerCompletesTransactionsBeforeAFailure(t *testing.T) {
	t.Parallel()
	tr := newAckTracker(100, func(error) {})
	a, b, c := tr.begin(), tr.begin(), tr.begin()
	for _, tx := range []*txAcks{a, b, c} {
		tr.sent(tx)
	}
	tr.commit(a, 200)
	tr.commit(b, 300)
	tr.commit(c, 400)
	tr.acked(b, errors.New("rejected"))
	require.Equal(t, 2, tr.outstanding())
	tr.acked(a, nil)
	tr.acked(c, nil)
	pos, idle := tr.position()
	require.Equal(t, pglogrepl.LSN(200), pos, "a completes after b failed; b and c stay unconfirmed")
	require.False(t, idle)
	require.Zero(t, tr.outstanding())
}
