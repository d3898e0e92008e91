// Package seeding is the seeder's JobSeeder: it keeps ingest.jobs in step with the coin universe
// through the job engine's API (libs/jobs), so seeding never duplicates work.
//
// The seed (DOMAIN.md §1, §5): one fetch_klines job per enabled symbol and enabled window, keyed
// "SYMBOL/WINDOW" with payload {"symbol", "window"}, and one job of each universe-wide kind —
// fetch_ticker (one batched ticker/24hr call covers every symbol), fetch_orderbook,
// compute_str_vectors, compute_matrices, compute_mea — keyed "" with an empty payload: their
// workers read the enabled universe when they run, so a universe change never needs them
// re-seeded. Windows must be Binance kline intervals; any other is rejected with an error naming
// it.
//
// On a universe change the seeder converges on the database's enabled universe (the system of
// record), not on the event's lists, which makes redelivery and replay of any event harmless:
// jobs are enqueued for every enabled symbol (those already queued or running are left as they
// are) and the live fetch_klines jobs of symbols no longer enabled are cancelled, in one
// transaction.
package seeding
