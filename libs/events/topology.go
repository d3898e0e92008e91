package events

import (
	"context"
	"fmt"
	"time"

	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
	"github.com/nats-io/nats.go/jetstream"
)

// TopologyConfig adapts the declared streams to an environment. The zero value is the dev
// setup: one replica, file storage.
type TopologyConfig struct {
	// Replicas of every stream; consumers follow their stream. 0 means 1. Use 3 on a three-node
	// (or larger) cluster in staging and prod.
	Replicas int
	// Storage of every stream. The zero value is jetstream.FileStorage.
	Storage jetstream.StorageType
	// TickDuplicateWindow is CP_TICKS's de-duplication window. It must be at least twice the
	// longest tick period so that a restarted or second orchestrator republishing the current
	// period's tick is dropped. 0 means 30 minutes (the cinimport sweep runs at most every 15).
	TickDuplicateWindow time.Duration
}

// Topology is the set of streams and durable consumers the platform needs, as code.
type Topology struct {
	Streams   []jetstream.StreamConfig
	Consumers []ConsumerDecl
}

// ConsumerDecl is one durable consumer on one stream.
type ConsumerDecl struct {
	Stream string
	Config jetstream.ConsumerConfig
}

// Retention limits of the declared streams, exported for docs and tests.
const (
	TicksMaxAge           = 24 * time.Hour
	UniverseMaxAge        = 30 * 24 * time.Hour
	UniverseDuplicates    = time.Hour
	CDCMaxAge             = 7 * 24 * time.Hour
	CDCDuplicates         = 5 * time.Minute
	JobsMaxAge            = 72 * time.Hour
	JobsDuplicates        = 2 * time.Minute
	ImportsMaxAge         = 7 * 24 * time.Hour
	ImportsDuplicates     = 2 * time.Minute
	DLQMaxAge             = 30 * 24 * time.Hour
	DLQDuplicates         = time.Hour
	DefaultTickDuplicates = 30 * time.Minute
)

// Redelivery schedules. With a BackOff the server's AckWait is BackOff[0]; a Consumer heartbeats
// long handlers, so a short first step does not cut them off. Fresh slices per call: a caller
// may edit the returned configs.
// Handler attempts per message before it is dead-lettered: a tick is stale soon, a change or a
// universe event is worth retrying for minutes.
const (
	tickAttempts  = 3
	eventAttempts = 10
)

func tickBackOff() []time.Duration { return []time.Duration{10 * time.Second, 30 * time.Second} }

func eventBackOff() []time.Duration {
	return []time.Duration{5 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute}
}

