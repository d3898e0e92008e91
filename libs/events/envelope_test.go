package events_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"cryptopill.dev/jobs/libs/events"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func sampleTick(periodStart time.Time) *eventsv1.Tick {
	return &eventsv1.Tick{
		Module:          "straux",
		PeriodStart:     timestamppb.New(periodStart),
		Period:          durationpb.New(40 * time.Second),
		RunnerSessionId: "str-aux-runner",
		OrchestratorSession: &eventsv1.OrchestratorSession{
			Id: "orc-1", Host: "host-a", Pid: 4242, StartedAt: timestamppb.New(periodStart.Add(-time.Hour)), Version: "v0.1.0",
		},
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	t.Parallel()

	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, span := tp.Tracer("test").Start(context.Background(), "parent")
	defer span.End()
	ts, err := trace.ParseTraceState("cp=1")
	require.NoError(t, err)
	ctx = trace.ContextWithSpanContext(ctx, span.SpanContext().WithTraceState(ts))

	start := time.Date(2025, 3, 1, 12, 0, 40, 0, time.UTC)
	tick := sampleTick(start)
	at := time.Date(2025, 3, 1, 12, 0, 40, 123456789, time.UTC)
	msg, err := events.Encode(ctx, events.Event{
		Subject: events.TickSubject("straux"),
		ID:      events.TickID("straux", start),
		Source:  "orchestrator",
		Time:    at,
		Payload: tick,
	})
	require.NoError(t, err)

	require.Equal(t, "cp.tick.straux", msg.Subject)
	h := msg.Header
	require.Equal(t, "1.0", h.Get("ce-specversion"))
	require.Equal(t, events.TickID("straux", start), h.Get("ce-id"))
	require.Equal(t, h.Get("ce-id"), h.Get("Nats-Msg-Id"))
	require.Equal(t, "cryptopill.tick.v1", h.Get("ce-type"))
	require.Equal(t, "orchestrator", h.Get("ce-source"))
	require.Equal(t, "2025-03-01T12:00:40.123456789Z", h.Get("ce-time"))
	require.Equal(t, "application/json", h.Get("content-type"))
	require.Regexp(t, `^00-`+span.SpanContext().TraceID().String()+`-`+span.SpanContext().SpanID().String()+`-01$`, h.Get("traceparent"))
	require.Equal(t, "cp=1", h.Get("tracestate"))
	// Canonical, compact protojson: readable in `nats stream view`.
	require.Equal(t, `{"module":"straux","periodStart":"2025-03-01T12:00:40Z","period":"40s","runnerSessionId":"str-aux-runner",`+
		`"orchestratorSession":{"id":"orc-1","host":"host-a","pid":4242,"startedAt":"2025-03-01T11:00:40Z","version":"v0.1.0"}}`,
		string(msg.Data))

	dctx, ev, err := events.Decode(context.Background(), msg)
	require.NoError(t, err)
	require.True(t, proto.Equal(tick, ev.Payload), "payload %v", ev.Payload)
	require.Equal(t, "cryptopill.tick.v1", ev.Type)
	require.Equal(t, "orchestrator", ev.Source)
	require.True(t, ev.Time.Equal(at))
	require.Equal(t, msg.Data, ev.Data)

	remote := trace.SpanContextFromContext(dctx)
	require.True(t, remote.IsRemote())
	require.Equal(t, span.SpanContext().TraceID(), remote.TraceID())
	require.Equal(t, span.SpanContext().SpanID(), remote.SpanID())
	require.Equal(t, "cp=1", remote.TraceState().String())
}

func TestEncodeWithoutSpanHasNoTraceparent(t *testing.T) {
	t.Parallel()
	msg, err := events.Encode(context.Background(), events.Event{
		Subject: events.SubjectUniverseChanged, ID: events.UniverseID("v1", 0), Source: "orchestrator",
		Payload: &eventsv1.UniverseChanged{Version: "v1", Enabled: []string{"BTCUSDT"}},
	})
	require.NoError(t, err)
	require.Empty(t, msg.Header.Get("traceparent"))
	_, err = time.Parse(time.RFC3339Nano, msg.Header.Get("ce-time"))
	require.NoError(t, err, "ce-time defaults to now")
}

func TestRowChangeValuesKeepNullAndUnchangedToastApart(t *testing.T) {
	t.Parallel()
	rc := &eventsv1.RowChange{
		Schema: "cin_aux", Table: "rt_session", Op: eventsv1.RowChange_OP_UPDATE,
		NewValues: map[string]*eventsv1.Value{
			"id":     {Kind: &eventsv1.Value_Text{Text: "7"}},
			"note":   {Kind: &eventsv1.Value_Null{Null: structpb.NullValue_NULL_VALUE}},
			"raw":    {Kind: &eventsv1.Value_UnchangedToast{UnchangedToast: true}},
			"digest": {Kind: &eventsv1.Value_Binary{Binary: []byte{0xde, 0xad}}},
		},
		OldValues:  map[string]*eventsv1.Value{"id": {Kind: &eventsv1.Value_Text{Text: "7"}}},
		KeyColumns: []string{"id"},
		CommitLsn:  0x16B3748, EndLsn: 0x16B3800, Xid: 991, IndexInTx: 3,
		CommitTime: timestamppb.New(time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)),
	}
	msg, err := events.Encode(context.Background(), events.Event{
		Subject: events.ChangeSubject("cin_aux", "rt_session", rc.Op),
		ID:      events.ChangeID(rc.CommitLsn, rc.IndexInTx), Source: "orchestrator", Payload: rc,
	})
	require.NoError(t, err)
	require.Equal(t, "cp.cdc.cin_aux.rt_session.update", msg.Subject)
	require.Contains(t, string(msg.Data), `"note":{"null":null}`)
	require.Contains(t, string(msg.Data), `"raw":{"unchangedToast":true}`)

	_, ev, err := events.Decode(context.Background(), msg)
	require.NoError(t, err)
	got := ev.Payload.(*eventsv1.RowChange)
	require.True(t, proto.Equal(rc, got))
	require.IsType(t, &eventsv1.Value_Null{}, got.NewValues["note"].Kind)
	require.IsType(t, &eventsv1.Value_UnchangedToast{}, got.NewValues["raw"].Kind)
}

