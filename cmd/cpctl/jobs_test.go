package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/jobs"
	"cryptopill.dev/jobs/libs/testkit/natstest"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
)

// jobsFixture is a migrated database, a NATS server with the flags bucket the orchestrator
// creates, and a way to run cpctl commands against both.
type jobsFixture struct {
	t    *testing.T
	db   *pgtest.DB
	nats *natstest.Server
	kv   jetstream.KeyValue
}

func setupJobs(t *testing.T) jobsFixture {
	t.Helper()
	t.Parallel()
	f := jobsFixture{t: t, db: pgtest.NewDB(t), nats: natstest.NewServer(t)}
	js, err := jetstream.New(f.nats.Connect(t))
	require.NoError(t, err)
	f.kv, err = js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: defaultFlagsBucket, History: 10})
	require.NoError(t, err)
	return f
}

// run runs `cpctl <args>` and returns its exit status, stdout and stderr.
func (f jobsFixture) run(args ...string) (int, string, string) {
	f.t.Helper()
	env := newTestEnv(map[string]string{"DATABASE_URL": f.db.URL, "NATS_URL": f.nats.URL})
	var code int
	switch args[0] {
	case "jobs":
		code = jobsCommand(context.Background(), args[1:], env.cmdEnv)
	case "freeze", "unfreeze":
		code = freezeCommand(context.Background(), args[0], args[1:], env.cmdEnv)
	default:
		f.t.Fatalf("no command %s", args[0])
	}
	return code, env.stdout.String(), env.stderr.String()
}

func (f jobsFixture) exec(sql string, args ...any) {
	f.t.Helper()
	_, err := f.db.Pool.Exec(context.Background(), sql, args...)
	require.NoError(f.t, err)
}

func (f jobsFixture) enqueue(j jobs.NewJob) int64 {
	f.t.Helper()
	id, inserted, err := jobs.Enqueue(context.Background(), f.db.Pool, j)
	require.NoError(f.t, err)
	require.True(f.t, inserted)
	return id
}

func (f jobsFixture) status(id int64) string {
	f.t.Helper()
	var s string
	require.NoError(f.t, f.db.Pool.QueryRow(context.Background(), `SELECT status FROM ingest.jobs WHERE id = $1`, id).Scan(&s))
	return s
}

func TestJobsListFiltersAndShowsPausedAndFrozen(t *testing.T) {
	f := setupJobs(t)
	btc := f.enqueue(jobs.NewJob{Kind: jobs.KindFetchKlines, Key: jobs.Key("BTCUSDT", "1h"), Payload: map[string]string{"symbol": "BTCUSDT", "window": "1h"}})
	eth := f.enqueue(jobs.NewJob{Kind: jobs.KindFetchTicker, Key: "ETHUSDT", Payload: map[string]string{"symbol": "ETHUSDT"}})
	old := f.enqueue(jobs.NewJob{Kind: jobs.KindFetchTicker, Key: "SOLUSDT"})
	f.exec(`UPDATE ingest.jobs SET status = 'failed', finished_at = now(), error = 'exchange said no' WHERE id = $1`, eth)
	f.exec(`UPDATE ingest.jobs SET updated_at = '2020-01-01T00:00:00Z' WHERE id = $1`, old)
	_, err := jobs.Pause(context.Background(), f.db.Pool, jobs.KindComputeMEA, "rebuilding the grids")
	require.NoError(t, err)
	_, err = f.kv.PutString(context.Background(), "freeze.straux", "exchange maintenance")
	require.NoError(t, err)

	code, out, errOut := f.run("jobs", "list")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "frozen: straux (freeze.straux since")
	require.Contains(t, out, "paused: compute_mea (by operator since")
	require.Regexp(t, fmt.Sprintf(`(?m)^%d\s+fetch_ticker\s+ETHUSDT\s+failed\s+0/5\s+\S+\s+\S+\s+exchange said no$`, eth), out)
	require.Less(t, strings.Index(out, fmt.Sprintf("\n%d ", old)), strings.Index(out, fmt.Sprintf("\n%d ", btc)), "newest first")

	list := func(args ...string) []int64 {
		t.Helper()
		code, out, errOut := f.run(append([]string{"jobs", "list", "--json"}, args...)...)
		require.Equal(t, 0, code, errOut)
		var rep jobsListReport
		require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
		ids := []int64{}
		for _, j := range rep.Jobs {
			ids = append(ids, j.ID)
		}
		return ids
	}
	require.Equal(t, []int64{old, eth}, list("-kind", "fetch_ticker"))
	require.Equal(t, []int64{eth}, list("-status", "failed"))
	require.Equal(t, []int64{btc}, list("-symbol", "BTCUSDT"))
	require.Equal(t, []int64{eth, btc}, list("-since", "1h"), "changed in the last hour: not the 2020 one")
	require.Equal(t, []int64{old}, list("-limit", "1"))

	code, _, errOut = f.run("jobs", "list", "-status", "sleeping")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, `-status "sleeping"`)
}

