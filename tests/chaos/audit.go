package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"cryptopill.dev/jobs/libs/events"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
)

// The audit slot is the ground truth of what Postgres committed: a second logical slot on the
// relay's publication, created before the workload's first change and only ever peeked, so it
// holds every committed change of the relayed tables in commit order with the very commit LSNs
// and indexes the relay derives its event ids from. It survives Postgres crashes like the relay's
// slot does.
const (
	auditSlot   = "chaos_audit"
	publication = "cp_cdc"
)

func createAuditSlot(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := pool.Exec(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, auditSlot); err != nil {
		return fmt.Errorf("create audit slot %s: %w", auditSlot, err)
	}
	return nil
}

// committedChanges decodes the audit slot (without consuming it): every insert, update and delete
// of the published tables, in commit order.
func committedChanges(ctx context.Context, pool *pgxpool.Pool) ([]committedChange, error) {
	rows, err := pool.Query(ctx, `SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL,
		'proto_version', '1', 'publication_names', $2)`, auditSlot, publication)
	if err != nil {
		return nil, fmt.Errorf("peek audit slot: %w", err)
	}
	defer rows.Close()
	relations := map[uint32]string{}
	var out []committedChange
	var commitLSN pglogrepl.LSN
	var index uint32
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("peek audit slot: %w", err)
		}
		msg, err := pglogrepl.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("decode audit slot message %q: %w", data[:1], err)
		}
		var rel uint32
		switch m := msg.(type) {
		case *pglogrepl.BeginMessage:
			commitLSN, index = m.FinalLSN, 0
			continue
		case *pglogrepl.RelationMessage:
			relations[m.RelationID] = m.Namespace + "." + m.RelationName
			continue
		case *pglogrepl.InsertMessage:
			rel = m.RelationID
		case *pglogrepl.UpdateMessage:
			rel = m.RelationID
		case *pglogrepl.DeleteMessage:
			rel = m.RelationID
		default:
			continue
		}
		out = append(out, committedChange{ID: events.ChangeID(uint64(commitLSN), index), Table: relations[rel], Pos: len(out)})
		index++
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("peek audit slot: %w", err)
	}
	return out, nil
}

// streamReader reads a stream incrementally (messages are only ever appended during a scenario).
type streamReader struct {
	stream      string
	filter      string
	headersOnly bool
	next        uint64
	msgs        []jetstream.Msg // kept only when payloads are wanted
	heads       []streamMsg
}

// read fetches every message stored since the last read.
func (r *streamReader) read(ctx context.Context, js jetstream.JetStream) error {
	if r.next == 0 {
		r.next = 1
	}
	actx, cancel := apiContext(ctx)
	st, err := js.Stream(actx, r.stream)
	cancel()
	if err != nil {
		return fmt.Errorf("stream %s: %w", r.stream, err)
	}
	last := st.CachedInfo().State.LastSeq
	if last < r.next {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: r.next,
		HeadersOnly: r.headersOnly, InactiveThreshold: 30 * time.Second}
	if r.filter != "" {
		cfg.FilterSubjects = []string{r.filter}
	}
	actx, cancel = apiContext(ctx)
	cons, err := st.OrderedConsumer(actx, cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("read %s: %w", r.stream, err)
	}
	ci := cons.CachedInfo()
	if ci == nil {
		return fmt.Errorf("read %s: ordered consumer has no info", r.stream)
	}
	// Fetch exactly what is pending, so no fetch waits out its expiry for a batch that cannot fill.
	pending := ci.NumPending
	for pending > 0 {
		batch, err := cons.Fetch(int(min(pending, 1000)), jetstream.FetchMaxWait(10*time.Second))
		if err != nil {
			return fmt.Errorf("read %s from %d: %w", r.stream, r.next, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("read %s: %w", r.stream, err)
			}
			r.heads = append(r.heads, streamMsg{Seq: md.Sequence.Stream, Subject: m.Subject(), ID: m.Headers().Get(nats.MsgIdHdr)})
			if !r.headersOnly {
				r.msgs = append(r.msgs, m)
			}
			r.next = md.Sequence.Stream + 1
			pending = md.NumPending
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return fmt.Errorf("read %s from %d: %w", r.stream, r.next, err)
		}
		if n == 0 {
			return fmt.Errorf("read %s from %d: no message within 10s though %d are pending", r.stream, r.next, pending)
		}
	}
	return nil
}

