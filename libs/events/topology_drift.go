package events

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Drift is one way a live stream, durable consumer or bucket differs from its declaration:
// what `cpctl doctor` reports. Setting is named as in the JetStream API (`nats stream info
// --json`, `nats consumer info --json`); "exists" means the live one is missing.
type Drift struct {
	Stream   string `json:"stream"`
	Consumer string `json:"consumer,omitempty"`
	Owner    string `json:"owner"`
	Setting  string `json:"setting"`
	Live     string `json:"live"`
	Declared string `json:"declared"`
	// Fixed: the server cannot change the setting in place (a SettingConflictError at start);
	// otherwise the owner's next start applies the declaration.
	Fixed bool `json:"fixed,omitempty"`
	// Configured: the declared value comes from the environment (TopologyConfig: replicas, storage,
	// the tick and change duplicate windows, the claim bucket's size), so it is only as right as
	// the environment Drift was computed with.
	Configured bool `json:"configured,omitempty"`
}

// Fix says what to do about d.
func (d Drift) Fix() string {
	switch {
	case d.Setting == "exists" && d.Consumer != "":
		return fmt.Sprintf("start %s: it creates consumer %s on %s", d.Owner, d.Consumer, d.Stream)
	case d.Setting == "exists":
		return fmt.Sprintf("start %s: it creates stream %s", d.Owner, d.Stream)
	case d.Fixed && d.Consumer != "":
		return fmt.Sprintf("the server cannot change %s in place: nats consumer rm %s %s, and %s recreates it as declared on its next start",
			d.Setting, d.Stream, d.Consumer, d.Owner)
	case d.Fixed:
		return fmt.Sprintf("the server cannot change %s in place: back the stream up (nats stream backup %s), nats stream rm %s, and %s recreates it",
			d.Setting, d.Stream, d.Stream, d.Owner)
	case d.Configured:
		return fmt.Sprintf("declared from the environment: run doctor with %s's environment, or restart %s to apply it", d.Owner, d.Owner)
	default:
		return fmt.Sprintf("restart %s: it applies its declaration at start (a hand-made change is reverted then)", d.Owner)
	}
}

// Drift compares every declared stream, durable consumer and bucket with the server's and lists
// each difference; an empty result means the server has exactly what the code declares. It
// only reads (stream and consumer INFO).
func (t Topology) Drift(ctx context.Context, js jetstream.JetStream) ([]Drift, error) {
	var out []Drift
	missing := map[string]bool{}
	for _, s := range t.Streams {
		live, err := js.Stream(ctx, s.Name)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			missing[s.Name] = true
			out = append(out, Drift{Stream: s.Name, Owner: s.Owner, Setting: "exists", Live: "missing", Declared: "present"})
			continue
		case err != nil:
			return out, fmt.Errorf("stream %s info: %w", s.Name, err)
		}
		out = append(out, streamDrift(s, live.CachedInfo().Config)...)
	}
	for _, c := range t.Consumers {
		if missing[c.Stream] {
			continue
		}
		live, err := js.Consumer(ctx, c.Stream, c.Config.Durable)
		switch {
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			out = append(out, Drift{Stream: c.Stream, Consumer: c.Config.Durable, Owner: c.Owner, Setting: "exists", Live: "missing", Declared: "present"})
			continue
		case err != nil:
			return out, fmt.Errorf("consumer %s on %s info: %w", c.Config.Durable, c.Stream, err)
		}
		out = append(out, consumerDrift(c, live.CachedInfo().Config)...)
	}
	for _, b := range t.Buckets {
		if _, err := js.Stream(ctx, b.StreamName()); errors.Is(err, jetstream.ErrStreamNotFound) {
			out = append(out, Drift{Stream: b.StreamName(), Owner: b.Owner, Setting: "exists", Live: "missing", Declared: "present"})
		} else if err != nil {
			return out, fmt.Errorf("bucket %s info: %w", b.Bucket, err)
		}
	}
	return out, nil
}

