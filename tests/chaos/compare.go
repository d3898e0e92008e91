package main

import (
	"fmt"
	"strings"
)

// committedChange is one row change Postgres committed to a relayed table, as the audit slot
// decoded it: its event id (events.ChangeID of commit LSN and index in the transaction), its table
// and its position in commit order.
type committedChange struct {
	ID    string
	Table string // schema.table
	Pos   int    // 0-based position in commit order (transactions in commit order, rows in tx order)
}

// streamMsg is one message stored in CP_CDC, in stream order.
type streamMsg struct {
	Seq     uint64
	Subject string // cp.cdc.<schema>.<table>.<op>
	ID      string // Nats-Msg-Id
}

// changeCounts is what the change audit found.
type changeCounts struct {
	Committed int // changes Postgres committed
	Stored    int // messages in CP_CDC (after JetStream's de-duplication)
	Lost      int // committed changes with no message
	// Duplicates are messages beyond the first with the same id: stored twice despite the
	// duplicate window.
	Duplicates int
	// Reordered are messages stored after a message of the same table that was committed later.
	Reordered int
	// Unmatched are messages whose id no committed change has (a wrong id, or a change of a
	// table the audit slot does not see). Zero unless the relay invents or mislabels events.
	Unmatched int
	// Examples are a few unmatched, duplicated or reordered messages, for the report;
	// ExampleSeqs their stream sequences.
	Examples    []string
	ExampleSeqs []uint64
}

const maxExamples = 3

func (c *changeCounts) example(kind string, m streamMsg) {
	if len(c.Examples) < maxExamples {
		c.Examples = append(c.Examples, fmt.Sprintf("%s seq=%d %s id=%s", kind, m.Seq, m.Subject, m.ID))
		c.ExampleSeqs = append(c.ExampleSeqs, m.Seq)
	}
}

// tableOfSubject maps cp.cdc.<schema>.<table>.<op> to schema.table.
func tableOfSubject(subject string) string {
	parts := strings.Split(subject, ".")
	if len(parts) != 5 || parts[0] != "cp" || parts[1] != "cdc" {
		return ""
	}
	return parts[2] + "." + parts[3]
}

// compareChanges audits CP_CDC against what was committed: every committed change stored exactly
// once and, per table, in commit order. A message's order is judged by its first copy; a message
// counts as reordered when a message of the same table stored before it was committed after it.
func compareChanges(committed []committedChange, stored []streamMsg) changeCounts {
	c := changeCounts{Committed: len(committed), Stored: len(stored)}
	byID := make(map[string]committedChange, len(committed))
	for _, ch := range committed {
		byID[ch.ID] = ch
	}
	seen := make(map[string]bool, len(stored))
	maxPos := map[string]int{} // per table, the latest commit position stored so far
	for _, m := range stored {
		if seen[m.ID] {
			c.Duplicates++
			c.example("duplicate", m)
			continue
		}
		seen[m.ID] = true
		ch, ok := byID[m.ID]
		if !ok {
			c.Unmatched++
			c.example("unmatched", m)
			continue
		}
		table := ch.Table
		if t := tableOfSubject(m.Subject); t != "" && t != table {
			// Same id under another table's subject: the event is mislabelled.
			c.Unmatched++
			c.example("mislabelled (committed to "+table+")", m)
			continue
		}
		if last, ok := maxPos[table]; ok && ch.Pos < last {
			c.Reordered++
			c.example("reordered", m)
			continue
		}
		maxPos[table] = ch.Pos
	}
	for _, ch := range committed {
		if !seen[ch.ID] {
			c.Lost++
		}
	}
	return c
}
