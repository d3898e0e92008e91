// Package importer is cinimport's SessionImporter: it turns a trader's account trades
// (market.account_trades) into the moves of their OPEN sessions (cin_aux.rt_move), set-based, in
// SQL that lives in sql/.
//
// An import is idempotent and incremental, and passes over no trade for good. Each session has
// two watermarks (cin_aux.session_import_cursor): the newest trade imported, in (trade_time,
// symbol, trade_id) order, and the snapshot its last import read. Trades after the first are new
// by construction and are bulk-inserted without per-row conflict checks. Trades at or behind it
// are looked at again only where they may be new: those the snapshot could not see (by
// account_trades.ingest_xid, the storing transaction's id: a trade stored late is found whatever
// its trade time, without a trade-insert event, and nothing committed out of order is passed
// over); those of markets an earlier import passed over because their quote asset could not be
// told (noted per session in cin_aux.session_pending_market, imported once the market is known);
// those between the session's start and the start its cursor covers (covered_from: a start moved
// earlier is found by whatever import comes next, no row-change event needed); and, on request,
// every one from the session's start (a full rescan). They are inserted with ON CONFLICT DO
// NOTHING on the natural key (session_id, src_symbol, src_trade_id). A re-run with nothing new
// reads no trade and writes nothing.
//
// A snapshot is trusted only in the cluster it was taken in (by system identifier: a dump
// restored into another cluster brings xids that mean nothing there) and while it is not ahead
// of the cluster's xids; otherwise that import looks at every trade of the session once.
//
// Imports of a session are serialised across processes by a session-level advisory lock, so any
// number of cinimport replicas and `cinimport once` runs can import side by side.
package importer
