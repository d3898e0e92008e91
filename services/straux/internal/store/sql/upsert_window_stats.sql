-- IDHR statistics per (symbol, window, period); NULL statistics carry their reason.
INSERT INTO str_aux.window_stats (symbol, window_label, period_start, n_samples, p0, gfm, gfm_abs, gfm_ref,
                                  confidence, inertia, disruption, delta_gfm_pct, shift, shift_streak,
                                  reason, computed_at)
SELECT u.symbol, u.label, u.period_start, u.n, u.p0::numeric, u.gfm, u.gfm_abs::numeric, u.gfm_ref::numeric,
       u.confidence, u.inertia, u.disruption, u.delta, u.shift, u.streak, u.reason, now()
  FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int[], $5::float8[], $6::float8[], $7::float8[],
              $8::float8[], $9::float8[], $10::float8[], $11::float8[], $12::float8[], $13::bool[], $14::int[],
              $15::text[])
       AS u(symbol, label, period_start, n, p0, gfm, gfm_abs, gfm_ref, confidence, inertia, disruption,
            delta, shift, streak, reason)
ON CONFLICT (symbol, window_label, period_start) DO UPDATE SET
    n_samples = EXCLUDED.n_samples, p0 = EXCLUDED.p0, gfm = EXCLUDED.gfm, gfm_abs = EXCLUDED.gfm_abs,
    gfm_ref = EXCLUDED.gfm_ref, confidence = EXCLUDED.confidence, inertia = EXCLUDED.inertia,
    disruption = EXCLUDED.disruption, delta_gfm_pct = EXCLUDED.delta_gfm_pct, shift = EXCLUDED.shift,
    shift_streak = EXCLUDED.shift_streak, reason = EXCLUDED.reason, computed_at = EXCLUDED.computed_at
