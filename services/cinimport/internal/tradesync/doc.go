// Package tradesync keeps market.account_trades up to date from the exchange: for each symbol of
// the account, GET /api/v3/myTrades from a persisted fromId cursor (market.trade_cursors), through
// the process's shared, rate-limited exchange client. A symbol without a cursor is bootstrapped
// from its oldest trades (fromId 0) when they are inside a configurable look-back (7 days by
// default), else by walking the look-back 24 hours per request as Binance requires.
//
// StreamSync is the stream mode: trades from Binance's user data stream (exchange.UserStream)
// are stored as they come, without moving the cursors, and Sync runs as reconciliation: at
// start, after every stream reconnect, and periodically, paced to a weight budget.
//
// Stored trades are relayed as row changes and picked up by the importer; Sync also reports the
// earliest new trade per scope, so the service can import at once.
package tradesync
