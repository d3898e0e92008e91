// Package importer is cinimport's SessionImporter: it turns a trader's account trades
// (market.account_trades) into the moves of their OPEN sessions (cin_aux.rt_move), set-based, in
// SQL that lives in sql/.
//
// An import is idempotent and incremental. Each session has a watermark (cin_aux.
// session_import_cursor): the newest trade imported, in (trade_time, symbol, trade_id) order.
// Trades after it are new by construction and are bulk-inserted without per-row conflict checks;
// trades at or behind it are rescanned only within a late-arrival margin (or from an earlier
// time the caller knows new trades at, or from the session's start on request) and inserted with
// ON CONFLICT DO NOTHING on the natural key (session_id, src_symbol, src_trade_id). A re-run with
// nothing new reads the margin's worth of trades through the (account_scope, trade_time) index and
// writes nothing.
//
// Imports of a session are serialised across processes by a transaction-scoped advisory lock, so
// any number of cinimport replicas and `cinimport once` runs can import side by side.
package importer
