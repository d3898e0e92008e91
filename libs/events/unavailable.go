package events

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// UnavailableConfig configures WaitWhileUnavailable. Only Unavailable is required.
type UnavailableConfig struct {
	// Unavailable reports whether a handler error means a dependency is away for now (db.Unavailable
	// for Postgres). Required.
	Unavailable func(error) bool
	// Wait is the first pause before the handler runs again; it doubles up to MaxWait. 0 means 250ms.
	Wait time.Duration
	// MaxWait caps the pause, and so how long after the dependency's return the message waits.
	// 0 means 1s.
	MaxWait time.Duration
	// Budget is how long one delivery is retried in place; past it the error is returned and the
	// consumer's redelivery and attempts apply as to any failure. 0 means 10 minutes. The
	// consumer's HandlerTimeout, when shorter, ends it first.
	Budget time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Waits, when set, counts every pause.
	Waits prometheus.Counter
}

// WaitWhileUnavailable runs the handler again, in place, while it fails because a dependency
// is unavailable (Postgres restarting, a cut link): an outage neither spends the message's
// attempts (it would be dead-lettered after a long one) nor leaves the message to the
// redelivery backoff (minutes after the dependency is back). The consumer heartbeats the message
// meanwhile. Every pause is counted; the first is logged at warn and then one line at most every
// 30 s, so a handler stuck on a dependency is visible.
func WaitWhileUnavailable(cfg UnavailableConfig) Middleware {
	if cfg.Wait <= 0 {
		cfg.Wait = 250 * time.Millisecond
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = time.Second
	}
	if cfg.Budget <= 0 {
		cfg.Budget = 10 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return func(next Handler) Handler {
		return func(ctx context.Context, ev Event) error {
			start := time.Now()
			wait := cfg.Wait
			var logged time.Time
			for pauses := 0; ; pauses++ {
				err := next(ctx, ev)
				if err == nil || cfg.Unavailable == nil || !cfg.Unavailable(err) || ctx.Err() != nil ||
					time.Since(start)+wait > cfg.Budget {
					if err == nil && pauses > 0 {
						cfg.Logger.Info("handled after a dependency came back", "subject", ev.Subject, "event_id", ev.ID,
							"pauses", pauses, "waited", time.Since(start).Round(time.Millisecond))
					}
					return err
				}
				if cfg.Waits != nil {
					cfg.Waits.Inc()
				}
				if time.Since(logged) >= 30*time.Second {
					cfg.Logger.Warn("handler waits for an unavailable dependency; retrying in place", "subject", ev.Subject,
						"event_id", ev.ID, "err", err, "waiting", time.Since(start).Round(time.Millisecond), "budget", cfg.Budget)
					logged = time.Now()
				}
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return err
				case <-t.C:
				}
				wait = min(wait*2, cfg.MaxWait)
			}
		}
	}
}