// apiContext bounds one JetStream API request: while a stream has no leader a request can hang,
// and a pass that waits long on one would inflate the measured recovery.
func apiContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 3*time.Second)
}

// auditResult is one pass of the audit.
type auditResult struct {
	Changes changeCounts
	// Ticks: straux ticks stored (distinct) and stored twice.
	Ticks, TickDuplicates int
	// Samples: (core symbol, ticked period) pairs audited, missing, and doubled.
	Samples, SamplesMissing, SamplesDoubled int
	// Moves: trades of the open session's scope, trades without their move, moves without a
	// trade or doubled.
	Trades, MovesMissing, MovesExtra int
	// Jobs: live jobs the enabled universe needs, missing ones, keys live more than once, and
	// live fetch_klines jobs of symbols no longer enabled.
	JobsExpected, JobsMissing, JobsDoubled, JobsStale int
	// Backlog: messages the change and universe consumers have not settled yet.
	Backlog int
	// DeadLetters in CP_DLQ.
	DeadLetters uint64
}

func (a auditResult) lost() int {
	return a.Changes.Lost + a.SamplesMissing + a.MovesMissing + a.JobsMissing
}

func (a auditResult) duplicates() int {
	return a.Changes.Duplicates + a.TickDuplicates + a.SamplesDoubled + a.MovesExtra + a.JobsDoubled
}

// pending names what a pass that does not hold is still waiting for.
func (a auditResult) pending() []string {
	var out []string
	for _, c := range []struct {
		name string
		n    int
	}{{"changes", a.Changes.Lost}, {"samples", a.SamplesMissing}, {"moves", a.MovesMissing}, {"jobs", a.JobsMissing}, {"backlog", a.Backlog}} {
		if c.n > 0 {
			out = append(out, c.name)
		}
	}
	return out
}

// converged: everything committed has arrived and been processed. Duplicates and reordering never
// go away, so they do not gate convergence; they are reported.
func (a auditResult) converged() bool { return a.lost() == 0 && a.Backlog == 0 }

func (a auditResult) detail() string {
	return fmt.Sprintf("changes=%d stored=%d lost=%d dup=%d reordered=%d unmatched=%d; ticks=%d dup=%d; samples=%d missing=%d doubled=%d; "+
		"trades=%d moves_missing=%d moves_extra=%d; jobs=%d missing=%d doubled=%d stale=%d; backlog=%d dlq=%d",
		a.Changes.Committed, a.Changes.Stored, a.Changes.Lost, a.Changes.Duplicates, a.Changes.Reordered, a.Changes.Unmatched,
		a.Ticks, a.TickDuplicates, a.Samples, a.SamplesMissing, a.SamplesDoubled,
		a.Trades, a.MovesMissing, a.MovesExtra, a.JobsExpected, a.JobsMissing, a.JobsDoubled, a.JobsStale, a.Backlog, a.DeadLetters)
}

// auditor runs audit passes over one stack; the ground truth is read once (the workload has
// stopped), the streams incrementally.
type auditor struct {
	s         *Stack
	committed []committedChange
	cdc       streamReader
	ticks     streamReader
	periods   map[string]time.Time // tick id → period start
	until     time.Time            // ticks of periods starting before this are audited
	waitedFor []string             // conditions passes before convergence waited for
}

