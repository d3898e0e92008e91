package service

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"cryptopill.dev/jobs/libs/db"
	"cryptopill.dev/jobs/libs/events"
)

// WaitWhileUnavailable is the consumer middleware that waits out a Postgres outage in place
// (events.WaitWhileUnavailable with db.Unavailable): a message whose handler fails because
// Postgres is away is run again within a second of its return, spending none of its attempts.
// Pauses are counted in cp_events_unavailable_waits_total{consumer}.
func (p *Process) WaitWhileUnavailable(consumer string) events.Middleware {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cp_events_unavailable_waits_total",
		Help: "Pauses of a consumer's handler waiting in place for an unavailable dependency (Postgres) before running again.",
	}, []string{"consumer"})
	if err := p.Registry.Register(vec); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			panic(err) // a name clash with another collector: a programming error
		}
		vec = are.ExistingCollector.(*prometheus.CounterVec)
	}
	return events.WaitWhileUnavailable(events.UnavailableConfig{
		Unavailable: db.Unavailable,
		Logger:      p.Logger.With("consumer", consumer),
		Waits:       vec.WithLabelValues(consumer),
	})
}
