package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// Querier runs statements: *pgxpool.Pool, *pgx.Conn and pgx.Tx all satisfy it, so jobs can be
// enqueued or cancelled inside the caller's transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// DefaultMaxAttempts is a job's attempt budget when NewJob.MaxAttempts is zero. The budget is
// stored with each job, not configured per engine: every engine that claims a job applies the same.
const DefaultMaxAttempts = 5

// NewJob describes work to enqueue.
type NewJob struct {
	Kind Kind
	// Key identifies the work within its kind, e.g. Key("BTCUSDT", "1h") for a kline window. At
	// most one job per (Kind, Key) is queued or running at a time. Empty is a valid key: the
	// kind's single job (compute_matrices and compute_mea cover the whole universe).
	Key string
	// Payload is marshalled with encoding/json ([]byte and json.RawMessage are taken as JSON
	// as-is). Nil stores {}.
	Payload any
	// ScheduledFor is when the job is first due. Zero: now.
	ScheduledFor time.Time
	// Period makes the job periodic: after each successful run it is due again at the next
	// multiple of Period after ScheduledFor. Zero: one-shot.
	Period time.Duration
	// MaxAttempts is how many times the job is tried before it fails. Zero: DefaultMaxAttempts.
	MaxAttempts int
}

// Key joins the parts of a dedup key with "/", e.g. Key("BTCUSDT", "1h") = "BTCUSDT/1h", so that
// a [CancelFilter] KeyPrefix of Key("BTCUSDT", "") matches every window of a symbol.
func Key(parts ...string) string { return strings.Join(parts, "/") }

// EnqueueResult says what EnqueueMany did.
type EnqueueResult struct {
	// Inserted counts new jobs.
	Inserted int
	// IDs has one entry per job given, in the order given: the new job's id, or 0 if it was
	// skipped.
	IDs []int64
	// Existing counts jobs skipped because the same (kind, key) was already queued or running,
	// or appeared earlier in the same call.
	Existing int
}

// ErrInvalidJob is wrapped by the errors Enqueue and EnqueueMany return for bad input.
var ErrInvalidJob = errors.New("jobs: invalid job")

// Enqueue adds one job unless the same work is already queued or running. It returns the id of
// the new job (inserted true) or of the live job that holds the key (inserted false; 0 if that
// job finished in between).
func Enqueue(ctx context.Context, q Querier, job NewJob) (id int64, inserted bool, err error) {
	res, err := EnqueueMany(ctx, q, []NewJob{job})
	if err != nil {
		return 0, false, err
	}
	if res.Inserted == 1 {
		return res.IDs[0], true, nil
	}
	err = q.QueryRow(ctx, liveIDSQL, string(job.Kind), job.Key).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("enqueue %s %q: find live job: %w", job.Kind, job.Key, err)
	}
	return id, false, nil
}

