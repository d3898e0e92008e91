package relay

import (
	"sync"

	"github.com/jackc/pglogrepl"
)

// ackTracker knows which transactions have every event acknowledged. Transactions enter in commit
// order (the order Postgres streams them) and leave from the front once committed and fully
// acknowledged, so the confirmable position only ever moves to the end of a transaction all of
// whose events, and all earlier ones, JetStream has stored.
type ackTracker struct {
	mu        sync.Mutex
	queue     []*txAcks
	confirmed pglogrepl.LSN
	err       error
	onFail    func(error)
}

// txAcks is one transaction's outstanding publishes.
type txAcks struct {
	end         pglogrepl.LSN
	outstanding int
	committed   bool
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
	t.mu.Unlock()
}

// acked resolves one event of tx. A failed publish stops the position where it is for good:
// the session ends and the next one replays from the slot's confirmed position.
func (t *ackTracker) acked(tx *txAcks, err error) {
	t.mu.Lock()
	tx.outstanding--
	var fail func(error)
	if err != nil && t.err == nil {
		t.err = err
		fail = t.onFail
	}
	if t.err == nil {
		t.advance()
	}
	t.mu.Unlock()
	if fail != nil {
		fail(err)
	}
}

// commit marks tx complete: its last event has been handed to the publisher, it ends at end.
func (t *ackTracker) commit(tx *txAcks, end pglogrepl.LSN) {
	t.mu.Lock()
	tx.committed, tx.end = true, end
	if t.err == nil {
		t.advance()
	}
	t.mu.Unlock()
}

func (t *ackTracker) advance() {
	n := 0
	for n < len(t.queue) && t.queue[n].committed && t.queue[n].outstanding == 0 {
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

// failed returns the first publish error, if any.
func (t *ackTracker) failed() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}
