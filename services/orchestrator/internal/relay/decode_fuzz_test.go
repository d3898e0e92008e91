package relay

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pglogrepl"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	"cryptopill.dev/jobs/libs/events"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
)

// pgoutput messages as Postgres writes them (protocol version 1), for the seeds.

func pgString(b []byte, s string) []byte { return append(append(b, s...), 0) }

func encRelation(id uint32, ns, name string, cols []string, keys uint64) []byte {
	b := binary.BigEndian.AppendUint32([]byte{'R'}, id)
	b = pgString(b, ns)
	b = pgString(b, name)
	b = append(b, 'd')
	b = binary.BigEndian.AppendUint16(b, uint16(len(cols)))
	for i, c := range cols {
		b = append(b, byte(keys>>uint(i%64))&1)
		b = pgString(b, c)
		b = binary.BigEndian.AppendUint32(b, 25) // text
		b = binary.BigEndian.AppendUint32(b, 0xffffffff)
	}
	return b
}

// pgEpoch is where pgoutput's microsecond timestamps count from.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func encBegin(lsn uint64, at time.Time, xid uint32) []byte {
	b := binary.BigEndian.AppendUint64([]byte{'B'}, lsn)
	b = binary.BigEndian.AppendUint64(b, uint64(at.Sub(pgEpoch).Microseconds()))
	return binary.BigEndian.AppendUint32(b, xid)
}

// tupleCol is one column of a tuple: kind 'n', 'u', 't' or 'b'.
type tupleCol struct {
	kind byte
	data string
}

func encTuple(b []byte, cols []tupleCol) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(cols)))
	for _, c := range cols {
		b = append(b, c.kind)
		if c.kind == 't' || c.kind == 'b' {
			b = binary.BigEndian.AppendUint32(b, uint32(len(c.data)))
			b = append(b, c.data...)
		}
	}
	return b
}

func encInsert(rel uint32, cols []tupleCol) []byte {
	return encTuple(append(binary.BigEndian.AppendUint32([]byte{'I'}, rel), 'N'), cols)
}

func encUpdate(rel uint32, oldType byte, old, cols []tupleCol) []byte {
	b := binary.BigEndian.AppendUint32([]byte{'U'}, rel)
	if oldType != 0 {
		b = encTuple(append(b, oldType), old)
	}
	return encTuple(append(b, 'N'), cols)
}

func encDelete(rel uint32, oldType byte, old []tupleCol) []byte {
	return encTuple(append(binary.BigEndian.AppendUint32([]byte{'D'}, rel), oldType), old)
}

var (
	seedCols  = []string{"session_id", "label", "status", "blob", "a_null"}
	seedRow   = []tupleCol{{'t', "42"}, {'t', "quote\" nl\n nul\x00 é 😀 \xff"}, {'t', "OPEN"}, {'b', "\x00\x01\xfa"}, {'n', ""}}
	seedToast = []tupleCol{{'t', "42"}, {'u', ""}, {'t', "CLOSED"}, {'b', ""}, {'n', ""}}
	seedBegin = encBegin(0x1_0000_00AB, time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC), 991)
)

// checkChange holds every change the decoder produces to the envelope's contract: the payload
// is protojson of a RowChange, byte for byte what libs/events would write, and its id is the
// change id of its commit LSN and index.
func checkChange(t *testing.T, c Change) *eventsv1.RowChange {
	t.Helper()
	var rc eventsv1.RowChange
	require.NoError(t, protojson.Unmarshal(c.Data, &rc), "%q", c.Data)
	require.Equal(t, string(canonical(t, &rc)), string(c.Data))
	require.Equal(t, events.ChangeID(rc.CommitLsn, rc.IndexInTx), c.ID)
	require.Equal(t, c.CommitLSN, rc.CommitLsn)
	require.Equal(t, c.Index, rc.IndexInTx)
	require.True(t, c.CommitTime.Equal(rc.CommitTime.AsTime()))
	return &rc
}

