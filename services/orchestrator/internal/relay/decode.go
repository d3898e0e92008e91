package relay

import (
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"cryptopill.dev/jobs/libs/events"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
)

// decoder turns pgoutput messages into RowChange events. It keeps the relations Postgres has
// described on this connection (they are sent again on every new connection and after DDL) and
// the transaction being decoded.
type decoder struct {
	relations map[uint32]*pglogrepl.RelationMessage
	tx        *txState
}

// txState is the transaction between its Begin and Commit messages.
type txState struct {
	commitLSN  pglogrepl.LSN
	commitTime time.Time
	xid        uint32
	next       uint32 // index of the next row change in the transaction
}

func newDecoder() *decoder {
	return &decoder{relations: map[uint32]*pglogrepl.RelationMessage{}}
}

// rowChange is a decoded row change and where it goes.
type rowChange struct {
	subject string
	id      string
	event   *eventsv1.RowChange
}

func (d *decoder) begin(m *pglogrepl.BeginMessage) {
	// Begin's final LSN is the LSN of the transaction's commit record: the change ids can be
	// derived before the Commit message arrives, so a large transaction streams out as it decodes.
	d.tx = &txState{commitLSN: m.FinalLSN, commitTime: m.CommitTime, xid: m.Xid}
}

func (d *decoder) relation(m *pglogrepl.RelationMessage) {
	d.relations[m.RelationID] = m
}

// change decodes an insert, update or delete message.
func (d *decoder) change(msg pglogrepl.Message) (rowChange, error) {
	if d.tx == nil {
		return rowChange{}, fmt.Errorf("row change outside a transaction (%s)", msg.Type())
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
		return rowChange{}, fmt.Errorf("not a row change: %s", msg.Type())
	}
	rel, ok := d.relations[relID]
	if !ok {
		return rowChange{}, fmt.Errorf("row change for unknown relation %d", relID)
	}
	ev := &eventsv1.RowChange{
		Schema:     rel.Namespace,
		Table:      rel.RelationName,
		Op:         op,
		CommitLsn:  uint64(d.tx.commitLSN),
		CommitTime: timestamppb.New(d.tx.commitTime),
		Xid:        d.tx.xid,
		IndexInTx:  d.tx.next,
	}
	for _, c := range rel.Columns {
		if c.Flags&1 != 0 {
			ev.KeyColumns = append(ev.KeyColumns, c.Name)
		}
	}
	var err error
	if newTuple != nil {
		if ev.NewValues, err = values(rel, newTuple, false); err != nil {
			return rowChange{}, err
		}
	}
	if oldTuple != nil {
		// A 'K' tuple carries the key columns only; the other columns in it are placeholders.
		if ev.OldValues, err = values(rel, oldTuple, oldType == 'K'); err != nil {
			return rowChange{}, err
		}
	}
	d.tx.next++
	return rowChange{
		subject: events.ChangeSubject(rel.Namespace, rel.RelationName, op),
		id:      events.ChangeID(ev.CommitLsn, ev.IndexInTx),
		event:   ev,
	}, nil
}

func (d *decoder) commit() { d.tx = nil }

func values(rel *pglogrepl.RelationMessage, t *pglogrepl.TupleData, keyOnly bool) (map[string]*eventsv1.Value, error) {
	if len(t.Columns) != len(rel.Columns) {
		return nil, fmt.Errorf("relation %s.%s: tuple has %d columns, relation %d", rel.Namespace, rel.RelationName, len(t.Columns), len(rel.Columns))
	}
	out := make(map[string]*eventsv1.Value, len(t.Columns))
	for i, c := range t.Columns {
		col := rel.Columns[i]
		if keyOnly && col.Flags&1 == 0 {
			continue
		}
		var v *eventsv1.Value
		switch c.DataType {
		case pglogrepl.TupleDataTypeNull:
			v = &eventsv1.Value{Kind: &eventsv1.Value_Null{Null: structpb.NullValue_NULL_VALUE}}
		case pglogrepl.TupleDataTypeToast:
			// The value exists but was not sent because it did not change: never report it as NULL.
			v = &eventsv1.Value{Kind: &eventsv1.Value_UnchangedToast{UnchangedToast: true}}
		case pglogrepl.TupleDataTypeText:
			v = &eventsv1.Value{Kind: &eventsv1.Value_Text{Text: string(c.Data)}}
		case pglogrepl.TupleDataTypeBinary:
			v = &eventsv1.Value{Kind: &eventsv1.Value_Binary{Binary: c.Data}}
		default:
			return nil, fmt.Errorf("relation %s.%s column %s: unknown tuple data type %q", rel.Namespace, rel.RelationName, col.Name, c.DataType)
		}
		out[col.Name] = v
	}
	return out, nil
}
