package pgtest

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// Querier is what SlotStreaming reads through: a *pgxpool.Pool or a *pgx.Conn.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// SlotStreaming reports whether a walsender streams from slot, not merely a backend creating it
// (a slot shows active while pg_create_logical_replication_slot runs). Rows committed before a
// relay streams from a new slot are never relayed, so tests wait for this before committing.
func SlotStreaming(ctx context.Context, q Querier, slot string) bool {
	var streaming bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = $1)`, slot).Scan(&streaming)
	return err == nil && streaming
}