func TestJobsShowRetryCancel(t *testing.T) {
	f := setupJobs(t)
	ctx := context.Background()
	id := f.enqueue(jobs.NewJob{Kind: jobs.KindFetchTicker, Key: "ETHUSDT", Payload: map[string]string{"symbol": "ETHUSDT"}})
	f.exec(`UPDATE ingest.jobs SET status = 'failed', attempts = 5, finished_at = now(), error = 'exchange said no' WHERE id = $1`, id)
	f.exec(`INSERT INTO ops.job_run (job_id, kind, name, attempt, status, started_at, finished_at, error)
		VALUES ($1, 'fetch_ticker', 'ETHUSDT', 5, 'failed', '2026-12-01T10:00:00Z', '2026-12-01T10:00:01.5Z', 'exchange said no')`, id)

	code, out, errOut := f.run("jobs", "show", fmt.Sprint(id))
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, `"symbol": "ETHUSDT"`, "payload decoded")
	require.Contains(t, out, "5 of 5")
	require.Regexp(t, `(?m)^\d+\s+5\s+failed\s+2026-12-01T10:00:00Z\s+1\.5s\s+exchange said no$`, out)

	// The same work was enqueued again: retrying would duplicate it.
	live := f.enqueue(jobs.NewJob{Kind: jobs.KindFetchTicker, Key: "ETHUSDT"})
	code, _, errOut = f.run("jobs", "retry", fmt.Sprint(id))
	require.Equal(t, 1, code)
	require.Contains(t, errOut, fmt.Sprintf("already queued or running as job %d", live))

	code, out, errOut = f.run("jobs", "cancel", fmt.Sprint(live))
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "was queued")
	require.Equal(t, "cancelled", f.status(live))
	code, _, errOut = f.run("jobs", "cancel", fmt.Sprint(live))
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "not queued or running")

	code, _, errOut = f.run("jobs", "retry", fmt.Sprint(id))
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "queued", f.status(id))

	// Every failed job of a kind, with progress on stderr.
	for _, k := range []string{"A", "B", "C"} {
		f.exec(`UPDATE ingest.jobs SET status = 'failed', finished_at = now() WHERE id = $1`,
			f.enqueue(jobs.NewJob{Kind: jobs.KindFetchOrderbook, Key: k}))
	}
	code, _, errOut = f.run("jobs", "retry", "-kind", "fetch_orderbook")
	require.Equal(t, 2, code, "without -failed")
	require.Contains(t, errOut, "-failed")
	code, out, errOut = f.run("jobs", "retry", "-kind", "fetch_orderbook", "-failed", "--json")
	require.Equal(t, 0, code, errOut)
	require.JSONEq(t, `{"kind":"fetch_orderbook","retried":3,"skipped":0}`, out)
	require.Contains(t, errOut, "failed fetch_orderbook jobs looked at: done 3")
	n, err := jobs.RetryFailed(ctx, f.db.Pool, jobs.KindFetchOrderbook)
	require.NoError(t, err)
	require.Zero(t, n)

	code, _, _ = f.run("jobs", "show", "999999")
	require.Equal(t, 1, code)
	code, _, _ = f.run("jobs", "show", "twelve")
	require.Equal(t, 2, code)
}

