package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The str-aux diagnostics: is every enabled symbol sampled recently and densely enough, and does
// every window hold the samples it should, without long gaps. "Enough" follows from the newest
// tick period's length and rotation (each symbol is due every period × rotation_rounds), so the
// same thresholds hold for a 5-symbol dev universe and a 500-symbol rotating one.

// neverTicked judges a stack with no tick period planned: fine while no symbol is enabled or the
// first was enabled under opt.firstTickWithin ago, else nothing samples it (the orchestrator does
// not publish ticks, or no straux consumes them) and recency fails.
func neverTicked(ctx context.Context, pool *pgxpool.Pool, opt smokeOptions, recencyName, densityName string) []smokeCheck {
	var (
		enabled int
		first   *time.Time
	)
	err := smokeQuery(ctx, pool, `SELECT count(*)::int, min(added_at) FROM settings.coin_universe WHERE COALESCE(enabled, true)`,
		nil, []any{&enabled, &first}, func() error { return nil })
	if err != nil {
		return []smokeCheck{errorCheck(recencyName, err), errorCheck(densityName, err)}
	}
	skip := smokeCheck{Name: densityName, Status: statusSkip, Detail: "no tick period planned yet"}
	switch {
	case enabled == 0:
		skip.Detail = "no enabled symbol"
		return []smokeCheck{{Name: recencyName, Status: statusSkip, Detail: skip.Detail}, skip}
	case first == nil || opt.now().Sub(*first) <= opt.firstTickWithin:
		return []smokeCheck{{Name: recencyName, Status: statusSkip, Detail: skip.Detail}, skip}
	}
	return []smokeCheck{{Name: recencyName, Status: statusFail, Detail: fmt.Sprintf(
		"no tick period planned, though %d symbols are enabled, the first since %s (over --first-tick-within %s): "+
			"is the orchestrator publishing ticks (RUN_JOBS=1) and straux running? cpctl status shows both",
		enabled, first.UTC().Format(time.RFC3339), opt.firstTickWithin)}, skip}
}

// checkSampling returns straux.sampling_recency and straux.sampling_density.
func checkSampling(ctx context.Context, pool *pgxpool.Pool, opt smokeOptions) []smokeCheck {
	const recencyName, densityName = "straux.sampling_recency", "straux.sampling_density"
	now := opt.now()
	var (
		symbol                  string
		added                   time.Time
		spacing                 time.Duration
		newest, first           *time.Time
		lastHour, expected      int
		stale, sparse           []smokeFinding
		symbols, young, checked int
		worst                   = 1.0
	)
	err := smokeQuery(ctx, pool, mustSQL("smoke_sampling"), []any{now},
		[]any{&symbol, &added, &spacing, &newest, &first, &lastHour, &expected}, func() error {
			symbols++
			limit := time.Duration(opt.stalePeriods) * spacing
			switch {
			case newest == nil && now.Sub(added) <= limit:
				young++ // enabled too recently to have been sampled
			case newest == nil:
				stale = append(stale, smokeFinding{Series: "samples", Symbol: symbol, Reason: "no good sample ever", Since: added})
			case now.Sub(*newest) > limit:
				stale = append(stale, smokeFinding{Series: "samples", Symbol: symbol, Newest: *newest,
					Reason: fmt.Sprintf("newest good sample %s old (due every %s)", now.Sub(*newest).Round(time.Second), spacing)})
			}
			if expected >= 2 {
				checked++
				share := float64(lastHour) / float64(expected)
				worst = min(worst, share)
				if share < opt.minCoverage {
					sparse = append(sparse, smokeFinding{Series: "samples", Symbol: symbol, Rows: lastHour, Share: share,
						Reason: fmt.Sprintf("%d good samples in the last hour, %d due", lastHour, expected)})
				}
			}
			return nil
		})
	if err != nil {
		return []smokeCheck{errorCheck(recencyName, err), errorCheck(densityName, err)}
	}
	if symbols == 0 {
		return neverTicked(ctx, pool, opt, recencyName, densityName)
	}
	rec := smokeCheck{Name: recencyName, Status: statusOK, Findings: stale,
		Detail: fmt.Sprintf("%d symbols: each has a good sample within %d due periods", symbols-young, opt.stalePeriods)}
	if young > 0 {
		rec.Detail += fmt.Sprintf(" (%d just enabled, not due yet)", young)
	}
	if len(stale) > 0 {
		rec.Status = statusFail
		rec.Detail = summarise(stale, func(f smokeFinding) string { return f.Symbol + ": " + f.Reason })
	}
	den := smokeCheck{Name: densityName, Status: statusOK, Findings: sparse,
		Detail: fmt.Sprintf("%d symbols: at least %.0f%% of the last hour's due samples are good (limit %.0f%%)", checked, 100*worst, 100*opt.minCoverage)}
	switch {
	case checked == 0:
		den.Status, den.Detail = statusSkip, "sampling started too recently to judge density"
	case len(sparse) > 0:
		den.Status = statusFail
		den.Detail = summarise(sparse, func(f smokeFinding) string { return f.Symbol + ": " + f.Reason })
	}
	return []smokeCheck{rec, den}
}