func TestDecodeRejectsMalformed(t *testing.T) {
	t.Parallel()
	good, err := events.Encode(context.Background(), events.Event{
		Subject: "cp.tick.straux", ID: "x", Source: "s", Payload: sampleTick(time.Unix(0, 0)),
	})
	require.NoError(t, err)
	with := func(mut func(h nats.Header), data string) *nats.Msg {
		h := nats.Header{}
		for k, v := range good.Header {
			h[k] = append([]string(nil), v...)
		}
		mut(h)
		if data == "" {
			data = string(good.Data)
		}
		return &nats.Msg{Subject: good.Subject, Header: h, Data: []byte(data)}
	}
	cases := map[string]*nats.Msg{
		"no headers":       {Subject: "cp.tick.straux", Data: []byte(`{}`)},
		"bad specversion":  with(func(h nats.Header) { h.Set("ce-specversion", "0.3") }, ""),
		"no id":            with(func(h nats.Header) { h.Del("ce-id") }, ""),
		"no source":        with(func(h nats.Header) { h.Del("ce-source") }, ""),
		"bad time":         with(func(h nats.Header) { h.Set("ce-time", "yesterday") }, ""),
		"bad content-type": with(func(h nats.Header) { h.Set("content-type", "application/protobuf") }, ""),
		"unknown type":     with(func(h nats.Header) { h.Set("ce-type", "cryptopill.nope.v1") }, ""),
		"not json":         with(func(nats.Header) {}, "not json"),
		"wrong field type": with(func(nats.Header) {}, `{"module":42}`),
	}
	for name, msg := range cases {
		_, _, err := events.Decode(context.Background(), msg)
		require.ErrorIs(t, err, events.ErrMalformed, name)
	}
	_, _, err = events.Decode(context.Background(), cases["unknown type"])
	require.ErrorIs(t, err, events.ErrUnknownType)

	// Fields a newer producer added are ignored, not an error.
	_, ev, err := events.Decode(context.Background(), with(func(nats.Header) {}, `{"module":"straux","addedLater":1}`))
	require.NoError(t, err)
	require.Equal(t, "straux", ev.Payload.(*eventsv1.Tick).Module)
}

