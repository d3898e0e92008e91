package importer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Config configures a SessionImporter. The zero value of every field is its default.
type Config struct {
	// PriceMaxAge is the oldest a USDT price may be, relative to the trade it prices, to be used
	// for executed_usdt and fee_usdt. Default 1h.
	PriceMaxAge time.Duration
	// Parallel is how many connections share a large import (one with at least ParallelFrom new
	// trades): each inserts the trades of the symbols whose hash modulo Parallel is its share,
	// all reading one snapshot. Default 2; 1 imports on one connection. A share that finds no free
	// pool connection within a second is done by the importing connection itself.
	Parallel int
	// ParallelFrom is the number of new trades from which an import is shared. Default 20000.
	ParallelFrom int
}

func (c Config) withDefaults() Config {
	if c.PriceMaxAge <= 0 {
		c.PriceMaxAge = time.Hour
	}
	if c.Parallel <= 0 {
		c.Parallel = 2
	}
	if c.ParallelFrom <= 0 {
		c.ParallelFrom = 20000
	}
	return c
}

// SessionImporter imports account trades into the moves of OPEN sessions.
type SessionImporter struct {
	pool *pgxpool.Pool
	cfg  Config
}

// New returns an importer on pool.
func New(pool *pgxpool.Pool, cfg Config) *SessionImporter {
	return &SessionImporter{pool: pool, cfg: cfg.withDefaults()}
}

// Session names a session to import. Nothing else is needed to find its trades: those stored
// since its last import are found whatever their trade time, and those that were there all
// along but became the session's when its start moved earlier are found from the start its
// cursor covers.
type Session struct {
	ID int64
}

// Result is what an import did for one session.
type Result struct {
	SessionID int64
	// Moves is the number of moves inserted.
	Moves int64
	// FirstTrade and LastTrade span the trade times of the inserted moves (zero when Moves is 0).
	FirstTrade, LastTrade time.Time
	// Checked is the number of trades at or behind the watermark the import looked at again
	// (stored late, of a market that became known, or rescanned): 0 on a re-run with nothing new.
	Checked int64
	// PendingMarkets are the markets whose trades the session's imports have passed over
	// because their quote asset cannot be told; they are imported once the market is known
	// (market.symbols or the universe).
	PendingMarkets []string
	// SnapshotDiscarded is why the snapshot the session's last import read was not used
	// (other_cluster, unrecorded_cluster or ahead_of_cluster; see plan_sessions.sql), so that
	// this import looked at every trade of the session once; "" when it was used or there was
	// none.
	SnapshotDiscarded string
}

// Options tune one import.
type Options struct {
	// Full rescans every trade from each session's start instead of only the trades stored since
	// its last import. Still idempotent; slower on large sessions.
	Full bool
	// Progress, when set, is called after each session is imported with the sessions done and
	// the total (cinimport once -full shows a progress bar with it).
	Progress func(done, total int)
}

// OpenSessions returns the OPEN sessions of the given account scopes (none: every scope).
func (im *SessionImporter) OpenSessions(ctx context.Context, scopes ...string) ([]int64, error) {
	var arg []string
	if len(scopes) > 0 {
		arg = scopes
	}
	rows, err := im.pool.Query(ctx, openSessionsSQL, arg)
	if err != nil {
		return nil, fmt.Errorf("list open sessions: %w", err)
	}
	type open struct {
		ID    int64
		Scope string
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[open])
	if err != nil {
		return nil, fmt.Errorf("list open sessions: %w", err)
	}
	ids := make([]int64, len(got))
	for i, s := range got {
		ids[i] = s.ID
	}
	return ids, nil
}

// Import imports the given sessions and returns one Result per session that was OPEN when the
// import ran, in session id order (a session that is not OPEN, or does not exist, is skipped).
// Imports of the same sessions elsewhere (other replicas, `cinimport once`) are waited for.
func (im *SessionImporter) Import(ctx context.Context, sessions []Session, opts Options) ([]Result, error) {
	if len(sessions) == 0 {
		return nil, nil
	}
	ids := sessionIDs(sessions)
	results, err := im.importLocked(ctx, ids, opts)
	if err != nil {
		var pgErr *pgconn.PgError
		if !opts.Full && errors.As(err, &pgErr) && pgErr.Code == uniqueViolation {
			// A move after the watermark existed already, so the watermark lags behind moves
			// written by something else. Import again checking every trade; the watermark
			// catches up.
			results, err = im.importLocked(ctx, ids, Options{Full: true, Progress: opts.Progress})
		}
	}
	if err != nil {
		return nil, fmt.Errorf("import sessions %v: %w", ids, err)
	}
	return results, nil
}

