package relay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/jackc/pglogrepl"
)

// parseMessage parses one pgoutput message like pglogrepl.Parse, but a malformed message is an
// error naming what was wrong, never a panic, a huge allocation or an event consumers cannot
// decode. pglogrepl trusts the lengths inside a message: a truncated one indexes past its end,
// and a tuple column or TRUNCATE relation count claiming more than was sent is allocated first.
// Postgres sends neither; a bug or a corrupted stream must stop the relay with a clear error.
func parseMessage(data []byte) (msg pglogrepl.Message, err error) {
	if len(data) == 0 {
		return nil, errors.New("empty pgoutput message")
	}
	typ := pglogrepl.MessageType(data[0])
	if err := checkLengths(typ, data[1:]); err != nil {
		return nil, fmt.Errorf("pgoutput %s message (%d bytes): %w", typ, len(data), err)
	}
	defer func() {
		if r := recover(); r != nil {
			re, ok := r.(runtime.Error)
			if !ok {
				panic(r)
			}
			msg, err = nil, fmt.Errorf("pgoutput %s message (%d bytes): truncated: %v", typ, len(data), re)
		}
	}()
	if msg, err = pglogrepl.Parse(data); err != nil {
		return nil, fmt.Errorf("pgoutput %s message (%d bytes): %w", typ, len(data), err)
	}
	switch m := msg.(type) {
	case *pglogrepl.RelationMessage:
		if err := checkRelationName(m.Namespace, m.RelationName); err != nil {
			return nil, fmt.Errorf("pgoutput relation %d: %w", m.RelationID, err)
		}
		// Column names become JSON object keys: a repeated one would make the event's
		// newValues/oldValues an object consumers reject.
		seen := make(map[string]bool, len(m.Columns))
		for _, c := range m.Columns {
			if seen[c.Name] {
				return nil, fmt.Errorf("pgoutput relation %d %s.%s: column %q twice", m.RelationID, m.Namespace, m.RelationName, c.Name)
			}
			seen[c.Name] = true
		}
	case *pglogrepl.BeginMessage:
		// LSN 0 is no position (InvalidXLogRecPtr): change ids derive from it.
		if m.FinalLSN == 0 {
			return nil, fmt.Errorf("pgoutput begin of xid %d: final LSN 0", m.Xid)
		}
	}
	return msg, nil
}

// checkLengths checks the lengths pglogrepl would trust before allocating: every tuple column's
// and a TRUNCATE's relation count must fit in what was sent. Other truncations only index past
// the end, which parseMessage recovers from.
func checkLengths(typ pglogrepl.MessageType, src []byte) error {
	switch typ {
	case pglogrepl.MessageTypeInsert: // relation id, 'N', tuple
		if len(src) < 5 {
			return errTruncated
		}
		_, err := tupleEnd(src[5:])
		return err
	case pglogrepl.MessageTypeUpdate: // relation id, ['K'|'O' tuple], 'N', tuple
		if len(src) < 5 {
			return errTruncated
		}
		rest := src[5:]
		if src[4] == 'K' || src[4] == 'O' {
			n, err := tupleEnd(rest)
			if err != nil {
				return err
			}
			if n+1 > len(rest) {
				return errTruncated
			}
			rest = rest[n+1:]
		}
		_, err := tupleEnd(rest)
		return err
	case pglogrepl.MessageTypeDelete: // relation id, 'K'|'O', tuple
		if len(src) < 5 {
			return errTruncated
		}
		_, err := tupleEnd(src[5:])
		return err
	case pglogrepl.MessageTypeTruncate: // relation count, options, ids
		if len(src) >= 5 && uint64(binary.BigEndian.Uint32(src))*4 > uint64(len(src)-5) {
			return fmt.Errorf("%d relations in %d bytes", binary.BigEndian.Uint32(src), len(src)-5)
		}
	}
	return nil
}

var errTruncated = errors.New("truncated")

// checkRelationName refuses a schema or table name that cannot be a subject token of
// cp.cdc.<schema>.<table>.<op> (empty, or with a dot, a wildcard or white space): its events
// would be refused by the publisher or, for a dot, routed as another table's.
func checkRelationName(schema, table string) error {
	for _, n := range []string{schema, table} {
		if n == "" || strings.ContainsAny(n, ".*> \t\r\n") {
			return fmt.Errorf("relation %q.%q: name is not a subject token", schema, table)
		}
	}
	return nil
}

// tupleEnd is the length of the TupleData at the start of src.
func tupleEnd(src []byte) (int, error) {
	if len(src) < 2 {
		return 0, errTruncated
	}
	n, low := int(binary.BigEndian.Uint16(src)), 2
	for i := range n {
		if low >= len(src) {
			return 0, fmt.Errorf("tuple column %d of %d: %w", i, n, errTruncated)
		}
		kind := src[low]
		low++
		if kind != pglogrepl.TupleDataTypeText && kind != pglogrepl.TupleDataTypeBinary {
			continue
		}
		if len(src)-low < 4 {
			return 0, fmt.Errorf("tuple column %d of %d: %w", i, n, errTruncated)
		}
		size := uint64(binary.BigEndian.Uint32(src[low:]))
		low += 4
		if size > uint64(len(src)-low) {
			return 0, fmt.Errorf("tuple column %d of %d: %d bytes, %d sent", i, n, size, len(src)-low)
		}
		low += int(size)
	}
	return low, nil
}