// checkCoverage returns straux.window_coverage and straux.sample_gaps.
func checkCoverage(ctx context.Context, pool *pgxpool.Pool, opt smokeOptions) []smokeCheck {
	const coverageName, gapsName = "straux.window_coverage", "straux.sample_gaps"
	var (
		f              smokeFinding
		spacing        time.Duration
		n, expected    int
		gap            *time.Duration
		gapEnd         *time.Time
		thin, gappy    []smokeFinding
		pairs, checked int
		worst          = 1.0
		longest        time.Duration
	)
	err := smokeQuery(ctx, pool, mustSQL("smoke_coverage"), []any{opt.now()},
		[]any{&f.Symbol, &f.Window, &spacing, &n, &expected, &gap, &gapEnd}, func() error {
			pairs++
			if expected >= 2 {
				checked++
				share := min(1, float64(n)/float64(expected))
				worst = min(worst, share)
				if share < opt.minCoverage {
					g := f
					g.Series, g.Rows, g.Share = "samples", n, share
					g.Reason = fmt.Sprintf("%d of %d due good samples", n, expected)
					thin = append(thin, g)
				}
			}
			if gap != nil {
				longest = max(longest, *gap)
				if *gap > time.Duration(opt.maxGapPeriods)*spacing {
					g := f
					g.Series, g.Newest = "samples", *gapEnd
					g.Reason = fmt.Sprintf("no good sample for %s before %s (due every %s)", gap.Round(time.Second),
						gapEnd.UTC().Format(time.RFC3339), spacing)
					gappy = append(gappy, g)
				}
			}
			return nil
		})
	if err != nil {
		return []smokeCheck{errorCheck(coverageName, err), errorCheck(gapsName, err)}
	}
	if pairs == 0 {
		skip := "no tick period planned yet (or no enabled symbol or window)"
		return []smokeCheck{{Name: coverageName, Status: statusSkip, Detail: skip}, {Name: gapsName, Status: statusSkip, Detail: skip}}
	}
	cov := smokeCheck{Name: coverageName, Status: statusOK, Findings: thin,
		Detail: fmt.Sprintf("%d symbol windows: at least %.0f%% of their due samples are good (limit %.0f%%)", checked, 100*worst, 100*opt.minCoverage)}
	switch {
	case checked == 0:
		cov.Status, cov.Detail = statusSkip, "sampling started too recently to judge window coverage"
	case len(thin) > 0:
		cov.Status = statusFail
		cov.Detail = summarise(thin, func(f smokeFinding) string { return f.Symbol + " " + f.Window + ": " + f.Reason })
	}
	gaps := smokeCheck{Name: gapsName, Status: statusOK, Findings: gappy,
		Detail: fmt.Sprintf("%d symbol windows: longest gap between good samples %s (limit %d due periods)", pairs, longest.Round(time.Second), opt.maxGapPeriods)}
	if len(gappy) > 0 {
		gaps.Status = statusFail
		gaps.Detail = summarise(gappy, func(f smokeFinding) string { return f.Symbol + " " + f.Window + ": " + f.Reason })
	}
	return []smokeCheck{cov, gaps}
}