func TestEncodeRejectsInvalidEvents(t *testing.T) {
	t.Parallel()
	ok := events.Event{Subject: "cp.tick.straux", ID: "id", Source: "s", Payload: &eventsv1.Tick{}}
	for name, mut := range map[string]func(*events.Event){
		"no id":       func(e *events.Event) { e.ID = "" },
		"no payload":  func(e *events.Event) { e.Payload = nil },
		"no source":   func(e *events.Event) { e.Source = "" },
		"no subject":  func(e *events.Event) { e.Subject = "" },
		"wildcard":    func(e *events.Event) { e.Subject = "cp.tick.*" },
		"empty token": func(e *events.Event) { e.Subject = "cp..tick" },
		"space":       func(e *events.Event) { e.Subject = "cp.tick.str aux" },
	} {
		ev := ok
		mut(&ev)
		_, err := events.Encode(context.Background(), ev)
		require.ErrorIs(t, err, events.ErrInvalidEvent, name)
	}
}

func TestTypes(t *testing.T) {
	t.Parallel()
	require.Equal(t, []string{
		"cryptopill.tick.v1",
		"cryptopill.universe_changed.v1",
		"cryptopill.row_change.v1",
		"cryptopill.job_lifecycle.v1",
		"cryptopill.moves_imported.v1",
		"cryptopill.dead_letter.v1",
	}, events.Types())
	for _, typ := range events.Types() {
		m, err := events.NewMessage(typ)
		require.NoError(t, err)
		require.Equal(t, typ, events.TypeOf(m))
	}
}

func TestIDs(t *testing.T) {
	t.Parallel()
	start := time.Unix(1_700_000_000, 0)
	// Golden: UUIDv5(namespace, "tick\x00straux\x001700000000000000000"); a change here changes
	// every id already in the streams' duplicate windows.
	require.Equal(t, "1a769856-bf9b-5bfd-96b4-e3ff62b7b118", events.TickID("straux", start))
	require.Equal(t, events.TickID("straux", start), events.TickID("straux", start.In(time.FixedZone("x", 3600))))
	require.NotEqual(t, events.TickID("straux", start), events.TickID("cinimport", start))
	require.NotEqual(t, events.TickID("straux", start), events.TickID("straux", start.Add(time.Millisecond)))
	require.NotEqual(t, events.ChangeID(100, 1), events.ChangeID(100, 2))
	require.NotEqual(t, events.ChangeID(10, 11), events.ChangeID(101, 1))
	require.Equal(t, events.ChangeID(100, 1), events.ChangeID(100, 1))
	require.NotEqual(t, events.StableID("k", "ab", "c"), events.StableID("k", "a", "bc"))

	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-([45])[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	require.Equal(t, "5", uuid.FindStringSubmatch(events.ChangeID(1, 0))[1])
	require.Equal(t, "4", uuid.FindStringSubmatch(events.NewID())[1])
	require.NotEqual(t, events.NewID(), events.NewID())
}

func TestSubjects(t *testing.T) {
	t.Parallel()
	require.Equal(t, "cp.tick.cinimport", events.TickSubject(events.ModuleCinimport))
	require.Equal(t, "cp.cdc.market.account_trades.insert", events.ChangeSubject("market", "account_trades", eventsv1.RowChange_OP_INSERT))
	require.Equal(t, "cp.cdc.cin_aux.rt_session.delete", events.ChangeSubject("cin_aux", "rt_session", eventsv1.RowChange_OP_DELETE))
	require.Equal(t, "cp.cdc.cin_aux.rt_session.*", events.ChangeFilter("cin_aux", "rt_session"))
	require.Equal(t, "cp.job.fetch_klines.succeeded", events.JobSubject("fetch_klines", eventsv1.JobStatus_JOB_STATUS_SUCCEEDED))
	require.Equal(t, "cp.cinimport.moves_imported.42", events.MovesImportedSubject(42))
	require.Equal(t, "cp.dlq.straux-ticks", events.DeadLetterSubject(events.ConsumerStrauxTicks))
	require.True(t, strings.HasPrefix(events.SubjectUniverseChanged, "cp.universe."))
}
