package relay

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pglogrepl"

	"cryptopill.dev/jobs/libs/events"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
)

// Change is one row change, encoded and ready to publish.
type Change struct {
	// Subject is cp.cdc.<schema>.<table>.<insert|update|delete>.
	Subject string
	// ID is the event id, events.ChangeID(CommitLSN, Index): the Nats-Msg-Id.
	ID string
	// Data is the payload: the protojson encoding of an eventsv1.RowChange, byte for byte what
	// libs/events would produce (compact, map keys sorted), written directly from the pgoutput
	// tuple because the reflection-based encoder costs more than everything else the relay does.
	Data []byte
	// Table is schema.table.
	Table      string
	CommitLSN  uint64
	CommitTime time.Time
	Index      uint32
	// Xid is the transaction's id (0 when pgoutput did not send one).
	Xid uint32
	// ExpectedLastID is the id (Nats-Msg-Id) of the event published before this one; "" for the
	// first of a session when the stream's last message has none. The publisher sends it as
	// Nats-Expected-Last-Msg-Id, so the server stores an event only right after its predecessor:
	// a failed publish, or anything else landing in the stream, can never let a later event be
	// stored ahead of it. (The server checks it in order as it stores, clustered or not, so
	// publishing stays pipelined; Nats-Expected-Last-Subject-Sequence cannot be pipelined on a
	// clustered stream, and a predicted Nats-Expected-Last-Sequence re-syncs by coincidence after
	// a foreign message.)
	ExpectedLastID string
}

// decoder turns pgoutput messages into encoded row changes. It keeps the relations Postgres has
// described on this connection (sent again on every new connection and after DDL) and the
// transaction being decoded.
type decoder struct {
	relations map[uint32]*relation
	tx        *txState
}

// relation is a RelationMessage with the JSON fragments its events repeat.
type relation struct {
	msg   *pglogrepl.RelationMessage
	table string
	// head[op] is `{"schema":…,"table":…,"op":…`.
	head [4][]byte
	// keys[i] is `"<name>":` of column i; order lists column indexes sorted by name (protojson
	// sorts map keys); keyCols is `"keyColumns":[…]`, empty when the relation has none.
	keys    [][]byte
	order   []int
	isKey   []bool
	keyCols []byte
	subject [4]string
	// err makes every row change of the relation fail: its columns cannot be one event.
	err error
}

