package relay

import (
	"sync"

	"github.com/jackc/pglogrepl"
)

// ackTracker knows which transactions have every event acknowledged. Transactions enter in commit
// order (the order Postgres streams them) and leave from the front once committed and fully
// acknowledged, so the confirmable position only ever moves to the end of a transaction all of
// whose events, and all earlier ones, JetStream has stored. A transaction with a failed event
// stops the position before it for good (the session ends and the next one replays from there);
// the transactions before it still complete as their acknowledgements arrive, so a session ending
// on a failure can confirm everything that was stored.
type ackTracker struct {
	mu        sync.Mutex
	queue     []*txAcks
	confirmed pglogrepl.LSN
	pending   int // events awaiting their outcome, over all transactions
	err       error
	onFail    func(error)
}

// txAcks is one transaction's outstanding publishes.
type txAcks struct {
	end         pglogrepl.LSN
	outstanding int
	committed   bool
	failed      bool
}

func newAckTracker(start pglogrepl.LSN, onFail func(error)) *ackTracker {
	return &ackTracker{confirmed: start, onFail: onFail}
}

// begin registers a transaction whose events are about to be published.
func (t *ackTracker) begin() *txAcks {
	tx := &txAcks{}
	t.mu.Lock()
	t.queue = append(t.queue, tx)
	t.mu.Unlock()
	return tx
}

// sent counts one more event of tx awaiting its PubAck.
func (t *ackTracker) sent(tx *txAcks) {
	t.mu.Lock()
	tx.outstanding++
	t.pending++
	t.mu.Unlock()
}

// acked resolves one event of tx. The first failure is reported to onFail once.
func (t *ackTracker) acked(tx *txAcks, err error) {
	t.mu.Lock()
	tx.outstanding--
	t.pending--
	var fail func(error)
	if err != nil {
		tx.failed = true
		if t.err == nil {
			t.err = err
			fail = t.onFail
		}
	}
	t.advance()
	t.mu.Unlock()
	if fail != nil {
		fail(err)
	}
}

// commit marks tx complete: its last event has been handed to the publisher, it ends at end.
func (t *ackTracker) commit(tx *txAcks, end pglogrepl.LSN) {
	t.mu.Lock()
	tx.committed, tx.end = true, end
	t.advance()
	t.mu.Unlock()
}

func (t *ackTracker) advance() {
	n := 0
	for n < len(t.queue) && t.queue[n].committed && t.queue[n].outstanding == 0 && !t.queue[n].failed {
		if t.queue[n].end > t.confirmed {
			t.confirmed = t.queue[n].end
		}
		n++
	}
	if n > 0 {
		clear(t.queue[:n])
		t.queue = t.queue[n:]
	}
}

// position returns the confirmable position and whether nothing at all is outstanding.
func (t *ackTracker) position() (pglogrepl.LSN, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.confirmed, len(t.queue) == 0 && t.err == nil
}

// outstanding is the number of events whose outcome has not come yet.
func (t *ackTracker) outstanding() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pending
}

// failed returns the first publish error, if any.
func (t *ackTracker) failed() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}
