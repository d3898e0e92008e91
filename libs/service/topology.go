package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"cryptopill.dev/jobs/libs/events"
)

// topologyState applies the service's part of the topology until it is in line, and answers
// /readyz with what it is still waiting for.
type topologyState struct {
	mu  sync.Mutex
	err error

	ready    prometheus.Gauge
	failures *prometheus.CounterVec
}

// Reasons an apply attempt did not bring the topology in line (cp_topology_apply_failures_total).
const (
	reasonStreamMissing   = "stream_missing"
	reasonSettingConflict = "setting_conflict"
	reasonError           = "error"
)

// topologyRetryMax bounds the pause between attempts: a service waiting for its owner's stream
// becomes ready within it of the stream's creation, at the cost of one stream INFO per pause.
const topologyRetryMax = 2 * time.Second

// topologyRemindEvery repeats an unchanged waiting or conflict log line every so many attempts
// (about a minute), so it stays visible in the logs without flooding them.
const topologyRemindEvery = 30

func newTopologyState(reg prometheus.Registerer) *topologyState {
	t := &topologyState{
		err: errors.New("streams and consumers not applied yet"),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cp_topology_ready",
			Help: "1 once the streams and durable consumers this service owns are in line and the streams it uses exist."}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cp_topology_apply_failures_total",
			Help: "Attempts to apply this service's part of the topology that did not bring it in line, by reason: " +
				"stream_missing (a stream it uses is not created yet by its owner), setting_conflict (a live setting the server cannot change in place), error."},
			[]string{"reason"}),
	}
	for _, r := range []string{reasonStreamMissing, reasonSettingConflict, reasonError} {
		t.failures.WithLabelValues(r)
	}
	reg.MustRegister(t.ready, t.failures)
	return t
}

func (t *topologyState) check(context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

func (t *topologyState) set(err error) {
	t.mu.Lock()
	t.err = err
	t.mu.Unlock()
	if err == nil {
		t.ready.Set(1)
	} else {
		t.ready.Set(0)
	}
}

// apply applies service's part of decl, retrying until it is in line or ctx ends. A stream its
// owner has not created yet and a live setting the server cannot change in place are logged
// clearly (when they change, and about once a minute after) and keep the service not ready; it
// never changes what it does not own in the meantime.
func (t *topologyState) apply(ctx context.Context, js jetstream.JetStream, decl *events.Topology, service string, logger *slog.Logger) error {
	var last string
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := decl.ApplyAs(actx, js, service)
		cancel()
		t.set(err)
		if err == nil {
			if attempt > 1 {
				logger.Info("streams and consumers in line", "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("apply streams and consumers of %s: %w", service, err)
		}
		var missing *events.StreamMissingError
		var conflict *events.SettingConflictError
		remind := err.Error() != last || attempt%topologyRemindEvery == 0
		last = err.Error()
		switch {
		case errors.As(err, &conflict):
			t.failures.WithLabelValues(reasonSettingConflict).Inc()
			if remind {
				logger.Error("a stream or durable consumer this service owns differs from its declaration where the server cannot update it in place; not ready until an operator resolves it",
					"err", err, "attempt", attempt)
			}
		case errors.As(err, &missing):
			t.failures.WithLabelValues(reasonStreamMissing).Inc()
			if remind {
				// The first missing stream names the line; err lists every one.
				logger.Warn(missing.Error()+"; not ready until its owner creates it", "stream", missing.Stream, "owner", missing.Owner,
					"err", err, "attempt", attempt)
			}
		default:
			t.failures.WithLabelValues(reasonError).Inc()
			logger.Warn("applying streams and consumers failed; retrying", "attempt", attempt, "err", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("apply streams and consumers of %s: %w", service, err)
		case <-time.After(min(time.Duration(attempt)*250*time.Millisecond, topologyRetryMax)):
		}
	}
}