func newAuditor(ctx context.Context, s *Stack, until time.Time) (*auditor, error) {
	committed, err := committedChanges(ctx, s.pool)
	if err != nil {
		return nil, err
	}
	return &auditor{s: s, committed: committed, until: until, periods: map[string]time.Time{},
		cdc:   streamReader{stream: "CP_CDC", headersOnly: true},
		ticks: streamReader{stream: "CP_TICKS", filter: events.TickSubject("straux")}}, nil
}

func (a *auditor) pass(ctx context.Context) (auditResult, error) {
	var r auditResult
	if err := a.cdc.read(ctx, a.s.js); err != nil {
		return r, err
	}
	r.Changes = compareChanges(a.committed, a.cdc.heads)
	if err := a.ticks.read(ctx, a.s.js); err != nil {
		return r, err
	}
	for _, m := range a.ticks.msgs {
		id := m.Headers().Get(nats.MsgIdHdr)
		if _, ok := a.periods[id]; ok {
			continue
		}
		_, ev, err := events.Decode(ctx, &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
		if err != nil {
			return r, fmt.Errorf("decode tick %s: %w", id, err)
		}
		tick, ok := ev.Payload.(*eventsv1.Tick)
		if !ok {
			return r, fmt.Errorf("tick %s: payload %T", id, ev.Payload)
		}
		a.periods[id] = tick.GetPeriodStart().AsTime()
	}
	a.ticks.msgs = nil
	r.TickDuplicates = len(a.ticks.heads) - len(a.periods)
	var periods []time.Time
	for _, p := range a.periods {
		if p.Before(a.until) {
			periods = append(periods, p)
		}
	}
	r.Ticks = len(periods)
	if err := a.dbChecks(ctx, &r, periods); err != nil {
		return r, err
	}
	for _, c := range []struct{ stream, durable string }{{"CP_CDC", "cinimport-changes"}, {"CP_UNIVERSE", "seeder-universe"}} {
		actx, cancel := apiContext(ctx)
		cons, err := a.s.js.Consumer(actx, c.stream, c.durable)
		if err != nil {
			cancel()
			return r, fmt.Errorf("consumer %s: %w", c.durable, err)
		}
		info, err := cons.Info(actx)
		cancel()
		if err != nil {
			return r, fmt.Errorf("consumer %s: %w", c.durable, err)
		}
		r.Backlog += int(info.NumPending) + info.NumAckPending
	}
	actx, cancel := apiContext(ctx)
	dlq, err := a.s.js.Stream(actx, "CP_DLQ")
	cancel()
	if err != nil {
		return r, fmt.Errorf("stream CP_DLQ: %w", err)
	}
	r.DeadLetters = dlq.CachedInfo().State.Msgs
	return r, nil
}

func (a *auditor) dbChecks(ctx context.Context, r *auditResult, periods []time.Time) error {
	pool := a.s.pool
	err := pool.QueryRow(ctx, `
		SELECT count(*), count(*) FILTER (WHERE n = 0), coalesce(sum(greatest(n - 1, 0)), 0)
		  FROM (SELECT (SELECT count(*) FROM str_aux.samples x WHERE x.symbol = s AND x.period_start = p) AS n
		          FROM unnest($1::timestamptz[]) AS p, unnest($2::text[]) AS s) q`,
		periods, coreSymbols).Scan(&r.Samples, &r.SamplesMissing, &r.SamplesDoubled)
	if err != nil {
		return fmt.Errorf("audit samples: %w", err)
	}
	err = pool.QueryRow(ctx, `
		WITH due AS (
		    SELECT s.session_id, t.symbol, t.trade_id
		      FROM market.account_trades t
		      JOIN cin_aux.rt_session s ON s.account_scope = t.account_scope AND s.status = 'OPEN' AND t.trade_time >= s.started_at
		     WHERE t.account_scope = $1)
		SELECT (SELECT count(*) FROM due),
		       (SELECT count(*) FROM due d WHERE NOT EXISTS (SELECT 1 FROM cin_aux.rt_move m
		             WHERE m.session_id = d.session_id AND m.src_symbol = d.symbol AND m.src_trade_id = d.trade_id)),
		       (SELECT count(*) FROM cin_aux.rt_move m WHERE NOT EXISTS (SELECT 1 FROM due d
		             WHERE m.session_id = d.session_id AND m.src_symbol = d.symbol AND m.src_trade_id = d.trade_id))
		     + (SELECT count(*) - count(DISTINCT (session_id, src_symbol, src_trade_id)) FROM cin_aux.rt_move)`,
		tradeScope).Scan(&r.Trades, &r.MovesMissing, &r.MovesExtra)
	if err != nil {
		return fmt.Errorf("audit moves: %w", err)
	}
	err = pool.QueryRow(ctx, `
		WITH expected AS (
		    SELECT 'fetch_klines'::text AS kind, u.symbol || '/' || w.label AS dedup_key
		      FROM settings.coin_universe u CROSS JOIN settings.windows w
		     WHERE coalesce(u.enabled, true) AND w.enabled
		    UNION ALL
		    SELECT k, '' FROM unnest(ARRAY['fetch_ticker', 'fetch_orderbook', 'compute_str_vectors', 'compute_matrices', 'compute_mea']) AS k),
		live AS (
		    SELECT kind, dedup_key, count(*) AS n FROM ingest.jobs WHERE status IN ('queued', 'running') GROUP BY kind, dedup_key)
		SELECT (SELECT count(*) FROM expected),
		       (SELECT count(*) FROM expected e WHERE NOT EXISTS (SELECT 1 FROM live l WHERE l.kind = e.kind AND l.dedup_key = e.dedup_key)),
		       (SELECT coalesce(sum(n - 1), 0) FROM live WHERE n > 1),
		       (SELECT count(*) FROM live l WHERE NOT EXISTS (SELECT 1 FROM expected e WHERE l.kind = e.kind AND l.dedup_key = e.dedup_key))`,
	).Scan(&r.JobsExpected, &r.JobsMissing, &r.JobsDoubled, &r.JobsStale)
	if err != nil {
		return fmt.Errorf("audit jobs: %w", err)
	}
	return nil
}

// payloads describes the example messages of a pass: their payloads, cut short.
func (a *auditor) payloads(ctx context.Context, r auditResult) []string {
	st, err := a.s.js.Stream(ctx, "CP_CDC")
	if err != nil {
		return nil
	}
	var out []string
	for _, seq := range r.Changes.ExampleSeqs {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			out = append(out, fmt.Sprintf("seq=%d: %v", seq, err))
			continue
		}
		data := string(m.Data)
		if len(data) > 300 {
			data = data[:300] + "…"
		}
		out = append(out, fmt.Sprintf("seq=%d %s", seq, data))
	}
	return out
}

// waitConverged polls audit passes until one converges or timeout passes; it returns the last
// pass, whether it converged, and when.
func (a *auditor) waitConverged(ctx context.Context, timeout time.Duration) (auditResult, bool, time.Time, error) {
	deadline := time.Now().Add(timeout)
	var last auditResult
	var lastErr error
	for {
		pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		began := time.Now()
		r, err := a.pass(pctx)
		cancel()
		a.s.log.Debug("audit pass", "took", time.Since(began), "err", err)
		if err == nil {
			last, lastErr = r, nil
			if r.converged() {
				return r, true, time.Now(), nil
			}
			for _, p := range r.pending() {
				if !slices.Contains(a.waitedFor, p) {
					a.waitedFor = append(a.waitedFor, p)
				}
			}
			a.s.log.Debug("audit pass does not hold yet", "waiting_for", r.pending(), "audit", r.detail())
		} else {
			lastErr = err
			a.s.log.Warn("audit pass failed; retrying", "err", err)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return last, false, time.Now(), lastErr
		}
		if !sleepCtx(ctx, 500*time.Millisecond) {
			return last, false, time.Now(), ctx.Err()
		}
	}
}

// ensureDatabase creates database name if it does not exist.
func ensureDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect postgres: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}
