package events

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
	"github.com/nats-io/nats.go/jetstream"
)

// TopologyConfig adapts the declared streams to an environment. The zero value is the dev
// setup: one replica, file storage. Only a stream's owner applies these settings, so each comes
// from the owner's configuration alone: another service's TopologyConfig never reaches a stream
// it does not own.
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
	// CDCDuplicateWindow is CP_CDC's de-duplication window: how long a relay's replay of an
	// already stored change is dropped. 0 means CDCDuplicates (5 minutes).
	CDCDuplicateWindow time.Duration
	// ClaimMaxBytes bounds the claim bucket CP_CLAIMS (ClaimConfig.MaxBytes): 0 means
	// DefaultClaimMaxBytes (8 GiB), -1 no bound.
	ClaimMaxBytes int64
}

// Service names: the owners and users of streams and durable consumers.
const (
	ServiceOrchestrator = "orchestrator"
	ServiceStraux       = "straux"
	ServiceCinimport    = "cinimport"
	ServiceSeeder       = "seeder"
)

// Topology is the set of streams and durable consumers the platform needs, as code, each with
// the one service that owns it.
type Topology struct {
	Streams   []StreamDecl
	Consumers []ConsumerDecl
	// Buckets are the Object Store buckets (each a stream OBJ_<bucket>): the claim bucket.
	Buckets []BucketDecl
}

// BucketDecl is one JetStream Object Store bucket, its owner and the services that use it.
type BucketDecl struct {
	jetstream.ObjectStoreConfig
	// Owner is the only service that creates and updates the bucket.
	Owner string
	// Users put and get objects without owning the bucket: they check that it exists (INFO on
	// its stream OBJ_<bucket>) and wait until it does, but never create or change it.
	Users []string
}

// StreamName is the bucket's stream, as the server names it.
func (b BucketDecl) StreamName() string { return "OBJ_" + b.Bucket }

// StreamDecl is one stream, its owner and the services that use it without owning it.
type StreamDecl struct {
	jetstream.StreamConfig
	// Owner is the only service that creates and updates the stream ([Topology.ApplyAs]).
	Owner string
	// Users read or write the stream, or bind a durable consumer on it, without owning it: they
	// check that it exists (stream INFO) and wait until it does, but never change it.
	Users []string
	// UsersCreate lets Users create the stream, with the declared settings, when it does not
	// exist yet: a stream every consumer writes to (CP_DLQ) is then there however the services
	// start. An existing stream is still never updated by a user.
	UsersCreate bool
}

