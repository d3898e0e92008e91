package marketjobs

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"cryptopill.dev/jobs/libs/jobs"
)

// Tier is one MEA tier band: cells with From ≤ |id_pct| < the next band's From weigh Weight.
type Tier struct {
	Name   string
	From   float64
	Weight float64
}

// DefaultTiers are the original's bands (DOMAIN.md §3), as half-open bands: its inclusive upper
// bounds (0.00032, 0.00045, …) left gaps such as 0.000325 that belonged to no tier.
func DefaultTiers() []Tier {
	return []Tier{
		{"alpha", 0.00016, 0.15},
		{"beta", 0.00033, 0.55},
		{"gamma", 0.00046, 1.15},
		{"delta", 0.00077, 0.65},
		{"epsilon", 0.00121, 0.50},
	}
}

// Mood configures the MEA mood coefficient: which str-aux signals go in and how they are
// normalised (DOMAIN.md §3). Zero fields take DefaultMood's.
type Mood struct {
	// Window is the str-aux window whose vectors and ΔGFM% are the signals. Default "30m".
	Window string
	// MaxSymbols is how many universe symbols at most contribute. Default 12.
	MaxSymbols int
	// GFMScale multiplies g (ΔGFM%/100) in GFM = clamp(1 + GFMScale·g, 0.8, 1.2). Default 20.
	GFMScale float64
	// TendencyScale is the t (vTendency/100) at which vT = 0.8 + 0.4·clamp(t/TendencyScale, −1, 1)
	// reaches its bound. Default 0.02.
	TendencyScale float64
	// SwapScale and SwapGain shape vS = 0.5·tanh(SwapGain·s/SwapScale), s = vSwap/100.
	// Defaults 0.05 and 0.75.
	SwapScale, SwapGain float64
}

// DefaultMood is the original's referentials.
func DefaultMood() Mood {
	return Mood{Window: "30m", MaxSymbols: 12, GFMScale: 20, TendencyScale: 0.02, SwapScale: 0.05, SwapGain: 0.75}
}

func (m Mood) withDefaults() Mood {
	d := DefaultMood()
	if m.Window == "" {
		m.Window = d.Window
	}
	if m.MaxSymbols <= 0 {
		m.MaxSymbols = d.MaxSymbols
	}
	if m.GFMScale <= 0 {
		m.GFMScale = d.GFMScale
	}
	if m.TendencyScale <= 0 {
		m.TendencyScale = d.TendencyScale
	}
	if m.SwapScale <= 0 {
		m.SwapScale = d.SwapScale
	}
	if m.SwapGain <= 0 {
		m.SwapGain = d.SwapGain
	}
	return m
}

// Mood coefficient bounds (DOMAIN.md §3).
const (
	MoodCoeffMin = 0.2
	MoodCoeffMax = 2.0
)

// MEAResult says what ComputeMEAAt wrote: the grid's ts (nil without an id_pct grid at or before
// the time asked: nothing written), how many cells and coins, and the grid's mood.
type MEAResult struct {
	GridTS       *time.Time
	Cells, Coins int
	Mood         MoodResult
}

// MoodResult is a grid's mood and what it came from.
type MoodResult struct {
	Coeff float64
	ID    string
	// Symbols are the symbols whose signals went in, in the order they were chosen; Candidates
	// counts every symbol that had a usable vector (more than Symbols when the limit cut some).
	Symbols    []string
	Candidates int
	// G, T, S are the sample-weighted mean signals; GFM, VT, VS their normalised forms.
	G, T, S      float64
	GFM, VT, VS  float64
	WindowExists bool
}

// ComputeMEA is compute_mea: the mood of the newest id_pct grid at or before the job's scheduled
// time and the weight of every cell of it, in one statement (sql/mea.sql).
func (h *Handlers) ComputeMEA(ctx context.Context, job jobs.Job) error {
	p, err := decode(job)
	if err != nil {
		return err
	}
	_, err = h.ComputeMEAAt(ctx, snapshotTime(job, h.cfg.Now()), p.Balances)
	return err
}

// ComputeMEAAt writes the MEA of the newest grid at or before ts. balances are decimal strings
// per coin (absent: 1).
func (h *Handlers) ComputeMEAAt(ctx context.Context, ts time.Time, balances map[string]string) (MEAResult, error) {
	var r MEAResult
	at := ts.Format(time.RFC3339)
	coins, amounts, err := balanceArrays(balances)
	if err != nil {
		return r, jobs.Permanent(fmt.Errorf("compute_mea at %s: %w", at, err))
	}
	bounds, names, weights, err := tierArrays(h.cfg.Tiers)
	if err != nil {
		return r, jobs.Permanent(fmt.Errorf("compute_mea at %s: %w", at, err))
	}
	syms, err := h.uni.Current(ctx)
	if err != nil {
		return r, fmt.Errorf("compute_mea at %s: universe: %w", at, err)
	}
	m, md := h.cfg.Mood, &r.Mood
	err = h.st.Pool().QueryRow(ctx, sqlMEA, ts, syms, h.cfg.Quote, m.Window, m.MaxSymbols, coins, amounts,
		bounds, names, weights, m.GFMScale, m.TendencyScale, m.SwapScale, m.SwapGain).
		Scan(&r.GridTS, &r.Cells, &r.Coins, &md.Coeff, &md.ID, &md.Symbols, &md.Candidates,
			&md.G, &md.T, &md.S, &md.GFM, &md.VT, &md.VS, &md.WindowExists)
	if err != nil {
		return r, fmt.Errorf("compute_mea at %s: %w", at, err)
	}
	if r.GridTS == nil {
		h.log.Info("mea: no id_pct grid yet", "at", ts)
		return r, nil
	}
	h.observeMood(*r.GridTS, md)
	return r, nil
}

