package marketjobs

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"cryptopill.dev/jobs/libs/jobs"
	"cryptopill.dev/jobs/services/straux/internal/store"
	"cryptopill.dev/jobs/services/straux/internal/window"
)

// ComputeStrVectors is compute_str_vectors: the window statistics and vectors of the job's
// symbol (or every universe symbol) recomputed from the stored samples, at each symbol's newest
// good sample period, and upserted. Ticks compute them too; this job recomputes on demand (after
// a backfill, a window change, a replay).
func (h *Handlers) ComputeStrVectors(ctx context.Context, job jobs.Job) error {
	p, err := decode(job)
	if err != nil {
		return err
	}
	syms, err := h.symbols(ctx, p)
	if err != nil {
		return err
	}
	_, err = h.ComputeVectorsOf(ctx, syms)
	return err
}

// ComputeVectorsOf recomputes the windows of symbols and returns how many (symbol, window)
// results it wrote.
func (h *Handlers) ComputeVectorsOf(ctx context.Context, syms []string) (int, error) {
	wins, err := h.st.Windows(ctx)
	if err != nil || len(wins) == 0 || len(syms) == 0 {
		return 0, err
	}
	windows := make([]window.Window, len(wins))
	labels := make([]string, len(wins))
	var longest time.Duration
	for i, w := range wins {
		windows[i], labels[i] = window.Window{Label: w.Label, Duration: w.Duration}, w.Label
		longest = max(longest, w.Duration)
	}
	// Each symbol's newest good period, and the tick interval the samples were taken at.
	rows, err := h.st.Pool().Query(ctx, sqlLatestPeriods, syms)
	if err != nil {
		return 0, fmt.Errorf("compute_str_vectors: latest periods: %w", err)
	}
	byPeriod := map[time.Time][]string{}
	interval := h.cfg.DefaultInterval
	var (
		sym  string
		ps   time.Time
		secs *float64
	)
	if _, err := pgx.ForEachRow(rows, []any{&sym, &ps, &secs}, func() error {
		byPeriod[ps] = append(byPeriod[ps], sym)
		if secs != nil && *secs > 0 {
			interval = time.Duration(*secs * float64(time.Second))
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("compute_str_vectors: latest periods: %w", err)
	}
	written := 0
	ws := window.Get()
	defer window.Put(ws)
	for period, group := range byPeriod {
		for i := 0; i < len(group); i += 100 {
			chunk := group[i:min(i+100, len(group))]
			cc, err := h.st.ReadChunkContext(ctx, chunk, labels, period, longest, true)
			if err != nil {
				return written, err
			}
			sws := make([]store.SymbolWindows, 0, len(chunk))
			for _, s := range chunk {
				res := ws.Compute(nil, cc.History[s], period, interval, windows, h.cfg.MaxBins, cc.PrevFor(s))
				sws = append(sws, store.SymbolWindows{Symbol: s, Results: res})
				written += len(res)
			}
			if _, err := h.st.WriteChunk(ctx, store.ChunkWrite{Period: period, Windows: sws}); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// ComputeMatrices is compute_matrices: the whole pair grid at the job's scheduled time, in one
// statement (sql/matrices.sql).
func (h *Handlers) ComputeMatrices(ctx context.Context, job jobs.Job) error {
	_, err := h.ComputeMatricesAt(ctx, snapshotTime(job, h.cfg.Now()))
	return err
}

// ComputeMatricesAt writes the grid at ts and returns how many rows it wrote.
func (h *Handlers) ComputeMatricesAt(ctx context.Context, ts time.Time) (int64, error) {
	syms, err := h.uni.Current(ctx)
	if err != nil {
		return 0, err
	}
	day := ts.UTC().Truncate(24 * time.Hour)
	tag, err := h.st.Pool().Exec(ctx, sqlMatrices, ts, syms, h.cfg.Quote, day)
	if err != nil {
		return 0, fmt.Errorf("compute_matrices at %s: %w", ts.Format(time.RFC3339), err)
	}
	h.log.Info("matrices computed", "ts", ts, "rows", tag.RowsAffected())
	return tag.RowsAffected(), nil
}