// FuzzParseChange feeds three raw pgoutput messages (normally a relation, a begin and a row
// change) through parseMessage and the decoder, as the relay's stream does. Nothing panics or
// allocates what was not sent; a malformed message is an error; every change decoded is a valid
// RowChange event.
func FuzzParseChange(f *testing.F) {
	rel := encRelation(7, "cin_aux", "rt_session", seedCols, 1)
	f.Add(rel, seedBegin, encInsert(7, seedRow))
	f.Add(rel, seedBegin, encUpdate(7, 'O', seedRow, seedToast))
	f.Add(rel, seedBegin, encUpdate(7, 'K', seedRow, seedRow))
	f.Add(rel, seedBegin, encUpdate(7, 0, nil, seedRow))
	f.Add(rel, seedBegin, encDelete(7, 'K', seedRow))
	f.Add(rel, seedBegin, encDelete(7, 'O', seedRow))
	f.Add(rel, encBegin(1, pgEpoch, 0), encInsert(7, seedRow))
	f.Add(rel, encBegin(0, pgEpoch, 5), encInsert(7, seedRow))
	// Bad input: unknown relation, no transaction, truncated, a tuple of the wrong width, a
	// length past the end, an unknown column kind, duplicate columns, an unrepresentable time.
	f.Add(rel, seedBegin, encInsert(8, seedRow))
	f.Add(rel, []byte{'C'}, encInsert(7, seedRow))
	f.Add(rel[:len(rel)-3], seedBegin[:10], encInsert(7, seedRow)[:12])
	f.Add(rel, seedBegin, encInsert(7, seedRow[:3]))
	f.Add(rel, seedBegin, []byte{'I', 0, 0, 0, 7, 'N', 0, 1, 't', 0xff, 0xff, 0xff, 0xff, 'x'})
	f.Add(rel, seedBegin, encInsert(7, []tupleCol{{'t', "1"}, {'x', ""}, {'t', ""}, {'n', ""}, {'n', ""}}))
	f.Add(encRelation(7, "s", "t", []string{"a", "a"}, 0), seedBegin, encInsert(7, []tupleCol{{'t', "1"}, {'t', "2"}}))
	f.Add(rel, append([]byte{'B'}, make([]byte, 8)...), encInsert(7, seedRow))
	f.Add(rel, []byte{'B', 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1}, encInsert(7, seedRow))
	f.Add([]byte{'T', 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 7}, []byte{}, []byte{'Y'})
	f.Fuzz(func(t *testing.T, relation, begin, change []byte) {
		d := newDecoder()
		for _, data := range [][]byte{relation, begin, change} {
			msg, err := parseMessage(data)
			if err != nil {
				require.NotEmpty(t, err.Error())
				continue
			}
			switch m := msg.(type) {
			case *pglogrepl.RelationMessage:
				d.relation(m)
			case *pglogrepl.BeginMessage:
				d.begin(m)
			case *pglogrepl.InsertMessage, *pglogrepl.UpdateMessage, *pglogrepl.DeleteMessage:
				c, err := d.change(m)
				if err != nil {
					require.NotEmpty(t, err.Error())
					continue
				}
				checkChange(t, c)
			case *pglogrepl.CommitMessage:
				d.commit()
			}
		}
	})
}

