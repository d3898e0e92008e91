package relay

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	"cryptopill.dev/jobs/libs/events"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
)

// canonical is libs/events' payload encoding: protojson, compacted.
func canonical(t *testing.T, rc *eventsv1.RowChange) []byte {
	raw, err := protojson.Marshal(rc)
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, json.Compact(&buf, raw))
	return buf.Bytes()
}

func text(s string) *pglogrepl.TupleDataColumn {
	return &pglogrepl.TupleDataColumn{DataType: pglogrepl.TupleDataTypeText, Length: uint32(len(s)), Data: []byte(s)}
}

func TestEncodingIsProtojsonByteForByte(t *testing.T) {
	t.Parallel()
	d := newDecoder()
	d.relation(&pglogrepl.RelationMessage{RelationID: 7, Namespace: "cin_aux", RelationName: "rt_session", Columns: []*pglogrepl.RelationMessageColumn{
		{Name: "session_id", Flags: 1}, {Name: "label"}, {Name: "status"}, {Name: "Zeta"}, {Name: "blob"}, {Name: "a_null"},
	}})
	nasty := "quote\" backslash\\ nl\n tab\t cr\r bs\b ff\f nul\x00 us\x1f del\x7f <&> é ✓ 😀 \u2028"
	row := func(label string) *pglogrepl.TupleData {
		return &pglogrepl.TupleData{Columns: []*pglogrepl.TupleDataColumn{
			text("42"), text(label), text("OPEN"), text(""),
			{DataType: pglogrepl.TupleDataTypeBinary, Data: []byte{0, 1, 2, 250}},
			{DataType: pglogrepl.TupleDataTypeNull},
		}}
	}
	toast := row("")
	toast.Columns[1] = &pglogrepl.TupleDataColumn{DataType: pglogrepl.TupleDataTypeToast}

	for _, commit := range []time.Time{
		time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 123000000, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.FixedZone("x", 3600)),
		time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC),
	} {
		d.begin(&pglogrepl.BeginMessage{FinalLSN: 0x1_0000_00AB, CommitTime: commit, Xid: 991})
		for i, msg := range []pglogrepl.Message{
			&pglogrepl.InsertMessage{RelationID: 7, Tuple: row(nasty)},
			&pglogrepl.UpdateMessage{RelationID: 7, OldTupleType: 'O', OldTuple: row("old"), NewTuple: toast},
			&pglogrepl.UpdateMessage{RelationID: 7, OldTupleType: 'K', OldTuple: row("ignored"), NewTuple: row("new")},
			&pglogrepl.UpdateMessage{RelationID: 7, NewTuple: row("no old")},
			&pglogrepl.DeleteMessage{RelationID: 7, OldTupleType: 'K', OldTuple: row("ignored")},
		} {
			c, err := d.change(msg)
			require.NoError(t, err)
			var rc eventsv1.RowChange
			require.NoError(t, protojson.Unmarshal(c.Data, &rc), "%s", c.Data)
			require.Equal(t, string(canonical(t, &rc)), string(c.Data))
			require.Equal(t, uint32(i), rc.IndexInTx)
			require.Equal(t, uint64(0x1_0000_00AB), rc.CommitLsn)
			require.Equal(t, uint32(991), rc.Xid)
			require.True(t, commit.Equal(rc.CommitTime.AsTime()))
			require.Equal(t, []string{"session_id"}, rc.KeyColumns)
			require.Equal(t, events.ChangeID(rc.CommitLsn, rc.IndexInTx), c.ID)
			require.Equal(t, "cin_aux.rt_session", c.Table)
			switch i {
			case 0:
				require.Equal(t, "cp.cdc.cin_aux.rt_session.insert", c.Subject)
				require.Equal(t, nasty, rc.NewValues["label"].GetText())
				require.Equal(t, []byte{0, 1, 2, 250}, rc.NewValues["blob"].GetBinary())
				_, isNull := rc.NewValues["a_null"].Kind.(*eventsv1.Value_Null)
				require.True(t, isNull)
				_, isText := rc.NewValues["Zeta"].Kind.(*eventsv1.Value_Text)
				require.True(t, isText, "an empty string is text, not NULL")
				require.Empty(t, rc.OldValues)
			case 1:
				require.True(t, rc.NewValues["label"].GetUnchangedToast())
				require.Equal(t, "old", rc.OldValues["label"].GetText())
			case 2:
				require.Equal(t, map[string]string{"session_id": "42"}, texts(rc.OldValues), "a key tuple gives key columns only")
			case 3:
				require.Empty(t, rc.OldValues)
			case 4:
				require.Equal(t, "cp.cdc.cin_aux.rt_session.delete", c.Subject)
				require.Empty(t, rc.NewValues)
				require.Equal(t, map[string]string{"session_id": "42"}, texts(rc.OldValues))
			}
		}
		d.commit()
	}
}