// sessionIDs returns the distinct session ids, sorted (the lock order).
func sessionIDs(sessions []Session) []int64 {
	ids := make([]int64, 0, len(sessions))
	for _, s := range sessions {
		ids = append(ids, s.ID)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// markets are the known markets' assets, as parallel arrays for import_moves, and the traded
// markets whose quote asset cannot be told.
type markets struct {
	symbols, bases, quotes []string
	unknown                []string
}

// sessionPlan is one row of plan_sessions.sql.
type sessionPlan struct {
	ID           int64
	Scope        string
	StartedAt    time.Time
	LastTime     pgtype.Timestamptz
	LastSymbol   pgtype.Text
	LastID       pgtype.Int8
	SeenSnapshot pgtype.Text // pg_snapshot as text; NULL: none, or discarded
	Discarded    pgtype.Text // why SeenSnapshot was discarded
	RescanFrom   pgtype.Timestamptz
	RescanTo     pgtype.Timestamptz // exclusive; NULL: no bound but the watermark
	Pending      []string
	Snapshot     string // pg_snapshot as text
	SystemID     int64  // pg_control_system().system_identifier
}

func (im *SessionImporter) importLocked(ctx context.Context, ids []int64, opts Options) (_ []Result, err error) {
	conn, err := im.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, lockSessionsSQL, ids); err != nil {
		return nil, fmt.Errorf("lock sessions: %w", err)
	}
	defer func() {
		// Session-level locks outlive a failed transaction; a connection that cannot release
		// them must not go back to the pool holding them.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, uerr := conn.Exec(uctx, unlockSessionsSQL, ids); uerr != nil {
			_ = conn.Conn().Close(uctx)
		}
	}()

	var results []Result
	// REPEATABLE READ: every statement sees the trades as of one snapshot, taken after the locks
	// are held, so the watermark is the newest trade this import actually read, and the
	// next import of the session looks again at exactly the trades this snapshot could not see.
	err = pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		// The planner's cost estimates of the price subqueries would trigger JIT compilation,
		// which costs more than it saves here (a second on a re-run that otherwise takes ms).
		if _, err := tx.Exec(ctx, "SET LOCAL jit = off"); err != nil {
			return err
		}
		var m markets
		rows, err := tx.Query(ctx, marketsSQL)
		if err != nil {
			return fmt.Errorf("known markets: %w", err)
		}
		var (
			sym         string
			base, quote pgtype.Text
		)
		if _, err := pgx.ForEachRow(rows, []any{&sym, &base, &quote}, func() error {
			if !quote.Valid {
				m.unknown = append(m.unknown, sym)
				return nil
			}
			m.symbols, m.bases, m.quotes = append(m.symbols, sym), append(m.bases, base.String), append(m.quotes, quote.String)
			return nil
		}); err != nil {
			return fmt.Errorf("known markets: %w", err)
		}
		rows, err = tx.Query(ctx, planSessionsSQL, ids, opts.Full)
		if err != nil {
			return fmt.Errorf("plan: %w", err)
		}
		plans, err := pgx.CollectRows(rows, pgx.RowToStructByPos[sessionPlan])
		if err != nil {
			return fmt.Errorf("plan: %w", err)
		}
		for i, p := range plans {
			r, err := im.importSession(ctx, tx, p, m)
			if err != nil {
				return fmt.Errorf("session %d: %w", p.ID, err)
			}
			results = append(results, r)
			if opts.Progress != nil {
				opts.Progress(i+1, len(plans))
			}
		}
		return nil
	})
	return results, err
}

// tradeKey is a trade's place in import order: (trade_time, symbol, trade_id).
type tradeKey struct {
	Time   pgtype.Timestamptz
	Symbol pgtype.Text
	ID     pgtype.Int8
}

