// Package universe says which symbols straux samples now. The orchestrator publishes the whole
// enabled set on cp.universe.changed whenever it changes (and at its start); the newest message
// of that subject is the current universe. Source reads it on every call — a direct read of the
// stream's last message for the subject, no cache that could go stale — and falls back to
// settings.coin_universe while the stream has none (before the first orchestrator start, or
// after the stream's retention dropped it).
package universe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"cryptopill.dev/jobs/libs/events"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
)

// Source is the current universe.
type Source struct {
	js       jetstream.JetStream
	fallback func(ctx context.Context) ([]string, error)
	log      *slog.Logger

	mu      sync.Mutex
	stream  jetstream.Stream
	last    string // version or "settings", for change logs
	badSeen map[uint64]bool
	bad     int64 // distinct bad universe messages read
}

// Bad is how many distinct messages on cp.universe.changed were not universe events.
func (s *Source) Bad() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bad
}

// New returns a Source reading CP_UNIVERSE through js (nil js: settings only), falling back to
// fallback.
func New(js jetstream.JetStream, fallback func(ctx context.Context) ([]string, error), log *slog.Logger) *Source {
	if log == nil {
		log = slog.Default()
	}
	return &Source{js: js, fallback: fallback, log: log.With("component", "universe")}
}

// Current returns the enabled symbols, sorted.
func (s *Source) Current(ctx context.Context) ([]string, error) {
	if s.js != nil {
		syms, version, err := s.fromStream(ctx)
		switch {
		case err == nil:
			s.note(version, len(syms))
			return syms, nil
		case errors.Is(err, jetstream.ErrMsgNotFound):
			// No universe event yet: the settings table is the truth.
		default:
			return nil, err
		}
	}
	syms, err := s.fallback(ctx)
	if err != nil {
		return nil, err
	}
	s.note("settings.coin_universe", len(syms))
	return syms, nil
}

func (s *Source) fromStream(ctx context.Context) ([]string, string, error) {
	s.mu.Lock()
	st := s.stream
	s.mu.Unlock()
	if st == nil {
		var err error
		if st, err = s.js.Stream(ctx, events.StreamUniverse); err != nil {
			return nil, "", fmt.Errorf("universe: stream %s: %w", events.StreamUniverse, err)
		}
		s.mu.Lock()
		s.stream = st
		s.mu.Unlock()
	}
	raw, err := st.GetLastMsgForSubject(ctx, events.SubjectUniverseChanged)
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, "", err
		}
		return nil, "", fmt.Errorf("universe: last %s: %w", events.SubjectUniverseChanged, err)
	}
	// A message that is not a universe event (a hand-published one, a bug) must not stop the
	// sampling: the newest good one before it is the universe, until the orchestrator publishes
	// the next (it does when it finds such a message last).
	for seq, steps := raw.Sequence, 0; ; steps++ {
		if raw != nil {
			uc, err := decodeUniverse(ctx, raw)
			if err == nil {
				return uc.GetEnabled(), uc.GetVersion(), nil
			}
			s.warnBad(raw.Sequence, err)
		}
		if seq <= 1 || steps >= maxWalkBack {
			return nil, "", jetstream.ErrMsgNotFound // the settings table then
		}
		seq--
		raw, err = st.GetMsg(ctx, seq)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			raw = nil // expired or deleted: older ones may remain
		case err != nil:
			return nil, "", fmt.Errorf("universe: %s seq %d: %w", events.StreamUniverse, seq, err)
		}
	}
}

// maxWalkBack bounds how many older messages a bad newest universe message makes Source read.
const maxWalkBack = 100

func decodeUniverse(ctx context.Context, raw *jetstream.RawStreamMsg) (*eventsv1.UniverseChanged, error) {
	if raw.Subject != events.SubjectUniverseChanged {
		return nil, fmt.Errorf("not on %s", events.SubjectUniverseChanged)
	}
	_, ev, err := events.Decode(ctx, &nats.Msg{Subject: raw.Subject, Header: raw.Header, Data: raw.Data})
	if err != nil {
		return nil, err
	}
	uc, ok := ev.Payload.(*eventsv1.UniverseChanged)
	if !ok {
		return nil, fmt.Errorf("carries %T", ev.Payload)
	}
	return uc, nil
}

// warnBad logs a bad universe message once per sequence.
func (s *Source) warnBad(seq uint64, err error) {
	s.mu.Lock()
	seen := s.badSeen[seq]
	if s.badSeen == nil {
		s.badSeen = map[uint64]bool{}
	}
	s.badSeen[seq] = true
	if !seen {
		s.bad++
	}
	s.mu.Unlock()
	if !seen {
		s.log.Warn("a message on "+events.SubjectUniverseChanged+" is not a universe event; using the newest one before it",
			"stream", events.StreamUniverse, "stream_seq", seq, "err", err)
	}
}

func (s *Source) note(version string, n int) {
	s.mu.Lock()
	changed := s.last != version
	s.last = version
	s.mu.Unlock()
	if changed {
		s.log.Info("universe", "version", version, "symbols", n)
	}
}
