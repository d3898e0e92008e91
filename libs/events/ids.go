package events

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
)

// idNamespace is the UUIDv5 namespace of CryptoPill event ids: UUIDv5 of the URL namespace and
// "https://cryptopill.dev/jobs/events" (14050e4a-7c15-5fc3-8e8f-2384fd71a709). Changing it
// changes every deterministic id.
var idNamespace = [16]byte{
	0x14, 0x05, 0x0e, 0x4a, 0x7c, 0x15, 0x5f, 0xc3, 0x8e, 0x8f, 0x23, 0x84, 0xfd, 0x71, 0xa7, 0x09,
}

// StableID returns a deterministic event id: the UUIDv5 (RFC 9562) in the CryptoPill namespace
// of the name kind, then each part, joined by NUL bytes. The same kind and parts always give the same id, so a fact published twice
// is de-duplicated by JetStream. The specific helpers below fix kind and parts per event type.
func StableID(kind string, parts ...string) string {
	h := sha1.New()
	h.Write(idNamespace[:])
	h.Write([]byte(kind))
	for _, p := range parts {
		// A separator that cannot occur in the parts keeps ("a","bc") and ("ab","c") apart.
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return formatUUID(u)
}

// NewID returns a random id (UUIDv4) for an event with no natural identity.
func NewID() string {
	var u [16]byte
	_, _ = rand.Read(u[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return formatUUID(u)
}

// TickID is the id of the tick for module's period starting at periodStart (exact to the
// nanosecond, time zone ignored).
func TickID(module string, periodStart time.Time) string {
	return StableID("tick", module, strconv.FormatInt(periodStart.UnixNano(), 10))
}

// ChangeID is the id of the row change at indexInTx in the transaction committed at commitLSN.
func ChangeID(commitLSN uint64, indexInTx uint32) string {
	return StableID("cdc", strconv.FormatUint(commitLSN, 10), strconv.FormatUint(uint64(indexInTx), 10))
}

// UniverseID is the id of the universe-changed event that publishes the enabled-set version after
// the event at stream sequence after (0: none), at an orchestrator's start or resync: two
// orchestrators doing so at once store it once, and a set that comes back (A → B → A) inside the
// duplicate window is stored again.
func UniverseID(version string, after uint64) string {
	return StableID("universe", version, strconv.FormatUint(after, 10))
}

// JobEventID is the id of a job's transition to status at the given attempt count of its run
// scheduled for scheduledFor (a periodic job runs many times with the same attempt count).
func JobEventID(jobID int64, attempts int32, status eventsv1.JobStatus, scheduledFor time.Time) string {
	return StableID("job", strconv.FormatInt(jobID, 10), strconv.FormatInt(int64(attempts), 10), status.String(),
		scheduledFor.UTC().Format(time.RFC3339Nano))
}

// MovesImportedID is the id of the moves-imported event of one session in one import run.
func MovesImportedID(sessionID int64, runID string) string {
	return StableID("moves_imported", strconv.FormatInt(sessionID, 10), runID)
}

// DeadLetterID is the id of the dead letter a consumer writes for a stream message, so a
// consumer that crashes between writing it and terminating the message writes it only once.
func DeadLetterID(stream string, streamSeq uint64, consumer string) string {
	return StableID("dead_letter", stream, strconv.FormatUint(streamSeq, 10), consumer)
}

func formatUUID(u [16]byte) string {
	var b strings.Builder
	b.Grow(36)
	for i, part := range [][]byte{u[0:4], u[4:6], u[6:8], u[8:10], u[10:16]} {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(hex.EncodeToString(part))
	}
	return b.String()
}
