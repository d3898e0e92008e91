package relay

import (
	"github.com/prometheus/client_golang/prometheus"
)

// State is what a relay is doing, exported as cp_relay_state{state=...} = 1.
type State string

const (
	StateStarting  State = "starting"
	StateStreaming State = "streaming"
	// StateStandby: another relay holds the slot; this one retries until it can take over.
	StateStandby State = "standby"
	// StateBackoff: the last session failed (Postgres or NATS unavailable); retrying.
	StateBackoff State = "backoff"
	// StateBlocked: the same event failed to publish in several sessions in a row; the server
	// rejects it every time. The relay keeps retrying it (it never skips a change) and an
	// operator must remove the cause (see docs/orchestrator.md).
	StateBlocked State = "blocked"
	// StateSlotLost: Postgres invalidated the slot (wal_status lost, max_slot_wal_keep_size
	// exceeded); the changes since are gone. The operator recreates the slot (docs/orchestrator.md).
	StateSlotLost State = "slot_lost"
	StateStopped  State = "stopped"
)

var allStates = []State{StateStarting, StateStreaming, StateStandby, StateBackoff, StateBlocked, StateSlotLost, StateStopped}

// walStatuses are pg_replication_slots.wal_status values.
var walStatuses = []string{"reserved", "extended", "unreserved", "lost"}

type metrics struct {
	state        *prometheus.GaugeVec
	published    prometheus.Counter
	acked        prometheus.Counter
	failed       prometheus.Counter
	inflight     prometheus.Gauge
	inflightB    prometheus.Gauge
	skipped      prometheus.Counter
	blocked      prometheus.Gauge
	slotLost     prometheus.Gauge
	walStatus    *prometheus.GaugeVec
	confirmedLSN prometheus.Gauge
	slotLag      prometheus.Gauge
	sessions     *prometheus.CounterVec
	latency      prometheus.Histogram
	truncates    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, slot string) *metrics {
	labels := prometheus.Labels{"slot": slot}
	m := &metrics{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cp_relay_state", Help: "1 for the change relay's current state (starting, streaming, standby, backoff, stopped).",
			ConstLabels: labels,
		}, []string{"state"}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cp_relay_events_published_total", Help: "Row-change events handed to JetStream (replays included).", ConstLabels: labels,
		}),
		acked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cp_relay_events_acked_total", Help: "Row-change events acknowledged by JetStream (a de-duplicated replay counts too).", ConstLabels: labels,
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cp_relay_publish_failures_total", Help: "Row-change publishes that failed; each ends the session, which replays from the slot.", ConstLabels: labels,
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cp_relay_inflight_events", Help: "Events published and awaiting their PubAck.", ConstLabels: labels,
		}),
		inflightB: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cp_relay_inflight_bytes", Help: "Bytes of the events published and awaiting their PubAck (bounded by CDC_MAX_IN_FLIGHT_BYTES).", ConstLabels: labels,
		}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cp_relay_events_skipped_total", Help: "Replayed row changes not published again because CP_CDC already holds them (at or before their table's last stored change).", ConstLabels: labels,
		}),
		blocked: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cp_relay_publish_blocked", Help: "1 while the relay is stuck on one event the server rejects in every session (it is retried, never skipped).", ConstLabels: labels,
		}),
		slotLost: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cp_relay_slot_lost", Help: "1 while the replication slot is invalidated by Postgres (wal_status lost): changes since are gone; recreate the slot and run cinimport once -full.", ConstLabels: labels,
		}),
		walStatus: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cp_relay_slot_wal_status", Help: "1 for the slot's pg_replication_slots.wal_status (reserved, extended, unreserved, lost); unreserved means it is about to be lost.", ConstLabels: labels,
		}, []string{"status"}),
		confirmedLSN: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cp_relay_confirmed_lsn", Help: "Last position reported to Postgres as flushed (the slot's confirmed_flush_lsn), as a number.", ConstLabels: labels,
		}),
		slotLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cp_relay_slot_lag_bytes", Help: "WAL bytes between the server's current position and the slot's confirmed_flush_lsn.", ConstLabels: labels,
		}),
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cp_relay_sessions_ended_total", Help: "Replication sessions ended, by reason (slot_in_use, slot_lost, postgres, publish, stopped).", ConstLabels: labels,
		}, []string{"reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cp_relay_commit_to_ack_seconds", Help: "Time from a transaction's commit to the PubAck of each of its events.", ConstLabels: labels,
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		truncates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cp_relay_truncates_ignored_total", Help: "TRUNCATE messages seen; they are not relayed as row changes.", ConstLabels: labels,
		}),
	}
	if reg != nil {
		reg.MustRegister(m.state, m.published, m.acked, m.failed, m.inflight, m.inflightB, m.skipped, m.blocked, m.slotLost, m.walStatus,
			m.confirmedLSN, m.slotLag, m.sessions, m.latency, m.truncates)
	}
	return m
}

func (m *metrics) setState(s State) {
	for _, st := range allStates {
		v := 0.0
		if st == s {
			v = 1
		}
		m.state.WithLabelValues(string(st)).Set(v)
	}
}

func (m *metrics) setWALStatus(status string) {
	for _, st := range walStatuses {
		v := 0.0
		if st == status {
			v = 1
		}
		m.walStatus.WithLabelValues(st).Set(v)
	}
}