func (k tradeKey) after(o tradeKey) bool {
	switch {
	case !o.Time.Valid:
		return k.Time.Valid
	case !k.Time.Valid:
		return false
	case !k.Time.Time.Equal(o.Time.Time):
		return k.Time.Time.After(o.Time.Time)
	case k.Symbol.String != o.Symbol.String:
		return k.Symbol.String > o.Symbol.String
	}
	return k.ID.Int64 > o.ID.Int64
}

// span is a row of new_trades_span.sql: the trades after a watermark.
type span struct {
	first  pgtype.Timestamptz
	newest tradeKey
}

func newTradesSpan(ctx context.Context, tx pgx.Tx, p sessionPlan, after tradeKey) (span, bool, error) {
	var s span
	err := tx.QueryRow(ctx, newTradesSpanSQL, p.Scope, p.StartedAt, after.Time, after.Symbol, after.ID).
		Scan(&s.first, &s.newest.Time, &s.newest.Symbol, &s.newest.ID)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, false, nil
	}
	if err != nil {
		return s, false, fmt.Errorf("span of new trades: %w", err)
	}
	return s, true, nil
}

// importSession runs the checked parts (the trades at or behind the watermark to look at again)
// and the new part for one session, notes the markets it had to pass over, and moves its
// watermarks.
func (im *SessionImporter) importSession(ctx context.Context, tx pgx.Tx, p sessionPlan, m markets) (Result, error) {
	r := Result{SessionID: p.ID, SnapshotDiscarded: p.Discarded.String}
	// Everything up to checkedTo goes through the checked parts: the watermark, or on a rescan
	// with no bound (a full one) the newest trade there is, so that nothing is inserted
	// unchecked. A bounded rescan (a start moved earlier) ends before the old start, behind the
	// watermark.
	checkedTo := tradeKey{p.LastTime, p.LastSymbol, p.LastID}
	fullRescan := p.RescanFrom.Valid && !p.RescanTo.Valid
	if fullRescan {
		all, ok, err := newTradesSpan(ctx, tx, p, tradeKey{})
		if err != nil {
			return r, err
		}
		if ok && all.newest.after(checkedTo) {
			checkedTo = all.newest
		}
	}
	if checkedTo.Time.Valid {
		check := func(part, sql string, bounds ...any) error {
			var c checked
			args := append([]any{p.ID, p.Scope, p.StartedAt, checkedTo.Time, checkedTo.Symbol, checkedTo.ID,
				im.cfg.PriceMaxAge, bounds[0], m.symbols, m.bases, m.quotes}, bounds[1:]...)
			err := tx.QueryRow(ctx, sql, args...).Scan(&c.read, &c.moves, &c.first, &c.last)
			if err != nil {
				return fmt.Errorf("import %s trades: %w", part, err)
			}
			r.Checked += c.read
			if c.moves > 0 {
				r.add(Result{Moves: c.moves, FirstTrade: c.first.Time, LastTrade: c.last.Time})
			}
			return nil
		}
		// Markets passed over before that are known now.
		for _, sym := range p.Pending {
			if slices.Contains(m.unknown, sym) {
				r.PendingMarkets = append(r.PendingMarkets, sym) // still unknown: still waiting
			}
		}
		if known := without(p.Pending, m.unknown); len(known) > 0 {
			if err := check("pending", importPendingSQL, known); err != nil {
				return r, err
			}
			if _, err := tx.Exec(ctx, resolvePendingSQL, p.ID, known); err != nil {
				return r, fmt.Errorf("resolve pending markets %v: %w", known, err)
			}
		}
		// Trades the last import's snapshot could not see, whatever their trade time. A
		// watermark without a snapshot (from before there was one) looks at every trade once.
		unseenFrom, unseen := "1", []string{} // a snapshot that sees no transaction
		if p.SeenSnapshot.Valid {
			var err error
			if unseenFrom, unseen, err = parseSnapshot(p.SeenSnapshot.String); err != nil {
				return r, fmt.Errorf("seen snapshot: %w", err)
			}
		}
		// Up to this import's own xmax: xids beyond it are not this cluster's (restored from
		// another's dump, and read once by the import that found no snapshot to trust).
		unseenTo := strconv.FormatUint(math.MaxUint64, 10)
		if p.SeenSnapshot.Valid {
			var err error
			if unseenTo, _, err = parseSnapshot(p.Snapshot); err != nil {
				return r, fmt.Errorf("own snapshot: %w", err)
			}
		}
		// A full rescan from the start reads all of them anyway.
		if !fullRescan {
			if err := check("stored", importStoredSQL, unseenFrom, unseen, unseenTo); err != nil {
				return r, err
			}
		}
		if p.RescanFrom.Valid {
			if err := check("rescanned", importRescanSQL, p.RescanFrom, p.RescanTo); err != nil {
				return r, err
			}
		}
	}
	// The new part's span first: the same snapshot, so exactly the trades it inserts.
	fresh, ok, err := newTradesSpan(ctx, tx, p, checkedTo)
	if err != nil {
		return r, err
	}
	newest := checkedTo
	if ok {
		moves, err := im.importNew(ctx, tx, p, m, checkedTo)
		if err != nil {
			return r, err
		}
		r.add(Result{Moves: moves, FirstTrade: fresh.first.Time, LastTrade: fresh.newest.Time.Time})
		newest = fresh.newest
	}
	if len(m.unknown) > 0 && newest.Time.Valid {
		rows, err := tx.Query(ctx, notePendingSQL, p.ID, p.Scope, p.StartedAt, m.unknown)
		if err != nil {
			return r, fmt.Errorf("note pending markets %v: %w", m.unknown, err)
		}
		noted, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return r, fmt.Errorf("note pending markets %v: %w", m.unknown, err)
		}
		r.PendingMarkets = append(r.PendingMarkets, noted...)
		slices.Sort(r.PendingMarkets)
	}
	// The watermarks move when something was read; a re-run with nothing new writes nothing.
	if newest.Time.Valid && (ok || r.Moves > 0 || r.Checked > 0 || p.RescanFrom.Valid || !p.SeenSnapshot.Valid) {
		if _, err := tx.Exec(ctx, advanceCursorSQL, p.ID, newest.Time, newest.Symbol, newest.ID, r.Moves, p.Snapshot, p.StartedAt, p.SystemID); err != nil {
			return r, fmt.Errorf("advance watermark: %w", err)
		}
	}
	return r, nil
}

