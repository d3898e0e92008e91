package service

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"cryptopill.dev/jobs/libs/db"
)

// DefaultHeartbeat is how often a process stamps ops.session_log.last_seen_at; a session without
// one for three intervals and without stopped_at is what `cpctl status` calls lost.
const DefaultHeartbeat = 15 * time.Second

// sessionHeartbeat stamps last_seen_at every interval until stopped, then stopped_at. A failed
// stamp is logged and counted (cp_session_heartbeat_errors_total) and the loop goes on: a
// Postgres outage must not stop the service, and the next beat catches up.
type sessionHeartbeat struct {
	pool     *pgxpool.Pool
	id       int64
	interval time.Duration
	log      *slog.Logger
	errors   prometheus.Counter
	stop     context.CancelFunc
	done     chan struct{}
}

func startHeartbeat(pool *pgxpool.Pool, id int64, interval time.Duration, log *slog.Logger, reg prometheus.Registerer) *sessionHeartbeat {
	if interval <= 0 {
		interval = DefaultHeartbeat
	}
	h := &sessionHeartbeat{
		pool: pool, id: id, interval: interval, log: log, done: make(chan struct{}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cp_session_heartbeat_errors_total",
			Help: "Failed stamps of ops.session_log.last_seen_at (heartbeat) and stopped_at.",
		}),
	}
	reg.MustRegister(h.errors)
	ctx, cancel := context.WithCancel(context.Background())
	h.stop = cancel
	go h.loop(ctx)
	return h
}

func (h *sessionHeartbeat) loop(ctx context.Context) {
	defer close(h.done)
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		h.beat(ctx) // at once: status sees the replica from its first interval
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (h *sessionHeartbeat) beat(ctx context.Context) {
	bctx, cancel := context.WithTimeout(ctx, h.interval)
	defer cancel()
	if err := db.TouchSession(bctx, h.pool, h.id, h.interval); err != nil && ctx.Err() == nil {
		h.errors.Inc()
		h.log.Warn("session heartbeat failed; retrying next interval", "err", err, "interval", h.interval.String())
	}
}

// close stops the beats and stamps stopped_at: a clean stop, which status tells from a lost one.
func (h *sessionHeartbeat) close() {
	h.stop()
	<-h.done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.StopSession(ctx, h.pool, h.id); err != nil {
		h.errors.Inc()
		h.log.Warn("stamp session stopped failed", "err", err)
	}
}
