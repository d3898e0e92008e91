// Package otlptest is an in-process OTLP/HTTP trace receiver for tests: the services export to it
// as they would to a collector (OTEL_EXPORTER_OTLP_ENDPOINT=Receiver.URL), and the test reads the
// spans back, with their resource's service name, to assert the shape of a trace.
package otlptest

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is one received span, flattened for assertions.
type Span struct {
	Service  string // the resource's service.name
	Resource map[string]string
	Name     string
	Kind     tracepb.Span_SpanKind
	TraceID  string
	SpanID   string
	ParentID string // "" for a root span
	Attrs    map[string]string
	Error    bool // status code ERROR
}

// Receiver collects the spans posted to it.
type Receiver struct {
	// URL is the base endpoint, for OTEL_EXPORTER_OTLP_ENDPOINT (the exporter appends /v1/traces).
	URL string

	mu      sync.Mutex
	paths   []string
	spans   []Span
	changed chan struct{}
}

// New starts a receiver, closed when the test ends. It accepts ExportTraceServiceRequest
// protobufs (optionally gzip-compressed) on any path and records the path.
func New(t testing.TB) *Receiver {
	r := &Receiver{changed: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, "gzip: "+err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var msg collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &msg); err != nil {
		http.Error(w, "decode ExportTraceServiceRequest: "+err.Error(), http.StatusBadRequest)
		return
	}
	var got []Span
	for _, rs := range msg.GetResourceSpans() {
		res := attrs(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				got = append(got, Span{
					Service:  res["service.name"],
					Resource: res,
					Name:     s.GetName(),
					Kind:     s.GetKind(),
					TraceID:  hex.EncodeToString(s.GetTraceId()),
					SpanID:   hex.EncodeToString(s.GetSpanId()),
					ParentID: hex.EncodeToString(s.GetParentSpanId()),
					Attrs:    attrs(s.GetAttributes()),
					Error:    s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR,
				})
			}
		}
	}
	r.mu.Lock()
	r.paths = append(r.paths, req.URL.Path)
	r.spans = append(r.spans, got...)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// attrs flattens OTLP attributes to strings (ints and bools in their decimal / literal form).
func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		v := kv.GetValue()
		switch x := v.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = x.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = strconv.FormatInt(x.IntValue, 10)
		case *commonpb.AnyValue_BoolValue:
			m[kv.GetKey()] = strconv.FormatBool(x.BoolValue)
		case *commonpb.AnyValue_DoubleValue:
			m[kv.GetKey()] = strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
		default:
			m[kv.GetKey()] = fmt.Sprint(v)
		}
	}
	return m
}

// Paths are the request paths exports were posted to, in order.
func (r *Receiver) Paths() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.paths...)
}

// Spans are the spans received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Wait returns the spans once cond holds for them, or the last spans and false when ctx ends or
// timeout passes. It wakes on every export, not on a timer.
func (r *Receiver) Wait(ctx context.Context, timeout time.Duration, cond func([]Span) bool) ([]Span, bool) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		r.mu.Lock()
		spans, changed := append([]Span(nil), r.spans...), r.changed
		r.mu.Unlock()
		if cond(spans) {
			return spans, true
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return spans, false
		}
	}
}

// Trace is the spans of one trace, indexed for walking the tree.
type Trace struct {
	Spans []Span
	byID  map[string]Span
}

// TraceOf returns the spans sharing traceID.
func TraceOf(spans []Span, traceID string) Trace {
	t := Trace{byID: map[string]Span{}}
	for _, s := range spans {
		if s.TraceID == traceID {
			t.Spans = append(t.Spans, s)
			t.byID[s.SpanID] = s
		}
	}
	return t
}

// Parent returns the parent of s in the trace (false for a root, or a parent not received).
func (t Trace) Parent(s Span) (Span, bool) {
	p, ok := t.byID[s.ParentID]
	return p, ok
}

// Under reports whether s descends from ancestor (any depth).
func (t Trace) Under(s, ancestor Span) bool {
	for cur, ok := t.Parent(s); ok; cur, ok = t.Parent(cur) {
		if cur.SpanID == ancestor.SpanID {
			return true
		}
	}
	return false
}

// Find returns the spans of service whose name starts with prefix.
func (t Trace) Find(service, prefix string) []Span {
	var out []Span
	for _, s := range t.Spans {
		if s.Service == service && strings.HasPrefix(s.Name, prefix) {
			out = append(out, s)
		}
	}
	return out
}

// String lists the trace as an indented tree (service: name), for failure messages.
func (t Trace) String() string {
	children := map[string][]Span{}
	var roots []Span
	for _, s := range t.Spans {
		if _, ok := t.byID[s.ParentID]; ok {
			children[s.ParentID] = append(children[s.ParentID], s)
		} else {
			roots = append(roots, s)
		}
	}
	var b strings.Builder
	var walk func(s Span, depth int)
	walk = func(s Span, depth int) {
		fmt.Fprintf(&b, "%s%s: %s\n", strings.Repeat("  ", depth), s.Service, s.Name)
		for _, c := range children[s.SpanID] {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	return b.String()
}
