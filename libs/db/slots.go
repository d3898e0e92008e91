package db

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// ReplicationSlot is one row of ops.replication_slots.
type ReplicationSlot struct {
	Slot   string
	Active bool
	// WALStatus is reserved, extended, unreserved or lost ("" when Postgres reports none).
	WALStatus string
	// RetainedBytes is the WAL the slot holds back (nil once lost); SafeWALBytes what may still
	// be written before it is lost (nil without max_slot_wal_keep_size); ConfirmedLagBytes how
	// far its confirmed position trails the current one (nil for a physical slot).
	RetainedBytes, SafeWALBytes, ConfirmedLagBytes *int64
}

//go:embed replication_slots.sql
var replicationSlotsSQL string

// ReplicationSlots reads ops.replication_slots.
func ReplicationSlots(ctx context.Context, pool *pgxpool.Pool) ([]ReplicationSlot, error) {
	rows, err := pool.Query(ctx, replicationSlotsSQL)
	if err != nil {
		return nil, fmt.Errorf("read ops.replication_slots: %w", err)
	}
	defer rows.Close()
	var out []ReplicationSlot
	for rows.Next() {
		var s ReplicationSlot
		if err := rows.Scan(&s.Slot, &s.Active, &s.WALStatus, &s.RetainedBytes, &s.SafeWALBytes, &s.ConfirmedLagBytes); err != nil {
			return nil, fmt.Errorf("read ops.replication_slots: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read ops.replication_slots: %w", err)
	}
	return out, nil
}

// SlotCollector exports ops.replication_slots as cp_postgres_replication_slot_* metrics, read
// from Postgres at every scrape. Run it in a process that runs whether or not the orchestrator
// does (the seeder), so a slot nobody reads is seen from Postgres itself.
type SlotCollector struct {
	pool    *pgxpool.Pool
	log     *slog.Logger
	timeout time.Duration

	active, retained, safe, lag, status *prometheus.Desc
	errors                              prometheus.Counter
}

// NewSlotCollector returns a collector over pool; register it on the process's registry.
func NewSlotCollector(pool *pgxpool.Pool, logger *slog.Logger) *SlotCollector {
	if logger == nil {
		logger = slog.Default()
	}
	slot := []string{"slot"}
	return &SlotCollector{
		pool: pool, log: logger, timeout: 5 * time.Second,
		active:   prometheus.NewDesc("cp_postgres_replication_slot_active", "1 while a client streams from the slot.", slot, nil),
		retained: prometheus.NewDesc("cp_postgres_replication_slot_retained_bytes", "WAL bytes the slot holds back (current WAL position - restart_lsn).", slot, nil),
		safe:     prometheus.NewDesc("cp_postgres_replication_slot_safe_wal_bytes", "WAL bytes that may still be written before Postgres invalidates the slot (max_slot_wal_keep_size); absent when unlimited.", slot, nil),
		lag:      prometheus.NewDesc("cp_postgres_replication_slot_confirmed_lag_bytes", "WAL bytes between the current position and the slot's confirmed_flush_lsn.", slot, nil),
		status:   prometheus.NewDesc("cp_postgres_replication_slot_wal_status", "1 for the slot's wal_status: reserved, extended, unreserved (about to be lost) or lost (invalidated).", []string{"slot", "status"}, nil),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cp_postgres_replication_slot_scrape_errors_total", Help: "Failed reads of ops.replication_slots.",
		}),
	}
}

// Describe implements prometheus.Collector.
func (c *SlotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.active, c.retained, c.safe, c.lag, c.status} {
		ch <- d
	}
	c.errors.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *SlotCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	slots, err := ReplicationSlots(ctx, c.pool)
	if err != nil {
		c.errors.Inc()
		c.log.Warn("replication slot metrics unavailable", "err", err)
	}
	for _, s := range slots {
		ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, b2f(s.Active), s.Slot)
		for _, v := range []struct {
			d *prometheus.Desc
			n *int64
		}{{c.retained, s.RetainedBytes}, {c.safe, s.SafeWALBytes}, {c.lag, s.ConfirmedLagBytes}} {
			if v.n != nil {
				ch <- prometheus.MustNewConstMetric(v.d, prometheus.GaugeValue, float64(*v.n), s.Slot)
			}
		}
		for _, st := range []string{"reserved", "extended", "unreserved", "lost"} {
			ch <- prometheus.MustNewConstMetric(c.status, prometheus.GaugeValue, b2f(s.WALStatus == st), s.Slot, st)
		}
	}
	c.errors.Collect(ch)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