// validName is s with each byte that is not part of valid UTF-8 replaced by U+FFFD.
func validName(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// txState is the transaction between its Begin and Commit messages.
type txState struct {
	commitLSN  pglogrepl.LSN
	commitTime time.Time
	xid        uint32
	next       uint32 // index of the next row change in the transaction
	// tail is `"commitLsn":…,"commitTime":…,"xid":…` shared by the transaction's events.
	tail []byte
}

func newDecoder() *decoder {
	return &decoder{relations: map[uint32]*relation{}}
}

func (d *decoder) begin(m *pglogrepl.BeginMessage) {
	// Begin's final LSN is the LSN of the transaction's commit record: the change ids can be
	// derived before the Commit message arrives, so a large transaction streams out as it decodes.
	tx := &txState{commitLSN: m.FinalLSN, commitTime: m.CommitTime, xid: m.Xid}
	b := []byte(`"commitLsn":"`)
	b = strconv.AppendUint(b, uint64(m.FinalLSN), 10)
	b = append(b, `","commitTime":"`...)
	b = appendTimestamp(b, m.CommitTime)
	b = append(b, '"')
	if m.Xid != 0 {
		b = append(b, `,"xid":`...)
		b = strconv.AppendUint(b, uint64(m.Xid), 10)
	}
	tx.tail = b
	d.tx = tx
}

func (d *decoder) relation(m *pglogrepl.RelationMessage) {
	r := &relation{msg: m, table: m.Namespace + "." + m.RelationName}
	for op := eventsv1.RowChange_OP_INSERT; op <= eventsv1.RowChange_OP_DELETE; op++ {
		h := append([]byte(`{"schema":`), jsonString(m.Namespace)...)
		h = append(h, `,"table":`...)
		h = append(h, jsonString(m.RelationName)...)
		h = append(h, `,"op":"`...)
		h = append(h, op.String()...)
		h = append(h, '"')
		r.head[op] = h
		r.subject[op] = events.ChangeSubject(m.Namespace, m.RelationName, op)
	}
	// Names as the event carries them (invalid UTF-8 bytes become U+FFFD, as jsonString writes
	// them): protojson orders map keys by those, and two names that differ only in invalid bytes
	// would be one key twice, which no reader could decode.
	names := make([]string, len(m.Columns))
	seen := make(map[string]string, len(m.Columns))
	for i, c := range m.Columns {
		names[i] = validName(c.Name)
		if other, dup := seen[names[i]]; dup && r.err == nil {
			r.err = fmt.Errorf("relation %s: columns %q and %q are one name once made valid UTF-8 (%q); rename one", r.table, other, c.Name, names[i])
		}
		seen[names[i]] = c.Name
	}
	var keyNames []string
	for i, c := range m.Columns {
		r.keys = append(r.keys, append(jsonString(c.Name), ':'))
		r.order = append(r.order, i)
		r.isKey = append(r.isKey, c.Flags&1 != 0)
		if c.Flags&1 != 0 {
			keyNames = append(keyNames, c.Name)
		}
	}
	slices.SortStableFunc(r.order, func(a, b int) int {
		switch na, nb := names[a], names[b]; {
		case na < nb:
			return -1
		case na > nb:
			return 1
		}
		return 0
	})
	if len(keyNames) > 0 {
		r.keyCols = []byte(`"keyColumns":[`)
		for i, n := range keyNames {
			if i > 0 {
				r.keyCols = append(r.keyCols, ',')
			}
			r.keyCols = append(r.keyCols, jsonString(n)...)
		}
		r.keyCols = append(r.keyCols, ']')
	}
	d.relations[m.RelationID] = r
}

// position tells where the row change msg stands without encoding it: its table, commit LSN and
// index in the transaction. skip passes over it (its index is used up).
func (d *decoder) position(msg pglogrepl.Message) (table string, commitLSN uint64, index uint32, ok bool) {
	if d.tx == nil {
		return "", 0, 0, false
	}
	rel, ok := d.relations[relationID(msg)]
	if !ok {
		return "", 0, 0, false
	}
	return rel.table, uint64(d.tx.commitLSN), d.tx.next, true
}

func (d *decoder) skip() { d.tx.next++ }

func relationID(msg pglogrepl.Message) uint32 {
	switch m := msg.(type) {
	case *pglogrepl.InsertMessage:
		return m.RelationID
	case *pglogrepl.UpdateMessage:
		return m.RelationID
	case *pglogrepl.DeleteMessage:
		return m.RelationID
	}
	return 0
}

// change decodes an insert, update or delete message into an encoded event.
func (d *decoder) change(msg pglogrepl.Message) (Change, error) {
	if d.tx == nil {
		return Change{}, fmt.Errorf("row change outside a transaction (%s)", msg.Type())
	}
	var (
		relID    uint32
		op       eventsv1.RowChange_Op
		newTuple *pglogrepl.TupleData
		oldTuple *pglogrepl.TupleData
		oldType  uint8
	)
	switch m := msg.(type) {
	case *pglogrepl.InsertMessage:
		relID, op, newTuple = m.RelationID, eventsv1.RowChange_OP_INSERT, m.Tuple
	case *pglogrepl.UpdateMessage:
		relID, op, newTuple, oldTuple, oldType = m.RelationID, eventsv1.RowChange_OP_UPDATE, m.NewTuple, m.OldTuple, m.OldTupleType
	case *pglogrepl.DeleteMessage:
		relID, op, oldTuple, oldType = m.RelationID, eventsv1.RowChange_OP_DELETE, m.OldTuple, m.OldTupleType
	default:
		return Change{}, fmt.Errorf("not a row change: %s", msg.Type())
	}
	rel, ok := d.relations[relID]
	if !ok {
		return Change{}, fmt.Errorf("row change for unknown relation %d", relID)
	}
	if rel.err != nil {
		return Change{}, rel.err
	}
	tx := d.tx
	// Sized for this event alone: one large row must not enlarge the buffers of the small
	// events after it (each stays in memory until its PubAck).
	b := make([]byte, 0, rel.estimate(op, len(tx.tail), newTuple, oldTuple))
	b = append(b, rel.head[op]...)
	var err error
	if newTuple != nil {
		if b, err = rel.appendValues(b, `,"newValues":{`, newTuple, false); err != nil {
			return Change{}, err
		}
	}
	if oldTuple != nil {
		// A 'K' tuple carries the key columns only; the other columns in it are placeholders.
		if b, err = rel.appendValues(b, `,"oldValues":{`, oldTuple, oldType == 'K'); err != nil {
			return Change{}, err
		}
	}
	if len(rel.keyCols) > 0 {
		b = append(b, ',')
		b = append(b, rel.keyCols...)
	}
	b = append(b, ',')
	b = append(b, tx.tail...)
	if tx.next != 0 {
		b = append(b, `,"indexInTx":`...)
		b = strconv.AppendUint(b, uint64(tx.next), 10)
	}
	b = append(b, '}')
	c := Change{
		Subject:    rel.subject[op],
		ID:         events.ChangeID(uint64(tx.commitLSN), tx.next),
		Data:       b,
		Table:      rel.table,
		CommitLSN:  uint64(tx.commitLSN),
		CommitTime: tx.commitTime,
		Index:      tx.next,
		Xid:        tx.xid,
	}
	tx.next++
	return c, nil
}

func (d *decoder) commit() { d.tx = nil }

// estimate is the encoded size of a change, a little over for text that needs escaping.
func (r *relation) estimate(op eventsv1.RowChange_Op, tail int, tuples ...*pglogrepl.TupleData) int {
	n := len(r.head[op]) + len(r.keyCols) + tail + 64
	for _, td := range tuples {
		if td == nil {
			continue
		}
		n += 16
		for i, c := range td.Columns {
			if i < len(r.keys) {
				n += len(r.keys[i])
			}
			n += 24
			if c.DataType == pglogrepl.TupleDataTypeBinary {
				n += base64.StdEncoding.EncodedLen(len(c.Data))
			} else {
				n += len(c.Data) + len(c.Data)/32
			}
		}
	}
	return n
}

// appendValues writes a map<string, Value> field; protojson omits an empty map.
func (r *relation) appendValues(b []byte, field string, t *pglogrepl.TupleData, keyOnly bool) ([]byte, error) {
	if len(t.Columns) != len(r.keys) {
		return nil, fmt.Errorf("relation %s: tuple has %d columns, relation %d", r.table, len(t.Columns), len(r.keys))
	}
	start := len(b)
	b = append(b, field...)
	n := 0
	for _, i := range r.order {
		if keyOnly && !r.isKey[i] {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = append(b, r.keys[i]...)
		c := t.Columns[i]
		switch c.DataType {
		case pglogrepl.TupleDataTypeNull:
			b = append(b, `{"null":null}`...)
		case pglogrepl.TupleDataTypeToast:
			// The value exists but was not sent because it did not change: never report it as NULL.
			b = append(b, `{"unchangedToast":true}`...)
		case pglogrepl.TupleDataTypeText:
			b = append(b, `{"text":`...)
			b = appendJSONString(b, c.Data)
			b = append(b, '}')
		case pglogrepl.TupleDataTypeBinary:
			b = append(b, `{"binary":"`...)
			b = base64.StdEncoding.AppendEncode(b, c.Data)
			b = append(b, `"}`...)
		default:
			return nil, fmt.Errorf("relation %s column %s: unknown tuple data type %q", r.table, r.msg.Columns[i].Name, c.DataType)
		}
	}
	if n == 0 {
		return b[:start], nil
	}
	return append(b, '}'), nil
}

func jsonString(s string) []byte { return appendJSONString(nil, []byte(s)) }

// appendJSONString escapes like protojson: quote, backslash and control characters only. Invalid
// UTF-8 (impossible in a UTF8 database) becomes U+FFFD rather than wedging the relay.
func appendJSONString(b, s []byte) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, s[start:i]...)
				b = append(b, "\ufffd"...)
				i++
				start = i
				continue
			}
			i += size
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendTimestamp writes t as protojson writes a google.protobuf.Timestamp: RFC 3339 in UTC
// with 0, 3, 6 or 9 fractional digits.
func appendTimestamp(b []byte, t time.Time) []byte {
	t = t.UTC()
	ns := t.Nanosecond()
	switch {
	case ns == 0:
		return t.AppendFormat(b, "2006-01-02T15:04:05Z")
	case ns%1e6 == 0:
		return t.AppendFormat(b, "2006-01-02T15:04:05.000Z")
	case ns%1e3 == 0:
		return t.AppendFormat(b, "2006-01-02T15:04:05.000000Z")
	}
	return t.AppendFormat(b, "2006-01-02T15:04:05.000000000Z")
}