func TestJobsPauseResumePrune(t *testing.T) {
	f := setupJobs(t)
	code, out, errOut := f.run("jobs", "pause", "fetch_klines", "-reason", "backfill by hand")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "paused fetch_klines")
	code, out, _ = f.run("jobs", "list")
	require.Equal(t, 0, code)
	require.Contains(t, out, "paused: fetch_klines (by operator since")
	require.Contains(t, out, "backfill by hand")
	code, out, errOut = f.run("jobs", "resume", "fetch_klines")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "resumed fetch_klines")
	code, _, errOut = f.run("jobs", "pause", "fetch_everything")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, `unknown kind "fetch_everything"`)

	id := f.enqueue(jobs.NewJob{Kind: jobs.KindFetchTicker, Key: "OLD"})
	f.exec(`UPDATE ingest.jobs SET status = 'succeeded', finished_at = now() - interval '10 days' WHERE id = $1`, id)
	keep := f.enqueue(jobs.NewJob{Kind: jobs.KindFetchTicker, Key: "NEW"})
	f.exec(`UPDATE ingest.jobs SET status = 'succeeded', finished_at = now() - interval '1 day' WHERE id = $1`, keep)
	code, out, errOut = f.run("jobs", "prune", "-older-than", "168h")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "pruned 1 finished jobs")
	require.Equal(t, "succeeded", f.status(keep))
	code, _, _ = f.run("jobs", "prune")
	require.Equal(t, 2, code, "-older-than is required")
}

// Freeze pauses the module's exchange-calling kinds under its flag; unfreeze lifts exactly those,
// never a pause an operator made by hand.
func TestFreezePausesMarketKindsAndUnfreezeRestoresExactly(t *testing.T) {
	f := setupJobs(t)
	ctx := context.Background()
	_, err := jobs.Pause(ctx, f.db.Pool, jobs.KindFetchTicker, "by hand")
	require.NoError(t, err)

	code, out, errOut := f.run("freeze", "straux", "--reason", "exchange maintenance")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "paused by this freeze: fetch_klines, fetch_orderbook, fetch_ticker")
	e, err := f.kv.Get(ctx, "freeze.straux")
	require.NoError(t, err)
	require.Equal(t, "exchange maintenance", string(e.Value()))
	pauses := func() []string {
		t.Helper()
		all, err := jobs.Paused(ctx, f.db.Pool)
		require.NoError(t, err)
		var out []string
		for _, p := range all {
			out = append(out, string(p.Kind)+"/"+p.Source)
		}
		return out
	}
	require.Equal(t, []string{"fetch_klines/freeze.straux", "fetch_orderbook/freeze.straux",
		"fetch_ticker/freeze.straux", "fetch_ticker/operator"}, pauses())
	code, out, _ = f.run("jobs", "list")
	require.Equal(t, 0, code)
	require.Contains(t, out, "frozen: straux (freeze.straux")

	// A freeze of every module pauses the same kinds under its own flag.
	code, _, errOut = f.run("freeze")
	require.Equal(t, 0, code, errOut)
	code, out, errOut = f.run("unfreeze", "straux")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "ticks stay frozen: flag freeze still set", "the global freeze still holds straux")
	_, err = f.kv.Get(ctx, "freeze.straux")
	require.ErrorIs(t, err, jetstream.ErrKeyNotFound)
	require.Equal(t, []string{"fetch_klines/freeze", "fetch_orderbook/freeze", "fetch_ticker/freeze", "fetch_ticker/operator"}, pauses())

	code, out, errOut = f.run("unfreeze", "--json")
	require.Equal(t, 0, code, errOut)
	var rep freezeReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Equal(t, []jobs.Kind{jobs.KindFetchKlines, jobs.KindFetchOrderbook, jobs.KindFetchTicker}, rep.Resumed)
	require.Equal(t, []string{"fetch_ticker/operator"}, pauses(), "the operator's pause stays")

	// cinimport has no exchange-calling job kinds: its freeze stops its ticks only.
	code, out, errOut = f.run("freeze", "cinimport")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "paused by this freeze: none")
	code, _, errOut = f.run("freeze", "nosuchmodule")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, `unknown module "nosuchmodule"`)
}

// Without the flags bucket (no orchestrator ever ran against this NATS) freeze refuses and
// pauses nothing.
func TestFreezeWithoutFlagsBucket(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDB(t)
	s := natstest.NewServer(t)
	env := newTestEnv(map[string]string{"DATABASE_URL": d.URL, "NATS_URL": s.URL})
	code := freezeCommand(context.Background(), "freeze", []string{"straux"}, env.cmdEnv)
	require.Equal(t, 1, code)
	require.Contains(t, env.stderr.String(), "KV bucket CP_FLAGS not found")
	all, err := jobs.Paused(context.Background(), d.Pool)
	require.NoError(t, err)
	require.Empty(t, all)
}