// observeMood logs and counts what an operator must know about a grid's mood: a coefficient at
// its clamp, or one computed without any signal (the neutral 0.8 of zero signals).
func (h *Handlers) observeMood(grid time.Time, md *MoodResult) {
	h.mea.coeff.Set(md.Coeff)
	h.mea.grids.Inc()
	log := h.log.With("grid", grid, "mood_coeff", md.Coeff, "mood_id", md.ID, "symbols", md.Symbols)
	switch {
	case !md.WindowExists:
		h.mea.noSignals.WithLabelValues("window_missing").Inc()
		log.Warn("mea: mood window is not in settings.windows: mood computed from no signals", "window", h.cfg.Mood.Window)
	case md.Candidates == 0:
		h.mea.noSignals.WithLabelValues("no_vectors").Inc()
		log.Warn("mea: no universe symbol has a recent vector: mood computed from no signals", "window", h.cfg.Mood.Window)
	}
	if bound, ok := atMoodClamp(md.Coeff); ok {
		h.mea.clamped.WithLabelValues(bound).Inc()
		log.Warn("mea: mood coefficient at its clamp", "bound", bound, "gfm", md.GFM, "v_t", md.VT, "v_s", md.VS)
	} else {
		log.Info("mea computed", "candidates", md.Candidates)
	}
}

// atMoodClamp says whether c sits at a bound of the coefficient's clamp ("low" or "high"). The
// upper bound is only approached (vS < 0.5 strictly), hence the tolerance.
func atMoodClamp(c float64) (string, bool) {
	const tol = 1e-9
	switch {
	case math.Abs(c-MoodCoeffMin) <= tol:
		return "low", true
	case math.Abs(c-MoodCoeffMax) <= tol:
		return "high", true
	}
	return "", false
}

// balanceArrays turns the payload's balances into the statement's parallel arrays, sorted by
// coin; a balance that is not a non-negative decimal is an error naming its coin.
func balanceArrays(balances map[string]string) ([]string, []string, error) {
	coins := make([]string, 0, len(balances))
	for c := range balances {
		coins = append(coins, c)
	}
	sort.Strings(coins)
	amounts := make([]string, len(coins))
	for i, c := range coins {
		d, err := decimal.NewFromString(balances[c])
		if err != nil || d.IsNegative() {
			return nil, nil, fmt.Errorf("balance of %q: %q is not a non-negative decimal", c, balances[c])
		}
		amounts[i] = d.String()
	}
	return coins, amounts, nil
}

// tierArrays checks the tier bands (named, ascending, positive bounds, non-negative weights) and
// returns them as the statement's parallel arrays.
func tierArrays(tiers []Tier) ([]float64, []string, []float64, error) {
	bounds, names, weights := make([]float64, len(tiers)), make([]string, len(tiers)), make([]float64, len(tiers))
	for i, t := range tiers {
		switch {
		case t.Name == "":
			return nil, nil, nil, fmt.Errorf("tier %d has no name", i)
		case !(t.From > 0) || (i > 0 && !(t.From > tiers[i-1].From)):
			return nil, nil, nil, fmt.Errorf("tier %s: lower bound %v must be positive and above the previous band's", t.Name, t.From)
		case !(t.Weight >= 0):
			return nil, nil, nil, fmt.Errorf("tier %s: weight %v must be non-negative", t.Name, t.Weight)
		}
		bounds[i], names[i], weights[i] = t.From, t.Name, t.Weight
	}
	if len(tiers) == 0 {
		return nil, nil, nil, errors.New("no tiers")
	}
	return bounds, names, weights, nil
}

type meaMetrics struct {
	coeff     prometheus.Gauge
	grids     prometheus.Counter
	clamped   *prometheus.CounterVec
	noSignals *prometheus.CounterVec
}

func newMEAMetrics() meaMetrics {
	return meaMetrics{
		coeff: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cp_straux_mea_mood_coeff",
			Help: "Mood coefficient of the newest MEA grid computed (0.2–2.0)."}),
		grids: prometheus.NewCounter(prometheus.CounterOpts{Name: "cp_straux_mea_grids_total",
			Help: "MEA grids computed."}),
		clamped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cp_straux_mea_mood_clamped_total",
			Help: "MEA grids whose mood coefficient sat at its clamp, by bound (low 0.2, high 2.0)."}, []string{"bound"}),
		noSignals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cp_straux_mea_mood_no_signals_total",
			Help: "MEA grids whose mood had no str-aux signal to go on, by reason (window_missing, no_vectors)."}, []string{"reason"}),
	}
}

func (m meaMetrics) register(r prometheus.Registerer) {
	r.MustRegister(m.coeff, m.grids, m.clamped, m.noSignals)
}
