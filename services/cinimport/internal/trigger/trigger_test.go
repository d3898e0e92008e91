package trigger

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/events"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
	"cryptopill.dev/jobs/services/cinimport/internal/importer"
)

type fakeImporter struct {
	mu    sync.Mutex
	calls [][]importer.Session
}

func (f *fakeImporter) OpenSessions(_ context.Context, scopes ...string) ([]int64, error) {
	if len(scopes) == 1 && scopes[0] == "alice" {
		return []int64{7}, nil
	}
	return []int64{7, 8}, nil
}

func (f *fakeImporter) Import(_ context.Context, s []importer.Session, _ importer.Options) ([]importer.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
	out := make([]importer.Result, len(s))
	for i, x := range s {
		out[i] = importer.Result{SessionID: x.ID, Moves: 1, FirstTrade: time.Unix(1, 0), LastTrade: time.Unix(2, 0)}
	}
	return out, nil
}

type fakePublisher struct {
	mu  sync.Mutex
	evs []events.Event
}

func (f *fakePublisher) Publish(_ context.Context, ev events.Event) (*jetstream.PubAck, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.evs = append(f.evs, ev)
	return &jetstream.PubAck{}, nil
}

func tradeInsert(scope, at string) events.Event {
	return events.Event{Subject: "cp.cdc.market.account_trades.insert", Payload: &eventsv1.RowChange{
		Schema: "market", Table: "account_trades", Op: eventsv1.RowChange_OP_INSERT,
		NewValues: map[string]*eventsv1.Value{
			"account_scope": {Kind: &eventsv1.Value_Text{Text: scope}},
			"trade_time":    {Kind: &eventsv1.Value_Text{Text: at}},
		}}}
}

func TestABurstOfTradeInsertsIsOneImport(t *testing.T) {
	t.Parallel()
	im, pub := &fakeImporter{}, &fakePublisher{}
	tr := New(im, pub, Config{Debounce: 200 * time.Millisecond})
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			at := "2025-03-01 12:00:00+00"
			if i == 42 {
				at = "2025-03-01 11:00:00.5+00"
			}
			require.NoError(t, tr.HandleChange(context.Background(), tradeInsert("alice", at)))
		}()
	}
	wg.Wait()
	tr.Wait()
	require.Len(t, im.calls, 1, "one import for the burst")
	require.Len(t, im.calls[0], 1)
	require.Equal(t, int64(7), im.calls[0][0].ID)
	require.Len(t, pub.evs, 1)
	mi := pub.evs[0].Payload.(*eventsv1.MovesImported)
	require.Equal(t, eventsv1.MovesImported_TRIGGER_TRADES_INSERTED, mi.GetTrigger())
	require.Equal(t, events.MovesImportedID(7, mi.GetRunId()), pub.evs[0].ID)
}

func TestSessionChanges(t *testing.T) {
	t.Parallel()
	im, pub := &fakeImporter{}, &fakePublisher{}
	tr := New(im, pub, Config{})
	change := func(op eventsv1.RowChange_Op, status string) events.Event {
		return events.Event{Payload: &eventsv1.RowChange{Schema: "cin_aux", Table: "rt_session", Op: op,
			NewValues: map[string]*eventsv1.Value{
				"session_id": {Kind: &eventsv1.Value_Text{Text: "9"}},
				"status":     {Kind: &eventsv1.Value_Text{Text: status}},
			}}}
	}
	require.NoError(t, tr.HandleChange(context.Background(), change(eventsv1.RowChange_OP_INSERT, "OPEN")))
	require.NoError(t, tr.HandleChange(context.Background(), change(eventsv1.RowChange_OP_UPDATE, "CLOSED")))
	require.NoError(t, tr.HandleChange(context.Background(), change(eventsv1.RowChange_OP_DELETE, "")))
	require.Equal(t, [][]importer.Session{{{ID: 9}}}, im.calls)
	require.Equal(t, eventsv1.MovesImported_TRIGGER_SESSION_CHANGED, pub.evs[0].Payload.(*eventsv1.MovesImported).GetTrigger())

	require.NoError(t, tr.HandleTick(context.Background(), events.Event{Payload: &eventsv1.Tick{}}))
	require.Equal(t, []importer.Session{{ID: 7}, {ID: 8}}, im.calls[1])
	require.Len(t, pub.evs, 3)

	// A start moved earlier: an import as usual (it finds the older trades from the start its
	// cursor covers). A start that is not a timestamptz is imported and then dead-lettered.
	moved := change(eventsv1.RowChange_OP_UPDATE, "OPEN")
	rc := moved.Payload.(*eventsv1.RowChange)
	rc.NewValues["started_at"] = &eventsv1.Value{Kind: &eventsv1.Value_Text{Text: "2025-03-01 10:00:00+00"}}
	rc.OldValues = map[string]*eventsv1.Value{"started_at": {Kind: &eventsv1.Value_Text{Text: "2025-03-01 12:00:00+00"}}}
	require.NoError(t, tr.HandleChange(context.Background(), moved))
	require.Equal(t, []importer.Session{{ID: 9}}, im.calls[2])
	rc.NewValues["started_at"] = &eventsv1.Value{Kind: &eventsv1.Value_Text{Text: "Sun Mar 01 10:00:00 2025 UTC"}} // DateStyle Postgres
	err := tr.HandleChange(context.Background(), moved)
	require.ErrorIs(t, err, events.ErrPermanent)
	require.ErrorContains(t, err, `started_at "Sun Mar 01 10:00:00 2025 UTC" is not a timestamptz`)
	require.Equal(t, []importer.Session{{ID: 9}}, im.calls[3], "imported all the same")

	bad := change(eventsv1.RowChange_OP_INSERT, "OPEN")
	delete(bad.Payload.(*eventsv1.RowChange).NewValues, "session_id")
	require.ErrorIs(t, tr.HandleChange(context.Background(), bad), events.ErrPermanent)
}