func texts(m map[string]*eventsv1.Value) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v.GetText()
	}
	return out
}

func TestInvalidUTF8DoesNotWedgeTheRelay(t *testing.T) {
	t.Parallel()
	got := appendJSONString(nil, []byte("a\xffb"))
	require.Equal(t, "\"a\ufffdb\"", string(got))
}

func BenchmarkDecodeAndEncode(b *testing.B) {
	d := newDecoder()
	cols := []*pglogrepl.RelationMessageColumn{}
	tuple := &pglogrepl.TupleData{}
	for _, n := range []string{"symbol", "trade_id", "order_id", "order_list_id", "price", "qty", "quote_qty", "commission", "commission_asset", "trade_time", "is_buyer", "is_maker", "is_best_match", "account_scope", "raw", "fetched_at"} {
		cols = append(cols, &pglogrepl.RelationMessageColumn{Name: n})
		tuple.Columns = append(tuple.Columns, text("2026-11-27 02:25:18.123456+00"))
	}
	d.relation(&pglogrepl.RelationMessage{RelationID: 1, Namespace: "market", RelationName: "account_trades", Columns: cols})
	d.begin(&pglogrepl.BeginMessage{FinalLSN: 123456789, CommitTime: time.Now(), Xid: 5})
	msg := &pglogrepl.InsertMessage{RelationID: 1, Tuple: tuple}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.change(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// Every event's buffer is sized for that event: a large row must not enlarge the buffers of the
// small ones after it (each stays in memory until its PubAck: 8,192 small events with the
// capacity of one 900 KB row are gigabytes).
func TestEventBuffersAreSizedPerEvent(t *testing.T) {
	t.Parallel()
	d := newDecoder()
	d.relation(&pglogrepl.RelationMessage{RelationID: 7, Namespace: "cin_aux", RelationName: "rt_session", Columns: []*pglogrepl.RelationMessageColumn{
		{Name: "session_id", Flags: 1}, {Name: "label"},
	}})
	d.begin(&pglogrepl.BeginMessage{FinalLSN: 0x10, CommitTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Xid: 9})
	row := func(label string) pglogrepl.Message {
		return &pglogrepl.InsertMessage{RelationID: 7, Tuple: &pglogrepl.TupleData{Columns: []*pglogrepl.TupleDataColumn{text("1"), text(label)}}}
	}
	big, err := d.change(row(string(bytes.Repeat([]byte("x"), 900_000))))
	require.NoError(t, err)
	require.GreaterOrEqual(t, cap(big.Data), len(big.Data))
	require.Less(t, cap(big.Data), len(big.Data)*11/10, "the large event's buffer is its own size, not more")
	for _, label := range []string{"small", `with "quotes" \ and ` + "\n\t control"} {
		small, err := d.change(row(label))
		require.NoError(t, err)
		require.Less(t, cap(small.Data), 2*len(small.Data)+512, "a small event after a large one: %d bytes in a %d-byte buffer", len(small.Data), cap(small.Data))
	}
}