// NewTopology returns the platform's streams and durable consumers for cfg. Services apply it
// at start; they may append their own declarations before applying.
func NewTopology(cfg TopologyConfig) Topology {
	replicas := cfg.Replicas
	if replicas <= 0 {
		replicas = 1
	}
	tickDup := cfg.TickDuplicateWindow
	if tickDup <= 0 {
		tickDup = DefaultTickDuplicates
	}
	stream := func(name, desc, subjects string, maxAge, dup time.Duration) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:        name,
			Description: desc,
			Subjects:    []string{subjects},
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardOld,
			MaxAge:      maxAge,
			Duplicates:  dup,
			Storage:     cfg.Storage,
			Replicas:    replicas,
		}
	}
	return Topology{
		Streams: []jetstream.StreamConfig{
			stream(StreamTicks, "Scheduler ticks per module (eventsv1.Tick)", SubjectsTicks, TicksMaxAge, tickDup),
			stream(StreamUniverse, "Enabled coin universe changes (eventsv1.UniverseChanged)", SubjectsUniverse, UniverseMaxAge, UniverseDuplicates),
			stream(StreamCDC, "Postgres row changes from the change relay (eventsv1.RowChange)", SubjectsCDC, CDCMaxAge, CDCDuplicates),
			stream(StreamJobs, "ingest.jobs status transitions (eventsv1.JobLifecycle)", SubjectsJobs, JobsMaxAge, JobsDuplicates),
			stream(StreamImports, "cin-aux import results (eventsv1.MovesImported)", SubjectsImports, ImportsMaxAge, ImportsDuplicates),
			stream(StreamDLQ, "Dead letters of every consumer (eventsv1.DeadLetter)", SubjectsDLQ, DLQMaxAge, DLQDuplicates),
		},
		Consumers: []ConsumerDecl{
			{Stream: StreamTicks, Config: jetstream.ConsumerConfig{
				Durable:       ConsumerStrauxTicks,
				Description:   "straux: sample and compute per tick",
				FilterSubject: TickSubject(ModuleStraux),
				// A straux that starts late has no use for old periods.
				DeliverPolicy: jetstream.DeliverNewPolicy,
				AckPolicy:     jetstream.AckExplicitPolicy,
				AckWait:       10 * time.Second,
				BackOff:       tickBackOff(),
				MaxDeliver:    tickAttempts + 1, // the last delivery is reserved for the dead letter
				MaxAckPending: 16,
			}},
			{Stream: StreamTicks, Config: jetstream.ConsumerConfig{
				Durable:       ConsumerCinimportTicks,
				Description:   "cinimport: periodic import sweep",
				FilterSubject: TickSubject(ModuleCinimport),
				DeliverPolicy: jetstream.DeliverNewPolicy,
				AckPolicy:     jetstream.AckExplicitPolicy,
				AckWait:       10 * time.Second,
				BackOff:       tickBackOff(),
				MaxDeliver:    tickAttempts + 1,
				MaxAckPending: 4,
			}},
			{Stream: StreamCDC, Config: jetstream.ConsumerConfig{
				Durable:     ConsumerCinimportChanges,
				Description: "cinimport: import on session changes and account-trade inserts",
				FilterSubjects: []string{
					ChangeFilter("cin_aux", "rt_session"),
					ChangeSubject("market", "account_trades", eventsv1.RowChange_OP_INSERT),
				},
				DeliverPolicy: jetstream.DeliverAllPolicy,
				AckPolicy:     jetstream.AckExplicitPolicy,
				AckWait:       5 * time.Second,
				BackOff:       eventBackOff(),
				MaxDeliver:    eventAttempts + 1,
				MaxAckPending: 1000,
			}},
			{Stream: StreamUniverse, Config: jetstream.ConsumerConfig{
				Durable:       ConsumerSeederUniverse,
				Description:   "seeder: seed and cancel jobs on universe changes",
				FilterSubject: SubjectUniverseChanged,
				// The latest event carries the whole enabled set: a new seeder starts from it.
				DeliverPolicy: jetstream.DeliverLastPolicy,
				AckPolicy:     jetstream.AckExplicitPolicy,
				AckWait:       5 * time.Second,
				BackOff:       eventBackOff(),
				MaxDeliver:    eventAttempts + 1,
				// One at a time, in order: a later universe must not be applied before an earlier.
				MaxAckPending: 1,
			}},
		},
	}
}

// Apply creates every stream, then every consumer, or updates them to the declared
// configuration. It is idempotent: applying an unchanged topology changes nothing. A change
// the server cannot make in place (a consumer's deliver policy, a stream's storage) is an error.
func (t Topology) Apply(ctx context.Context, js jetstream.JetStream) error {
	for _, cfg := range t.Streams {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("apply stream %s: %w", cfg.Name, err)
		}
	}
	for _, c := range t.Consumers {
		if _, err := js.CreateOrUpdateConsumer(ctx, c.Stream, c.Config); err != nil {
			return fmt.Errorf("apply consumer %s on %s: %w", c.Config.Durable, c.Stream, err)
		}
	}
	return nil
}

// Stream returns the declared stream called name.
func (t Topology) Stream(name string) (jetstream.StreamConfig, bool) {
	for _, s := range t.Streams {
		if s.Name == name {
			return s, true
		}
	}
	return jetstream.StreamConfig{}, false
}

// Consumer returns the declared consumer called durable.
func (t Topology) Consumer(durable string) (ConsumerDecl, bool) {
	for _, c := range t.Consumers {
		if c.Config.Durable == durable {
			return c, true
		}
	}
	return ConsumerDecl{}, false
}