// parseSnapshot reads a pg_snapshot's text form, xmin:xmax:xip,…, and returns what the snapshot
// could not see: the transactions from xmax on, and those in progress then (xip).
func parseSnapshot(s string) (xmax string, xip []string, err error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return "", nil, fmt.Errorf("%q is not xmin:xmax:xip", s)
	}
	for _, x := range append([]string{parts[0], parts[1]}, strings.Split(parts[2], ",")...) {
		if _, err := strconv.ParseUint(x, 10, 64); err != nil && x != "" {
			return "", nil, fmt.Errorf("%q is not xmin:xmax:xip: %w", s, err)
		}
	}
	xip = []string{}
	if parts[2] != "" {
		xip = strings.Split(parts[2], ",")
	}
	return parts[1], xip, nil
}

// checked is the row a checked part of import_moves returns.
type checked struct {
	read, moves int64
	first, last pgtype.Timestamptz
}

// without returns the elements of a not in b.
func without(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

// importNew inserts the trades after the watermark `after`: on tx alone, or, for a large import,
// in Parallel shares, tx doing share 0 and helper transactions on other connections the others,
// all on tx's snapshot. The helpers commit once every share is inserted, before tx (which then
// moves the watermark) commits. Should tx fail after that, their moves stay behind without a
// watermark beyond them; the next import meets them as a unique violation and re-imports with
// every trade checked: correct, only slower.
func (im *SessionImporter) importNew(ctx context.Context, tx pgx.Tx, p sessionPlan, m markets, after tradeKey) (int64, error) {
	args := func(shares, share int) []any {
		return []any{p.ID, p.Scope, p.StartedAt, after.Time, after.Symbol, after.ID,
			im.cfg.PriceMaxAge, nil, m.symbols, m.bases, m.quotes, shares, share}
	}
	shares := 1
	if im.cfg.Parallel > 1 {
		var n int
		if err := tx.QueryRow(ctx, countNewTradesSQL, p.Scope, p.StartedAt, after.Time, after.Symbol, after.ID, im.cfg.ParallelFrom).Scan(&n); err != nil {
			return 0, fmt.Errorf("count new trades: %w", err)
		}
		if n >= im.cfg.ParallelFrom {
			shares = im.cfg.Parallel
		}
	}
	insert := func(share int) (int64, error) {
		tag, err := tx.Exec(ctx, importNewSQL, args(shares, share)...)
		if err != nil {
			return 0, fmt.Errorf("import new trades (share %d of %d): %w", share, shares, err)
		}
		return tag.RowsAffected(), nil
	}
	if shares == 1 {
		return insert(0)
	}

	var snapshot string
	if err := tx.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&snapshot); err != nil {
		return 0, fmt.Errorf("export snapshot: %w", err)
	}
	helpers := make([]*helper, shares-1)
	for i := range helpers {
		helpers[i] = im.startHelper(ctx, snapshot, i+1, args(shares, i+1))
	}
	total, err := insert(0)
	errs := []error{err}
	for _, h := range helpers {
		r := <-h.inserted
		switch {
		case errors.Is(r.err, errNoConnection):
			// No connection to spare: do the share here.
			n, err := insert(h.share)
			total += n
			errs = append(errs, err)
		default:
			total += r.moves
			errs = append(errs, r.err)
		}
	}
	err = errors.Join(errs...)
	for _, h := range helpers {
		h.commit <- err == nil
	}
	for _, h := range helpers {
		errs = append(errs, <-h.done)
	}
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return total, nil
}

