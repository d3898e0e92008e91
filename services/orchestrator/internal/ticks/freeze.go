package ticks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultFlagsBucket is the KV bucket of operator flags.
const DefaultFlagsBucket = "CP_FLAGS"

// flagsHistory is how many past values of each flag the bucket keeps, for operators asking who
// froze what (nats kv history).
const flagsHistory = 10

// Flag keys. FreezeKey freezes every module; FreezeKey + "." + module freezes one.
const FreezeKey = "freeze"

// FreezeFlags watches the freeze keys of the flags bucket and answers whether a module is frozen.
// A key holding anything but "", "0", "false", "no" or "off" is set; a deleted key is clear.
type FreezeFlags struct {
	cfg FreezeConfig

	mu      sync.Mutex
	values  map[string]string
	changed chan struct{} // closed and replaced on every change
	ready   chan struct{}
	once    sync.Once
}

// FreezeConfig configures FreezeFlags.
type FreezeConfig struct {
	// JS is the JetStream context the bucket lives in. Required.
	JS jetstream.JetStream
	// Bucket is the KV bucket, created when absent. Default DefaultFlagsBucket.
	Bucket string
	// Replicas of the bucket when it is created. Default 1.
	Replicas int
	// Pool, when set, mirrors the flags into ops.session_flags for operators reading Postgres.
	Pool *pgxpool.Pool
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// NewFreezeFlags returns a watcher; call Run to start it.
func NewFreezeFlags(cfg FreezeConfig) *FreezeFlags {
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultFlagsBucket
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Logger = cfg.Logger.With("component", "freeze_flags", "bucket", cfg.Bucket)
	return &FreezeFlags{cfg: cfg, values: map[string]string{}, changed: make(chan struct{}), ready: make(chan struct{})}
}

// Frozen reports whether module's ticks are frozen, and by which key.
func (f *FreezeFlags) Frozen(module string) (bool, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range []string{FreezeKey, FreezeKey + "." + module} {
		if isSet(f.values[k]) {
			return true, k
		}
	}
	return false, ""
}

// Changed returns a channel closed at the next change of any freeze flag.
func (f *FreezeFlags) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

// Ready is closed once the flags' current values are known.
func (f *FreezeFlags) Ready() <-chan struct{} { return f.ready }

func isSet(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "0", "false", "no", "off":
		return false
	}
	return true
}

// Run watches the bucket until ctx ends, re-watching after errors.
func (f *FreezeFlags) Run(ctx context.Context) error {
	for {
		err := f.watch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		f.cfg.Logger.Warn("watching freeze flags failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (f *FreezeFlags) watch(ctx context.Context) error {
	kv, err := f.bucket(ctx)
	if err != nil {
		return err
	}
	w, err := kv.WatchFiltered(ctx, []string{FreezeKey, FreezeKey + ".*"})
	if err != nil {
		return fmt.Errorf("watch %s: %w", f.cfg.Bucket, err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watcher closed")
			}
			if e == nil { // initial values delivered
				f.once.Do(func() { close(f.ready) })
				continue
			}
			value := string(e.Value())
			if e.Operation() != jetstream.KeyValuePut {
				value = ""
			}
			f.set(ctx, e.Key(), value)
		}
	}
}

// bucket creates the flags bucket, or brings an existing one to these settings: the
// orchestrator owns it (docs/events.md, Ownership), so its configuration is the settings' only
// source, and every orchestrator declares the same. The keys are left as they are.
func (f *FreezeFlags) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := f.cfg.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      f.cfg.Bucket,
		Description: "Operator flags: freeze, freeze.<module> (see docs/orchestrator.md)",
		History:     flagsHistory,
		Replicas:    f.cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("create or update KV bucket %s: %w", f.cfg.Bucket, err)
	}
	return kv, nil
}

func (f *FreezeFlags) set(ctx context.Context, key, value string) {
	f.mu.Lock()
	old, had := f.values[key]
	if value == "" {
		delete(f.values, key)
	} else {
		f.values[key] = value
	}
	if had && old == value {
		f.mu.Unlock()
		return
	}
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	f.cfg.Logger.Info("freeze flag changed", "key", key, "value", value, "frozen", isSet(value))
	if f.cfg.Pool != nil {
		f.mirror(ctx, key, value)
	}
}

// mirror keeps ops.session_flags in step, best effort: the KV bucket is the switch.
func (f *FreezeFlags) mirror(ctx context.Context, key, value string) {
	var err error
	if value == "" {
		_, err = f.cfg.Pool.Exec(ctx, `DELETE FROM ops.session_flags WHERE key = $1`, key)
	} else {
		_, err = f.cfg.Pool.Exec(ctx, `
			INSERT INTO ops.session_flags (key, value, updated_at, updated_by) VALUES ($1, $2, now(), 'orchestrator')
			ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now(), updated_by = 'orchestrator'
			WHERE ops.session_flags.value IS DISTINCT FROM EXCLUDED.value`, key, value)
	}
	if err != nil {
		f.cfg.Logger.Warn("mirroring flag into ops.session_flags failed", "key", key, "err", err)
	}
}
