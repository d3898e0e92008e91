package events_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"cryptopill.dev/jobs/libs/events"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
)

// FuzzDecode decodes a message built from fuzzed CloudEvents headers and payload. Nothing
// panics; a message that does not decode is an error wrapping ErrMalformed; one that decodes
// survives Encode and Decode again unchanged (id, type, source, time and payload), and its
// encoding is stable.
func FuzzDecode(f *testing.F) {
	ctx := context.Background()
	seed := func(ev events.Event) {
		msg, err := events.Encode(ctx, ev)
		require.NoError(f, err)
		h := msg.Header
		f.Add(h.Get(events.HeaderSpecVersion), h.Get(events.HeaderID), h.Get(events.HeaderType), h.Get(events.HeaderSource),
			h.Get(events.HeaderTime), h.Get(events.HeaderContentType), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", msg.Data)
	}
	at := time.Date(2026, 3, 1, 12, 0, 40, 123456789, time.UTC)
	seed(events.Event{Subject: "cp.tick.straux", ID: "t1", Source: "orchestrator", Time: at, Payload: sampleTick(at)})
	seed(events.Event{Subject: "cp.universe.changed", ID: "u1", Source: "orchestrator", Time: at,
		Payload: &eventsv1.UniverseChanged{Version: "3", Enabled: []string{"BTCUSDT", "ETHUSDT"}, ChangedAt: timestamppb.New(at)}})
	seed(events.Event{Subject: "cp.cdc.cin_aux.rt_session.update", ID: "c1", Source: "orchestrator", Time: at,
		Payload: &eventsv1.RowChange{Schema: "cin_aux", Table: "rt_session", Op: eventsv1.RowChange_OP_UPDATE, CommitLsn: 1 << 63,
			NewValues: map[string]*eventsv1.Value{"label": {Kind: &eventsv1.Value_Text{Text: "é\x00\""}},
				"blob": {Kind: &eventsv1.Value_Binary{Binary: []byte{0, 0xff}}}, "n": {Kind: &eventsv1.Value_Null{}}},
			CommitTime: timestamppb.New(at), KeyColumns: []string{"session_id"}}})
	seed(events.Event{Subject: "cp.job.fetch_klines.failed", ID: "j1", Source: "straux", Time: at,
		Payload: &eventsv1.JobLifecycle{Kind: "fetch_klines", Status: eventsv1.JobStatus_JOB_STATUS_FAILED, Attempts: 5, Error: "boom"}})
	seed(events.Event{Subject: "cp.imports.moves.1", ID: "m1", Source: "cinimport", Time: at, Payload: &eventsv1.MovesImported{SessionId: 1, Moves: 12, RunId: "r"}})
	seed(events.Event{Subject: "cp.dlq.x", ID: "d1", Source: "straux", Time: at,
		Payload: &eventsv1.DeadLetter{Reason: eventsv1.DeadLetter_REASON_UNDECODABLE, Error: "payload: unexpected EOF",
			OriginalPayload: []byte("{"), OriginalHeaders: map[string]*eventsv1.HeaderValues{"ce-id": {Values: []string{"x"}}}}})
	// Bad input: no headers, another spec version, an unknown type, a bad time, another content
	// type, payloads truncated, of the wrong type, out of range, NaN-ish and huge.
	f.Add("", "", "", "", "", "", "", []byte(nil))
	f.Add("0.3", "x", "cryptopill.tick.v1", "s", "", "", "", []byte("{}"))
	f.Add("1.0", "x", "cryptopill.nope.v1", "s", "", "", "", []byte("{}"))
	f.Add("1.0", "x", "cryptopill.tick.v1", "s", "yesterday", "", "", []byte("{}"))
	f.Add("1.0", "x", "cryptopill.tick.v1", "s", "", "text/plain", "", []byte("{}"))
	f.Add("1.0", "x", "cryptopill.tick.v1", "s", "", "application/json; charset=utf-8", "garbage", []byte(`{"module":"straux","periodStart":"2026-03-01T12:00:40Z"`))
	f.Add("1.0", "x", "cryptopill.tick.v1", "s", "", "", "", []byte(`{"module":7,"period":"forty"}`))
	f.Add("1.0", "x", "cryptopill.tick.v1", "s", "", "", "", []byte(`{"periodStart":"10000-01-01T00:00:00Z","period":"315576000001s"}`))
	f.Add("1.0", "x", "cryptopill.row_change.v1", "s", "", "", "", []byte(`{"commitLsn":"18446744073709551616","xid":"NaN","indexInTx":-1}`))
	f.Add("1.0", "x", "cryptopill.moves_imported.v1", "s", "", "", "", []byte(`{"moves":"1e400","unknownField":{"deep":[[[[]]]]}}`))
	f.Add("1.0", "x", "cryptopill.row_change.v1", "s", "", "", "", []byte(`{"newValues":{"a":{"text":"\ud800"}}}`))
	f.Fuzz(func(t *testing.T, specVersion, id, ceType, source, ceTime, contentType, traceparent string, data []byte) {
		h := nats.Header{}
		for k, v := range map[string]string{events.HeaderSpecVersion: specVersion, events.HeaderID: id, events.HeaderType: ceType,
			events.HeaderSource: source, events.HeaderTime: ceTime, events.HeaderContentType: contentType, events.HeaderTraceParent: traceparent} {
			if v != "" {
				h.Set(k, v)
			}
		}
		dctx, ev, err := events.Decode(ctx, &nats.Msg{Subject: "cp.fuzz", Header: h, Data: data})
		require.NotNil(t, dctx)
		if err != nil {
			require.True(t, errors.Is(err, events.ErrMalformed), "%v does not wrap ErrMalformed", err)
			require.NotEmpty(t, err.Error())
			return
		}
		require.NotNil(t, ev.Payload)
		require.Equal(t, ceType, events.TypeOf(ev.Payload))
		require.Equal(t, id, ev.ID)
		require.Equal(t, source, ev.Source)

		again, err := events.Encode(dctx, events.Event{Subject: "cp.fuzz", ID: ev.ID, Source: ev.Source, Time: ev.Time, Payload: ev.Payload})
		require.NoError(t, err)
		_, back, err := events.Decode(ctx, again)
		require.NoError(t, err, "%s", again.Data)
		require.True(t, proto.Equal(ev.Payload, back.Payload), "%s", again.Data)
		require.Equal(t, ev.ID, back.ID)
		require.Equal(t, ev.Type, back.Type)
		require.Equal(t, ev.Source, back.Source)
		if !ev.Time.IsZero() {
			require.True(t, ev.Time.Equal(back.Time), "%s vs %s", ev.Time, back.Time)
		}
		third, err := events.Encode(ctx, events.Event{Subject: "cp.fuzz", ID: back.ID, Source: back.Source, Time: back.Time, Payload: back.Payload})
		require.NoError(t, err)
		require.Equal(t, string(again.Data), string(third.Data), "the encoding is stable")
	})
}