// ConsumerDecl is one durable consumer on one stream.
type ConsumerDecl struct {
	Stream string
	// Owner is the service that consumes it: the only one that creates and updates it.
	Owner  string
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

// attemptsMetadata declares a durable's handler attempts (MetadataAttempts). Durables have an
// unbounded MaxDeliver: a bounded one lets the server give up a message whose last delivery
// could not be dead-lettered in time (CP_DLQ refusing writes while its consumer stops); with
// -1 the server redelivers it and the next consumer instance writes the dead letter.
func attemptsMetadata(n int) map[string]string {
	return map[string]string{MetadataAttempts: strconv.Itoa(n)}
}

func tickBackOff() []time.Duration { return []time.Duration{10 * time.Second, 30 * time.Second} }

func eventBackOff() []time.Duration {
	return []time.Duration{5 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute}
}

// NewTopology returns the platform's streams and durable consumers for cfg, each with its owner.
// A service applies its part at start with [Topology.ApplyAs].
func NewTopology(cfg TopologyConfig) Topology {
	replicas := cfg.Replicas
	if replicas <= 0 {
		replicas = 1
	}
	tickDup := cfg.TickDuplicateWindow
	if tickDup <= 0 {
		tickDup = DefaultTickDuplicates
	}
	cdcDup := cfg.CDCDuplicateWindow
	if cdcDup <= 0 {
		cdcDup = CDCDuplicates
	}
	stream := func(name, desc, subjects string, maxAge, dup time.Duration, owner string, users ...string) StreamDecl {
		return StreamDecl{StreamConfig: jetstream.StreamConfig{
			Name:        name,
			Description: desc,
			Subjects:    []string{subjects},
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardOld,
			MaxAge:      maxAge,
			Duplicates:  dup,
			Storage:     cfg.Storage,
			Replicas:    replicas,
		}, Owner: owner, Users: users}
	}
	// Every consumer writes dead letters: the orchestrator owns CP_DLQ with the platform's other
	// shared streams, and a consumer that starts first creates it as declared.
	dlq := stream(StreamDLQ, "Dead letters of every consumer (eventsv1.DeadLetter)", SubjectsDLQ, DLQMaxAge, DLQDuplicates,
		ServiceOrchestrator, ServiceStraux, ServiceCinimport, ServiceSeeder)
	dlq.UsersCreate = true
	return Topology{
		Streams: []StreamDecl{
			stream(StreamTicks, "Scheduler ticks per module (eventsv1.Tick)", SubjectsTicks, TicksMaxAge, tickDup,
				ServiceOrchestrator, ServiceStraux, ServiceCinimport),
			stream(StreamUniverse, "Enabled coin universe changes (eventsv1.UniverseChanged)", SubjectsUniverse, UniverseMaxAge, UniverseDuplicates,
				ServiceOrchestrator, ServiceStraux, ServiceSeeder),
			stream(StreamCDC, "Postgres row changes from the change relay (eventsv1.RowChange)", SubjectsCDC, CDCMaxAge, cdcDup,
				ServiceOrchestrator, ServiceCinimport),
			stream(StreamJobs, "ingest.jobs status transitions (eventsv1.JobLifecycle)", SubjectsJobs, JobsMaxAge, JobsDuplicates,
				ServiceStraux),
			stream(StreamImports, "cin-aux import results (eventsv1.MovesImported)", SubjectsImports, ImportsMaxAge, ImportsDuplicates,
				ServiceCinimport),
			dlq,
		},
		// Every service may put (dead letters of large messages, the publishers' large events)
		// and get; the orchestrator, which owns the shared streams, owns the bucket.
		Buckets: []BucketDecl{{
			ObjectStoreConfig: claimBucket(cfg.Storage, replicas, cfg.ClaimMaxBytes),
			Owner:             ServiceOrchestrator,
			Users:             []string{ServiceStraux, ServiceCinimport, ServiceSeeder},
		}},
		Consumers: []ConsumerDecl{
			{Stream: StreamTicks, Owner: ServiceStraux, Config: jetstream.ConsumerConfig{
				Durable:       ConsumerStrauxTicks,
				Description:   "straux: sample and compute per tick",
				FilterSubject: TickSubject(ModuleStraux),
				// A straux that starts late has no use for old periods.
				DeliverPolicy: jetstream.DeliverNewPolicy,
				AckPolicy:     jetstream.AckExplicitPolicy,
				AckWait:       10 * time.Second,
				BackOff:       tickBackOff(),
				MaxDeliver:    -1, // the server never gives a message up; attempts are counted by cp_attempts
				Metadata:      attemptsMetadata(tickAttempts),
				MaxAckPending: 16,
			}},
			{Stream: StreamTicks, Owner: ServiceCinimport, Config: jetstream.ConsumerConfig{
				Durable:       ConsumerCinimportTicks,
				Description:   "cinimport: periodic import sweep",
				FilterSubject: TickSubject(ModuleCinimport),
				DeliverPolicy: jetstream.DeliverNewPolicy,
				AckPolicy:     jetstream.AckExplicitPolicy,
				AckWait:       10 * time.Second,
				BackOff:       tickBackOff(),
				MaxDeliver:    -1,
				Metadata:      attemptsMetadata(tickAttempts),
				MaxAckPending: 4,
			}},
			{Stream: StreamCDC, Owner: ServiceCinimport, Config: jetstream.ConsumerConfig{
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
				MaxDeliver:    -1,
				Metadata:      attemptsMetadata(eventAttempts),
				MaxAckPending: 1000,
			}},
			{Stream: StreamUniverse, Owner: ServiceSeeder, Config: jetstream.ConsumerConfig{
				Durable:       ConsumerSeederUniverse,
				Description:   "seeder: seed and cancel jobs on universe changes",
				FilterSubject: SubjectUniverseChanged,
				// The latest event carries the whole enabled set: a new seeder starts from it.
				DeliverPolicy: jetstream.DeliverLastPolicy,
				AckPolicy:     jetstream.AckExplicitPolicy,
				AckWait:       5 * time.Second,
				BackOff:       eventBackOff(),
				MaxDeliver:    -1,
				Metadata:      attemptsMetadata(eventAttempts),
				// One at a time, in order: a later universe must not be applied before an earlier.
				MaxAckPending: 1,
			}},
		},
	}
}

func claimBucket(storage jetstream.StorageType, replicas int, maxBytes int64) jetstream.ObjectStoreConfig {
	b := ClaimBucketConfig(ClaimConfig{Replicas: replicas, MaxBytes: maxBytes})
	b.Storage = storage
	return b
}

// ApplyAs brings service's part of the topology in line with the declarations, and nothing else:
//   - a stream it owns is created, or updated in place to its declaration;
//   - a stream it uses without owning it is only looked up (stream INFO); while it does not
//     exist the result holds a *StreamMissingError, except that a stream declared UsersCreate
//     is created as declared (an existing one is never updated);
//   - a durable consumer it owns is created, or updated in place to its declaration;
//   - a bucket it owns is created, or updated to its declaration; one it uses is only looked
//     up, and while it does not exist the result holds a *StreamMissingError naming its stream.
//
// A declared setting the server cannot change in place on a live stream or durable (an
// operator recreated a durable with another deliver policy, a stream with another storage) is
// not attempted: it is a *SettingConflictError naming the setting and the way out, and the
// other declarations are still applied. Every problem is in the joined result (errors.As finds
// each kind). Applying an unchanged topology changes nothing, and a service never needs more
// than INFO on a stream it does not own.
func (t Topology) ApplyAs(ctx context.Context, js jetstream.JetStream, service string) error {
	if err := t.Validate(); err != nil {
		return err
	}
	var errs []error
	missing := map[string]bool{}
	for _, s := range t.Streams {
		var err error
		switch {
		case s.Owner == service:
			err = applyStream(ctx, js, s)
		case slices.Contains(s.Users, service):
			err = checkStream(ctx, js, s)
		default:
			continue
		}
		if err != nil {
			missing[s.Name] = true
			errs = append(errs, err)
		}
	}
	for _, c := range t.Consumers {
		if c.Owner != service || missing[c.Stream] {
			continue
		}
		if err := applyConsumer(ctx, js, c); err != nil {
			errs = append(errs, err)
		}
	}
	for _, b := range t.Buckets {
		var err error
		switch {
		case b.Owner == service:
			if _, err = js.CreateOrUpdateObjectStore(ctx, b.ObjectStoreConfig); err != nil {
				err = fmt.Errorf("apply bucket %s: %w", b.Bucket, err)
			}
		case slices.Contains(b.Users, service):
			_, err = js.ObjectStore(ctx, b.Bucket)
			switch {
			case errors.Is(err, jetstream.ErrBucketNotFound):
				err = &StreamMissingError{Stream: b.StreamName(), Owner: b.Owner}
			case err != nil:
				err = fmt.Errorf("bucket %s info: %w", b.Bucket, err)
			}
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Apply creates or updates every stream, then every durable consumer, standing in for every
// owner at once: for tests, benchmarks and tools that run the whole platform in one process. A
// service applies only its own part, with ApplyAs. Idempotent; a change the server cannot make
// in place is an error.
func (t Topology) Apply(ctx context.Context, js jetstream.JetStream) error {
	for _, s := range t.Streams {
		if _, err := js.CreateOrUpdateStream(ctx, s.StreamConfig); err != nil {
			return fmt.Errorf("apply stream %s: %w", s.Name, err)
		}
	}
	for _, c := range t.Consumers {
		if _, err := js.CreateOrUpdateConsumer(ctx, c.Stream, c.Config); err != nil {
			return fmt.Errorf("apply consumer %s on %s: %w", c.Config.Durable, c.Stream, err)
		}
	}
	for _, b := range t.Buckets {
		if _, err := js.CreateOrUpdateObjectStore(ctx, b.ObjectStoreConfig); err != nil {
			return fmt.Errorf("apply bucket %s: %w", b.Bucket, err)
		}
	}
	return nil
}

// CreateMissing creates every declared stream and durable consumer that does not exist yet, with
// its declared settings, and leaves every existing one as it is: the owner-less defaults a dev
// stack lays down before its services start (cpctl dev). The owners still bring their own
// declarations in line when they start.
func (t Topology) CreateMissing(ctx context.Context, js jetstream.JetStream) error {
	for _, s := range t.Streams {
		if _, err := js.CreateStream(ctx, s.StreamConfig); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("create stream %s: %w", s.Name, err)
		}
	}
	for _, c := range t.Consumers {
		if _, err := js.CreateConsumer(ctx, c.Stream, c.Config); err != nil && !errors.Is(err, jetstream.ErrConsumerExists) {
			return fmt.Errorf("create consumer %s on %s: %w", c.Config.Durable, c.Stream, err)
		}
	}
	for _, b := range t.Buckets {
		if _, err := js.CreateObjectStore(ctx, b.ObjectStoreConfig); err != nil && !errors.Is(err, jetstream.ErrBucketExists) {
			return fmt.Errorf("create bucket %s: %w", b.Bucket, err)
		}
	}
	return nil
}

// Validate checks the declarations' ownership: every stream has an owner, and a durable's owner
// owns or uses its stream (so it waits for the stream before binding to it).
func (t Topology) Validate() error {
	for _, s := range t.Streams {
		if s.Owner == "" {
			return fmt.Errorf("topology: stream %s has no owner", s.Name)
		}
	}
	for _, b := range t.Buckets {
		if b.Owner == "" {
			return fmt.Errorf("topology: bucket %s has no owner", b.Bucket)
		}
	}
	for _, c := range t.Consumers {
		s, ok := t.Stream(c.Stream)
		if !ok {
			return fmt.Errorf("topology: consumer %s is on undeclared stream %s", c.Config.Durable, c.Stream)
		}
		if c.Owner == "" {
			return fmt.Errorf("topology: consumer %s on %s has no owner", c.Config.Durable, c.Stream)
		}
		if c.Owner != s.Owner && !slices.Contains(s.Users, c.Owner) {
			return fmt.Errorf("topology: consumer %s's owner %s is neither the owner nor a user of stream %s", c.Config.Durable, c.Owner, c.Stream)
		}
	}
	return nil
}

// StreamMissingError is a stream a service needs but does not own, not created yet by its owner.
type StreamMissingError struct {
	Stream string
	Owner  string
}

func (e *StreamMissingError) Error() string {
	return fmt.Sprintf("waiting for stream %s (owned by %s)", e.Stream, e.Owner)
}

// SettingConflictError is a live stream or durable whose settings differ from the declaration
// where the server cannot change them in place.
type SettingConflictError struct {
	Stream   string
	Consumer string // empty for the stream itself
	Owner    string
	Settings []SettingDiff
}

// SettingDiff is one setting as the server has it and as declared, named as in the JetStream
// API (and `nats stream info --json`, `nats consumer info --json`).
type SettingDiff struct {
	Setting  string
	Live     string
	Declared string
}

func (e *SettingConflictError) Error() string {
	var diffs []string
	for _, d := range e.Settings {
		diffs = append(diffs, fmt.Sprintf("%s is %s on the server but declared %s", d.Setting, d.Live, d.Declared))
	}
	if e.Consumer != "" {
		return fmt.Sprintf("consumer %s on stream %s: %s; the server cannot change this in place: delete the consumer "+
			"(nats consumer rm %s %s) and %s recreates it as declared, or change its declaration in libs/events/topology.go",
			e.Consumer, e.Stream, strings.Join(diffs, "; "), e.Stream, e.Consumer, e.Owner)
	}
	return fmt.Sprintf("stream %s: %s; the server cannot change this in place: back the stream up (nats stream backup), "+
		"delete it (nats stream rm %s) and %s recreates it as declared, or change its declaration in libs/events/topology.go",
		e.Stream, strings.Join(diffs, "; "), e.Stream, e.Owner)
}

// applyStream is the owner's create or update.
func applyStream(ctx context.Context, js jetstream.JetStream, s StreamDecl) error {
	live, err := js.Stream(ctx, s.Name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		// Create-or-update: another replica of the owner may be creating it at the same moment.
		if _, err := js.CreateOrUpdateStream(ctx, s.StreamConfig); err != nil {
			return fmt.Errorf("create stream %s: %w", s.Name, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("stream %s info: %w", s.Name, err)
	}
	if diffs := streamFixedDiffs(live.CachedInfo().Config, s.StreamConfig); len(diffs) > 0 {
		return &SettingConflictError{Stream: s.Name, Owner: s.Owner, Settings: diffs}
	}
	if _, err := js.UpdateStream(ctx, s.StreamConfig); err != nil {
		return fmt.Errorf("update stream %s: %w", s.Name, err)
	}
	return nil
}

// checkStream is a user's look-up.
func checkStream(ctx context.Context, js jetstream.JetStream, s StreamDecl) error {
	_, err := js.Stream(ctx, s.Name)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("stream %s info: %w", s.Name, err)
	case !s.UsersCreate:
		return &StreamMissingError{Stream: s.Name, Owner: s.Owner}
	}
	// Created only when absent: a stream with other settings (the owner's) is left as it is.
	if _, err := js.CreateStream(ctx, s.StreamConfig); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("create stream %s: %w", s.Name, err)
	}
	return nil
}

// applyConsumer is the owner's create or in-place update of its durable.
func applyConsumer(ctx context.Context, js jetstream.JetStream, c ConsumerDecl) error {
	live, err := js.Consumer(ctx, c.Stream, c.Config.Durable)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
	case err != nil:
		return fmt.Errorf("consumer %s on %s info: %w", c.Config.Durable, c.Stream, err)
	default:
		if diffs := consumerFixedDiffs(live.CachedInfo().Config, c.Config); len(diffs) > 0 {
			return &SettingConflictError{Stream: c.Stream, Consumer: c.Config.Durable, Owner: c.Owner, Settings: diffs}
		}
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, c.Stream, c.Config); err != nil {
		return fmt.Errorf("apply consumer %s on %s: %w", c.Config.Durable, c.Stream, err)
	}
	return nil
}

// consumerFixedDiffs lists the declared consumer settings that differ on the server and that the
// server refuses to update (nats-server's checkNewConsumerConfig).
func consumerFixedDiffs(live, want jetstream.ConsumerConfig) []SettingDiff {
	var d []SettingDiff
	add := func(setting string, differ bool, l, w any) {
		if differ {
			d = append(d, SettingDiff{Setting: setting, Live: fmt.Sprint(l), Declared: fmt.Sprint(w)})
		}
	}
	add("deliver_policy", live.DeliverPolicy != want.DeliverPolicy, live.DeliverPolicy, want.DeliverPolicy)
	add("opt_start_seq", live.OptStartSeq != want.OptStartSeq, live.OptStartSeq, want.OptStartSeq)
	add("opt_start_time", !sameTime(live.OptStartTime, want.OptStartTime), fmtTime(live.OptStartTime), fmtTime(want.OptStartTime))
	add("ack_policy", live.AckPolicy != want.AckPolicy, live.AckPolicy, want.AckPolicy)
	add("replay_policy", live.ReplayPolicy != want.ReplayPolicy, live.ReplayPolicy, want.ReplayPolicy)
	add("deliver_subject", (live.DeliverSubject == "") != (want.DeliverSubject == ""), pushOrPull(live.DeliverSubject), pushOrPull(want.DeliverSubject))
	add("idle_heartbeat", live.IdleHeartbeat != want.IdleHeartbeat, live.IdleHeartbeat, want.IdleHeartbeat)
	add("flow_control", live.FlowControl != want.FlowControl, live.FlowControl, want.FlowControl)
	add("mem_storage", live.MemoryStorage != want.MemoryStorage, live.MemoryStorage, want.MemoryStorage)
	// 0 declares the server's default, which the server fills in on create and update alike.
	add("max_waiting", want.MaxWaiting != 0 && live.MaxWaiting != want.MaxWaiting, live.MaxWaiting, want.MaxWaiting)
	return d
}

// streamFixedDiffs lists the declared stream settings that differ on the server and that the
// server refuses to update (nats-server's stream configUpdateCheck).
func streamFixedDiffs(live, want jetstream.StreamConfig) []SettingDiff {
	var d []SettingDiff
	add := func(setting string, differ bool, l, w any) {
		if differ {
			d = append(d, SettingDiff{Setting: setting, Live: fmt.Sprint(l), Declared: fmt.Sprint(w)})
		}
	}
	add("storage", live.Storage != want.Storage, live.Storage, want.Storage)
	workQueue := live.Retention == jetstream.WorkQueuePolicy || want.Retention == jetstream.WorkQueuePolicy
	add("retention", live.Retention != want.Retention && workQueue, live.Retention, want.Retention)
	add("sealed", live.Sealed && !want.Sealed, live.Sealed, want.Sealed)
	add("deny_delete", live.DenyDelete && !want.DenyDelete, live.DenyDelete, want.DenyDelete)
	add("deny_purge", live.DenyPurge && !want.DenyPurge, live.DenyPurge, want.DenyPurge)
	return d
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "unset"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func pushOrPull(deliverSubject string) string {
	if deliverSubject == "" {
		return "unset (pull)"
	}
	return deliverSubject + " (push)"
}

// Stream returns the declared stream called name.
func (t Topology) Stream(name string) (StreamDecl, bool) {
	for _, s := range t.Streams {
		if s.Name == name {
			return s, true
		}
	}
	return StreamDecl{}, false
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
