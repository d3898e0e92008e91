package db_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/db"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
)

// A slot nobody reads shows in ops.replication_slots, and so in the exported metrics, with the
// WAL it holds back growing.
func TestReplicationSlotsViewAndMetrics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := pgtest.NewDB(t)
	slot := "cp_test_" + d.Name
	_, err := d.Pool.Exec(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, slot)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = d.Pool.Exec(context.Background(), `SELECT pg_drop_replication_slot($1)`, slot) })
	// Random text, so the WAL cannot shrink by compression: well over 200 kB whatever else the
	// test cluster is doing (a repeated character compressed to about 100 kB).
	_, err = d.Pool.Exec(ctx, `INSERT INTO cin_aux.rt_session (label)
		SELECT (SELECT string_agg(md5(random()::text || g || i), '') FROM generate_series(1, 32) AS i) FROM generate_series(1, 400) AS g`)
	require.NoError(t, err)

	slots, err := db.ReplicationSlots(ctx, d.Pool)
	require.NoError(t, err)
	var s *db.ReplicationSlot
	for i := range slots {
		if slots[i].Slot == slot {
			s = &slots[i]
		}
	}
	require.NotNil(t, s, "slot %s in %v", slot, slots)
	require.False(t, s.Active)
	require.Equal(t, "reserved", s.WALStatus)
	require.NotNil(t, s.RetainedBytes)
	require.Greater(t, *s.RetainedBytes, int64(200_000), "the inserts' WAL is retained")
	require.NotNil(t, s.ConfirmedLagBytes)
	require.Greater(t, *s.ConfirmedLagBytes, int64(200_000))

	reg := prometheus.NewRegistry()
	reg.MustRegister(db.NewSlotCollector(d.Pool, nil))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	require.Subset(t, names, []string{"cp_postgres_replication_slot_active", "cp_postgres_replication_slot_retained_bytes",
		"cp_postgres_replication_slot_confirmed_lag_bytes", "cp_postgres_replication_slot_wal_status"})
	want := `
# HELP cp_postgres_replication_slot_active 1 while a client streams from the slot.
# TYPE cp_postgres_replication_slot_active gauge
cp_postgres_replication_slot_active{slot="` + slot + `"} 0
`
	require.NoError(t, testutil.GatherAndCompare(filtered{reg, slot}, strings.NewReader(want), "cp_postgres_replication_slot_active"))
}

// filtered keeps one slot's samples: the test cluster holds other tests' slots too.
type filtered struct {
	g    prometheus.Gatherer
	slot string
}

func (f filtered) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := f.g.Gather()
	for _, mf := range mfs {
		var keep []*dto.Metric
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "slot" && l.GetValue() == f.slot {
					keep = append(keep, m)
				}
			}
		}
		mf.Metric = keep
	}
	return mfs, err
}