// FuzzDecodeTuple builds a relation and one row change from fuzzed names, key flags and column
// values (each value's first byte picks NULL, unchanged TOAST, text or binary) and checks that
// the event carries exactly those values: text as UTF-8 (invalid bytes as U+FFFD), binary
// byte for byte, NULL and TOAST as themselves, a key tuple's key columns only.
func FuzzDecodeTuple(f *testing.F) {
	f.Add("cin_aux", "rt_session", "session_id,label,status", uint64(1), "t42|tlabel|bOPEN", byte('I'), int64(0))
	f.Add("market", "account_trades", "symbol,trade_id,raw", uint64(3), "tBTCUSDT|t17|t{\"a\":1}", byte('K'), int64(1))
	f.Add("s", "t", "a,b", uint64(0), "n|u", byte('O'), int64(-1))
	f.Add("s", "t", "é,😀,\x00x,\"q\"", uint64(15), "t\xff\xfe|t\u2028|b\x00\x01|t\\", byte('D'), int64(1<<40))
	f.Add("s", "t", "a", uint64(1), "xnope", byte('I'), int64(0))
	f.Add("s", "t", "a,b", uint64(1), "t1", byte('U'), int64(0))
	f.Fuzz(func(t *testing.T, ns, table, names string, keys uint64, values string, op byte, commitMicros int64) {
		if checkRelationName(ns, table) != nil {
			return // parseMessage refuses the relation
		}
		cols := strings.Split(names, ",")
		seen := map[string]bool{}
		for _, c := range cols {
			if seen[c] {
				return // Postgres never describes a relation with a column twice (parseMessage refuses it)
			}
			seen[c] = true
		}
		rm := &pglogrepl.RelationMessage{RelationID: 1, Namespace: ns, RelationName: table}
		for i, c := range cols {
			rm.Columns = append(rm.Columns, &pglogrepl.RelationMessageColumn{Name: c, Flags: uint8(keys>>uint(i%64)) & 1})
		}
		tuple := &pglogrepl.TupleData{}
		for _, v := range strings.Split(values, "|") {
			c := &pglogrepl.TupleDataColumn{DataType: 't'}
			if v != "" {
				c.DataType, c.Data = v[0], []byte(v[1:])
			}
			c.Length = uint32(len(c.Data))
			tuple.Columns = append(tuple.Columns, c)
		}
		d := newDecoder()
		d.relation(rm)
		at := pgEpoch.Add(time.Duration(commitMicros%(1<<50)) * time.Microsecond) // ±35 years
		// A commit LSN is never 0 (parseMessage refuses it).
		d.begin(&pglogrepl.BeginMessage{FinalLSN: pglogrepl.LSN(keys | 1), CommitTime: at, Xid: uint32(commitMicros)})
		var msg pglogrepl.Message
		switch op % 4 {
		case 0:
			msg = &pglogrepl.InsertMessage{RelationID: 1, Tuple: tuple}
		case 1:
			msg = &pglogrepl.UpdateMessage{RelationID: 1, OldTupleType: 'K', OldTuple: tuple, NewTuple: tuple}
		case 2:
			msg = &pglogrepl.UpdateMessage{RelationID: 1, OldTupleType: 'O', OldTuple: tuple, NewTuple: tuple}
		default:
			msg = &pglogrepl.DeleteMessage{RelationID: 1, OldTupleType: 'K', OldTuple: tuple}
		}
		c, err := d.change(msg)
		// Two names that differ only in invalid UTF-8 bytes are one key in the event: refused.
		byValid := map[string]bool{}
		dupValid := false
		for _, rc := range rm.Columns {
			dupValid = dupValid || byValid[valid(rc.Name)]
			byValid[valid(rc.Name)] = true
		}
		if dupValid {
			require.Error(t, err)
			require.Contains(t, err.Error(), "once made valid UTF-8")
			return
		}
		wrongWidth := len(tuple.Columns) != len(cols)
		// A key tuple's other columns are placeholders the decoder never reads; every other
		// column it writes, and an unknown kind there is an error.
		_, deleteByKey := msg.(*pglogrepl.DeleteMessage)
		unknownKind := false
		for i, col := range tuple.Columns {
			read := !deleteByKey || (i < len(rm.Columns) && rm.Columns[i].Flags&1 != 0)
			unknownKind = unknownKind || (read && !strings.ContainsRune("nutb", rune(col.DataType)))
		}
		if wrongWidth || unknownKind {
			require.Error(t, err, "width %d of %d, unknown kind %v", len(tuple.Columns), len(cols), unknownKind)
			require.Contains(t, err.Error(), ns+"."+table)
			return
		}
		require.NoError(t, err)
		rc := checkChange(t, c)
		require.Equal(t, valid(ns), rc.Schema)
		require.Equal(t, valid(table), rc.Table)
		want := func(keyOnly bool) map[string]*eventsv1.Value {
			out := map[string]*eventsv1.Value{}
			for i, col := range tuple.Columns {
				if keyOnly && rm.Columns[i].Flags&1 == 0 {
					continue
				}
				v := &eventsv1.Value{}
				switch col.DataType {
				case 'n':
					v.Kind = &eventsv1.Value_Null{}
				case 'u':
					v.Kind = &eventsv1.Value_UnchangedToast{UnchangedToast: true}
				case 't':
					v.Kind = &eventsv1.Value_Text{Text: valid(string(col.Data))}
				case 'b':
					v.Kind = &eventsv1.Value_Binary{Binary: col.Data}
				}
				out[valid(cols[i])] = v
			}
			return out
		}
		same := func(want, got map[string]*eventsv1.Value) {
			t.Helper()
			require.Len(t, got, len(want))
			for k, w := range want {
				g := got[k]
				require.NotNil(t, g, "column %q", k)
				require.Equal(t, w.GetText(), g.GetText(), "column %q", k)
				require.Equal(t, len(w.GetBinary()), len(g.GetBinary()), "column %q", k)
				if len(w.GetBinary()) > 0 {
					require.Equal(t, w.GetBinary(), g.GetBinary(), "column %q", k)
				}
				require.Equal(t, w.GetUnchangedToast(), g.GetUnchangedToast(), "column %q", k)
				_, wn := w.Kind.(*eventsv1.Value_Null)
				_, gn := g.Kind.(*eventsv1.Value_Null)
				require.Equal(t, wn, gn, "column %q", k)
			}
		}
		switch m := msg.(type) {
		case *pglogrepl.InsertMessage:
			same(want(false), rc.NewValues)
			require.Empty(t, rc.OldValues)
		case *pglogrepl.UpdateMessage:
			same(want(false), rc.NewValues)
			same(want(m.OldTupleType == 'K'), rc.OldValues)
		case *pglogrepl.DeleteMessage:
			require.Empty(t, rc.NewValues)
			same(want(true), rc.OldValues)
		}
	})
}

// valid is s with each invalid UTF-8 byte replaced by U+FFFD, as the decoder writes it.
func valid(s string) string {
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