// EnqueueMany adds jobs in one statement, skipping those whose work is already queued or running.
// Concurrent calls with overlapping jobs are safe: each piece of work is inserted once.
func EnqueueMany(ctx context.Context, q Querier, jobs []NewJob) (EnqueueResult, error) {
	if len(jobs) == 0 {
		return EnqueueResult{}, nil
	}
	sorted := make([]NewJob, len(jobs))
	copy(sorted, jobs)
	// One lock order for every caller: concurrent inserts of overlapping keys cannot deadlock.
	slices.SortStableFunc(sorted, func(a, b NewJob) int {
		if c := strings.Compare(string(a.Kind), string(b.Kind)); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	n := len(sorted)
	var (
		kinds    = make([]string, n)
		keys     = make([]string, n)
		payloads = make([]string, n)
		due      = make([]pgtype.Timestamptz, n)
		periods  = make([]int64, n)
		maxes    = make([]int32, n)
	)
	for i, j := range sorted {
		if !j.Kind.Valid() {
			return EnqueueResult{}, fmt.Errorf("%w: unknown kind %q (key %q)", ErrInvalidJob, j.Kind, j.Key)
		}
		if j.Period < 0 || (j.Period > 0 && j.Period < time.Microsecond) {
			return EnqueueResult{}, fmt.Errorf("%w: %s %q: period %s", ErrInvalidJob, j.Kind, j.Key, j.Period)
		}
		if j.MaxAttempts < 0 || j.MaxAttempts > math.MaxInt32 {
			return EnqueueResult{}, fmt.Errorf("%w: %s %q: max attempts %d", ErrInvalidJob, j.Kind, j.Key, j.MaxAttempts)
		}
		payload, err := marshalPayload(j.Payload)
		if err != nil {
			return EnqueueResult{}, fmt.Errorf("%w: %s %q: payload: %v", ErrInvalidJob, j.Kind, j.Key, err)
		}
		kinds[i], keys[i], payloads[i] = string(j.Kind), j.Key, payload
		if !j.ScheduledFor.IsZero() {
			due[i] = pgtype.Timestamptz{Time: j.ScheduledFor, Valid: true}
		}
		periods[i] = j.Period.Microseconds()
		maxes[i] = int32(j.MaxAttempts)
		if j.MaxAttempts == 0 {
			maxes[i] = DefaultMaxAttempts
		}
	}
	rows, err := q.Query(ctx, enqueueSQL, kinds, keys, payloads, due, periods, maxes)
	if err != nil {
		return EnqueueResult{}, fmt.Errorf("enqueue %d jobs: %w", n, err)
	}
	type identity struct{ kind, key string }
	inserted := map[identity]int64{}
	var (
		id        int64
		kind, key string
	)
	if _, err := pgx.ForEachRow(rows, []any{&id, &kind, &key}, func() error {
		inserted[identity{kind, key}] = id
		return nil
	}); err != nil {
		return EnqueueResult{}, fmt.Errorf("enqueue %d jobs: %w", n, err)
	}
	res := EnqueueResult{Inserted: len(inserted), Existing: n - len(inserted), IDs: make([]int64, n)}
	for i, j := range jobs {
		k := identity{string(j.Kind), j.Key}
		if id, ok := inserted[k]; ok {
			res.IDs[i] = id
			delete(inserted, k) // a repeat later in the call was the one skipped
		}
	}
	return res, nil
}

func marshalPayload(p any) (string, error) {
	switch v := p.(type) {
	case nil:
		return "{}", nil
	case json.RawMessage:
		if !json.Valid(v) {
			return "", errors.New("invalid JSON")
		}
		return string(v), nil
	case []byte:
		if !json.Valid(v) {
			return "", errors.New("invalid JSON")
		}
		return string(v), nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// CancelFilter selects live jobs to cancel. Every criterion given must match; at least one must
// be given.
type CancelFilter struct {
	// Kinds restricts to these kinds. Empty: every kind.
	Kinds []Kind
	// Keys restricts to these exact dedup keys.
	Keys []string
	// KeyPrefix restricts to dedup keys starting with it.
	KeyPrefix string
	// Payload restricts to jobs whose payload contains this JSON (jsonb @>), e.g.
	// map[string]string{"symbol": "BTCUSDT"}.
	Payload any
}

// ErrEmptyFilter is returned by CancelMatching for a filter with no criterion, which would cancel every
// live job.
var ErrEmptyFilter = errors.New("jobs: cancel filter selects every job")

// CancelMatching moves the queued and running jobs that match f to cancelled and returns how
// many. A running job's handler is not interrupted (the seeder withdraws work this way; [Cancel]
// interrupts), but its outcome is dropped: a cancelled periodic job is not rescheduled.
func CancelMatching(ctx context.Context, q Querier, f CancelFilter) (int64, error) {
	if len(f.Kinds) == 0 && len(f.Keys) == 0 && f.KeyPrefix == "" && f.Payload == nil {
		return 0, ErrEmptyFilter
	}
	kinds := make([]string, len(f.Kinds))
	for i, k := range f.Kinds {
		kinds[i] = string(k)
	}
	keys := f.Keys
	if keys == nil {
		keys = []string{}
	}
	var payload *string
	if f.Payload != nil {
		p, err := marshalPayload(f.Payload)
		if err != nil {
			return 0, fmt.Errorf("cancel jobs: payload filter: %w", err)
		}
		payload = &p
	}
	tag, err := q.Exec(ctx, cancelSQL, kinds, keys, f.KeyPrefix, payload)
	if err != nil {
		return 0, fmt.Errorf("cancel jobs (kinds %v, key prefix %q): %w", f.Kinds, f.KeyPrefix, err)
	}
	return tag.RowsAffected(), nil
}

// Count is the number of jobs of one kind in one status.
type Count struct {
	Kind   Kind
	Status Status
	Jobs   int64
	// OldestDue is the earliest scheduled_for of the queued jobs (zero for other statuses).
	OldestDue time.Time
}

// Counts returns the number of jobs per kind and status: the backlog, for status pages and
// monitoring.
func Counts(ctx context.Context, q Querier) ([]Count, error) {
	rows, err := q.Query(ctx, countsSQL)
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Count, error) {
		var (
			c      Count
			oldest pgtype.Timestamptz
		)
		err := row.Scan(&c.Kind, &c.Status, &c.Jobs, &oldest)
		c.OldestDue = oldest.Time
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	return out, nil
}

// FailingJob is a recurring job whose last occurrences failed (each used up its attempts); it is
// queued for its next period all the same.
type FailingJob struct {
	ID   int64
	Kind Kind
	Key  string
	// ConsecutiveFailures is the number of its occurrences that failed in a row.
	ConsecutiveFailures int
	// LastFailedAt is when the last one failed; Error is its error.
	LastFailedAt time.Time
	Error        string
	// NextRun is when its next occurrence is due.
	NextRun time.Time
}

// Failing returns the live recurring jobs whose last occurrence failed, most failures first: what
// a status page shows as "collection failing". Their failed occurrences are rows of status
// failed whose occurrence_of is the job's id.
func Failing(ctx context.Context, q Querier) ([]FailingJob, error) {
	rows, err := q.Query(ctx, failingSQL)
	if err != nil {
		return nil, fmt.Errorf("failing jobs: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[FailingJob])
	if err != nil {
		return nil, fmt.Errorf("failing jobs: %w", err)
	}
	return out, nil
}