func streamDrift(s StreamDecl, live jetstream.StreamConfig) []Drift {
	want := s.StreamConfig
	var out []Drift
	for _, f := range streamFixedDiffs(live, want) {
		out = append(out, Drift{Stream: s.Name, Owner: s.Owner, Setting: f.Setting, Live: f.Live, Declared: f.Declared, Fixed: true,
			Configured: f.Setting == "storage"})
	}
	add := func(setting string, differ, configured bool, l, w any) {
		if differ {
			out = append(out, Drift{Stream: s.Name, Owner: s.Owner, Setting: setting, Live: fmt.Sprint(l), Declared: fmt.Sprint(w), Configured: configured})
		}
	}
	// The orchestrator derives these from its tick intervals and CDC_DUPLICATE_WINDOW.
	dupConfigured := s.Name == StreamTicks || s.Name == StreamCDC
	add("subjects", !slices.Equal(live.Subjects, want.Subjects), false, strings.Join(live.Subjects, ","), strings.Join(want.Subjects, ","))
	add("retention", live.Retention != want.Retention && live.Retention != jetstream.WorkQueuePolicy && want.Retention != jetstream.WorkQueuePolicy,
		false, live.Retention, want.Retention)
	add("discard", live.Discard != want.Discard, false, live.Discard, want.Discard)
	add("max_age", live.MaxAge != want.MaxAge, false, live.MaxAge, want.MaxAge)
	add("duplicate_window", live.Duplicates != want.Duplicates, dupConfigured, live.Duplicates, want.Duplicates)
	add("num_replicas", live.Replicas != want.Replicas, true, live.Replicas, want.Replicas)
	// 0 declares the server's default (-1, no limit), which it reports.
	add("max_bytes", want.MaxBytes != 0 && live.MaxBytes != want.MaxBytes, false, live.MaxBytes, want.MaxBytes)
	add("max_msgs", want.MaxMsgs != 0 && live.MaxMsgs != want.MaxMsgs, false, live.MaxMsgs, want.MaxMsgs)
	return out
}

func consumerDrift(c ConsumerDecl, live jetstream.ConsumerConfig) []Drift {
	want := c.Config
	var out []Drift
	for _, f := range consumerFixedDiffs(live, want) {
		out = append(out, Drift{Stream: c.Stream, Consumer: want.Durable, Owner: c.Owner, Setting: f.Setting, Live: f.Live, Declared: f.Declared, Fixed: true})
	}
	add := func(setting string, differ bool, l, w any) {
		if differ {
			out = append(out, Drift{Stream: c.Stream, Consumer: want.Durable, Owner: c.Owner, Setting: setting, Live: fmt.Sprint(l), Declared: fmt.Sprint(w)})
		}
	}
	add("filter_subject", live.FilterSubject != want.FilterSubject, live.FilterSubject, want.FilterSubject)
	add("filter_subjects", !slices.Equal(live.FilterSubjects, want.FilterSubjects), live.FilterSubjects, want.FilterSubjects)
	add("ack_wait", live.AckWait != want.AckWait, live.AckWait, want.AckWait)
	add("backoff", !slices.Equal(live.BackOff, want.BackOff), live.BackOff, want.BackOff)
	add("max_deliver", live.MaxDeliver != want.MaxDeliver, live.MaxDeliver, want.MaxDeliver)
	add("max_ack_pending", want.MaxAckPending != 0 && live.MaxAckPending != want.MaxAckPending, live.MaxAckPending, want.MaxAckPending)
	// The server adds its own metadata (_nats.*): only the declared keys are compared.
	for _, k := range slices.Sorted(maps.Keys(want.Metadata)) {
		add("metadata."+k, live.Metadata[k] != want.Metadata[k], live.Metadata[k], want.Metadata[k])
	}
	return out
}