// errNoConnection: a helper found no free connection in time; its share is done by the importer.
var errNoConnection = errors.New("no connection free for a helper")

// helper inserts one share of a large import in its own transaction.
type helper struct {
	share    int
	inserted chan shareResult // one result once its insert is done (or failed)
	commit   chan bool        // then true: commit; false: roll back
	done     chan error       // then the outcome of the commit
}

type shareResult struct {
	moves int64
	err   error
}

func (im *SessionImporter) startHelper(ctx context.Context, snapshot string, share int, args []any) *helper {
	h := &helper{share: share, inserted: make(chan shareResult, 1), commit: make(chan bool, 1), done: make(chan error, 1)}
	go func() {
		var (
			conn *pgxpool.Conn
			tx   pgx.Tx
			res  shareResult
		)
		func() {
			actx, cancel := context.WithTimeout(ctx, time.Second)
			c, err := im.pool.Acquire(actx)
			cancel()
			if err != nil {
				res.err = fmt.Errorf("%w: %v", errNoConnection, err)
				return
			}
			conn = c
			if tx, err = conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead}); err != nil {
				res.err = fmt.Errorf("share %d: begin: %w", share, err)
				return
			}
			// The snapshot id comes from pg_export_snapshot (hex digits and dashes).
			if _, err = tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+strings.ReplaceAll(snapshot, "'", "")+"'"); err == nil {
				_, err = tx.Exec(ctx, "SET LOCAL jit = off")
			}
			if err != nil {
				res.err = fmt.Errorf("share %d: %w", share, err)
				return
			}
			tag, err := tx.Exec(ctx, importNewSQL, args...)
			res = shareResult{moves: tag.RowsAffected(), err: err}
			if err != nil {
				res.err = fmt.Errorf("import new trades (share %d): %w", share, err)
			}
		}()
		h.inserted <- res
		ok := <-h.commit
		if conn != nil {
			defer conn.Release()
		}
		if tx == nil {
			h.done <- nil
			return
		}
		var err error
		if ok && res.err == nil {
			err = tx.Commit(ctx)
		} else {
			err = tx.Rollback(context.WithoutCancel(ctx))
			if res.err != nil {
				err = nil // already reported
			}
		}
		if err != nil {
			err = fmt.Errorf("share %d: commit: %w", share, err)
		}
		h.done <- err
	}()
	return h
}

func (r *Result) add(o Result) {
	if o.Moves == 0 {
		return
	}
	if r.Moves == 0 || o.FirstTrade.Before(r.FirstTrade) {
		r.FirstTrade = o.FirstTrade
	}
	if r.Moves == 0 || o.LastTrade.After(r.LastTrade) {
		r.LastTrade = o.LastTrade
	}
	r.Moves += o.Moves
}

// uniqueViolation is SQLSTATE 23505.
const uniqueViolation = "23505"
