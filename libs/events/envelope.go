package events

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Header names and fixed values of the envelope.
const (
	HeaderSpecVersion = "ce-specversion"
	HeaderID          = "ce-id"
	HeaderType        = "ce-type"
	HeaderSource      = "ce-source"
	HeaderTime        = "ce-time"
	HeaderContentType = "content-type"
	// HeaderMsgID is JetStream's de-duplication header; always equal to ce-id.
	HeaderMsgID       = jetstream.MsgIDHeader
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"

	// SpecVersion is the CloudEvents version of the envelope.
	SpecVersion = "1.0"
	// ContentType is the payload's media type: protojson.
	ContentType = "application/json"
)

// Event is one event: a protobuf payload and its envelope attributes.
//
// To publish, set Subject, ID and Payload; Type, Source and Time have defaults. A received event
// also carries the raw Header and Data, and, from a Consumer, the JetStream Metadata.
type Event struct {
	// Subject is the NATS subject, e.g. TickSubject("straux").
	Subject string
	// ID is ce-id and Nats-Msg-Id. Use a deterministic id (TickID, ChangeID, ...) when the same
	// fact can be published twice.
	ID string
	// Type is ce-type. On publish it defaults to TypeOf(Payload).
	Type string
	// Source is ce-source, the publishing service ("orchestrator"). On publish it defaults to
	// the Publisher's source.
	Source string
	// Time is ce-time. On publish it defaults to the current time.
	Time time.Time
	// Payload is the event message, e.g. *eventsv1.Tick.
	Payload proto.Message

	// Header is every header of a received message.
	Header nats.Header
	// Data is the raw payload of a received message.
	Data []byte
	// Metadata is set for events delivered by a Consumer: stream sequence, delivery count, ...
	Metadata *jetstream.MsgMetadata
}

// Encode builds the NATS message for ev: protojson payload, CloudEvents headers, Nats-Msg-Id,
// and the traceparent/tracestate of the span in ctx (none when ctx has no span). Type and Time
// are defaulted; Subject, ID, Source and Payload are required (ErrInvalidEvent) — except that a
// producer which writes the canonical protojson itself (the change relay, straight from Postgres
// tuples) may leave Payload nil and pass the bytes in Data with an explicit Type.
func Encode(ctx context.Context, ev Event) (*nats.Msg, error) {
	if err := validSubject(ev.Subject, false); err != nil {
		return nil, err
	}
	if ev.ID == "" {
		return nil, fmt.Errorf("%w: %s: no id", ErrInvalidEvent, ev.Subject)
	}
	preEncoded := ev.Payload == nil && ev.Data != nil && ev.Type != ""
	if ev.Payload == nil && !preEncoded {
		return nil, fmt.Errorf("%w: %s: no payload (or Data with a Type)", ErrInvalidEvent, ev.Subject)
	}
	if ev.Source == "" {
		return nil, fmt.Errorf("%w: %s: no source", ErrInvalidEvent, ev.Subject)
	}
	if ev.Type == "" {
		ev.Type = TypeOf(ev.Payload)
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	data := ev.Data
	if !preEncoded {
		var err error
		if data, err = marshal(ev.Payload); err != nil {
			return nil, fmt.Errorf("encode %s %s: %w", ev.Type, ev.ID, err)
		}
	}
	h := make(nats.Header, 10)
	h[HeaderSpecVersion] = []string{SpecVersion}
	h[HeaderID] = []string{ev.ID}
	h[HeaderType] = []string{ev.Type}
	h[HeaderSource] = []string{ev.Source}
	h[HeaderTime] = []string{ev.Time.UTC().Format(time.RFC3339Nano)}
	h[HeaderContentType] = []string{ContentType}
	h[HeaderMsgID] = []string{ev.ID}
	propagation.TraceContext{}.Inject(ctx, headerCarrier(h))
	return &nats.Msg{Subject: ev.Subject, Header: h, Data: data}, nil
}

// Decode parses a received message into an Event and returns ctx carrying the remote span
// context from its traceparent, so a span started from it continues the publisher's trace.
// Every error wraps ErrMalformed; an unknown ce-type also wraps ErrUnknownType. Unknown payload
// fields are ignored, so older consumers read newer events.
func Decode(ctx context.Context, msg *nats.Msg) (context.Context, Event, error) {
	ev := Event{Subject: msg.Subject, Header: msg.Header, Data: msg.Data}
	h := msg.Header
	// Extract first, so even a message that fails to decode keeps its trace (its dead letter
	// continues the publisher's trace).
	ctx = propagation.TraceContext{}.Extract(ctx, headerCarrier(h))
	if v := h.Get(HeaderSpecVersion); v != SpecVersion {
		return ctx, ev, fmt.Errorf("%w: %s %q is not %q", ErrMalformed, HeaderSpecVersion, v, SpecVersion)
	}
	ev.ID, ev.Type, ev.Source = h.Get(HeaderID), h.Get(HeaderType), h.Get(HeaderSource)
	for _, req := range [][2]string{{HeaderID, ev.ID}, {HeaderType, ev.Type}, {HeaderSource, ev.Source}} {
		if req[1] == "" {
			return ctx, ev, fmt.Errorf("%w: no %s header", ErrMalformed, req[0])
		}
	}
	if ct := h.Get(HeaderContentType); ct != "" && !strings.HasPrefix(ct, ContentType) {
		return ctx, ev, fmt.Errorf("%w: %s %q is not %q", ErrMalformed, HeaderContentType, ct, ContentType)
	}
	if t := h.Get(HeaderTime); t != "" {
		var err error
		if ev.Time, err = time.Parse(time.RFC3339Nano, t); err != nil {
			return ctx, ev, fmt.Errorf("%w: %s: %w", ErrMalformed, HeaderTime, err)
		}
	}
	payload, err := NewMessage(ev.Type)
	if err != nil {
		return ctx, ev, err
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(msg.Data, payload); err != nil {
		return ctx, ev, fmt.Errorf("%w: %s payload: %w", ErrMalformed, ev.Type, err)
	}
	ev.Payload = payload
	return ctx, ev, nil
}

// marshal is protojson with insignificant whitespace removed: protojson deliberately varies its
// spacing between builds, and a payload should read the same from every binary.
func marshal(m proto.Message) ([]byte, error) {
	raw, err := protojson.Marshal(m)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Grow(len(raw))
	if err := json.Compact(&buf, raw); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// validSubject reports whether s is a publishable subject (wildcards only when allowed).
func validSubject(s string, wildcards bool) error {
	if s == "" {
		return fmt.Errorf("%w: empty subject", ErrInvalidEvent)
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
			return fmt.Errorf("%w: subject %q", ErrInvalidEvent, s)
		}
		if !wildcards && (tok == "*" || tok == ">") {
			return fmt.Errorf("%w: subject %q has a wildcard", ErrInvalidEvent, s)
		}
	}
	return nil
}

// headerCarrier adapts nats.Header to OpenTelemetry propagation. It uses the exact, lower-case
// W3C header names: nats.Header is case-sensitive, unlike http.Header.
type headerCarrier nats.Header

func (c headerCarrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c headerCarrier) Set(key, value string) { c[key] = []string{value} }

func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
