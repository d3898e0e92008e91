-- Vectors per (symbol, window, period); NULL vectors carry their reason.
INSERT INTO str_aux.window_vectors (symbol, window_label, period_start, n_samples, v_inner, v_outer,
                                    v_tendency, v_tendency_strength, v_swap, reason, computed_at)
SELECT u.symbol, u.label, u.period_start, u.n, u.vin, u.vout, u.tendency, u.strength, u.swap, u.reason, now()
  FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int[], $5::float8[], $6::float8[], $7::float8[],
              $8::float8[], $9::float8[], $10::text[])
       AS u(symbol, label, period_start, n, vin, vout, tendency, strength, swap, reason)
ON CONFLICT (symbol, window_label, period_start) DO UPDATE SET
    n_samples = EXCLUDED.n_samples, v_inner = EXCLUDED.v_inner, v_outer = EXCLUDED.v_outer,
    v_tendency = EXCLUDED.v_tendency, v_tendency_strength = EXCLUDED.v_tendency_strength,
    v_swap = EXCLUDED.v_swap, reason = EXCLUDED.reason, computed_at = EXCLUDED.computed_at
