// Package simex is the simulated exchange: a Binance-compatible Spot REST server for tests, the
// dev stack (cpctl simex) and benchmarks, so nothing in this repository needs the real exchange.
//
// It serves the paths the exchange client uses (/api/v3/time, exchangeInfo, klines, ticker/24hr,
// ticker/price, depth, myTrades) with Binance's parameters, JSON shapes and error bodies. The
// market is a deterministic random walk: every price is a pure function of (seed, symbol, time),
// so replicas and tests agree, and any time can be evaluated without history. Cross pairs are
// consistent (ETHBTC = ETHUSDT / BTCUSDT) because each asset walks against the dollar.
//
// Its market streams (/ws, /stream: diff and partial depth, 24-hour tickers and mini tickers)
// tell the same story as REST: a depth stream's book is the depth endpoint's, a ticker event's
// values are ticker/24hr's at the event's time.
//
// myTrades serves a configured key and secret, verifies the HMAC-SHA256 signature and the
// timestamp/recvWindow, and produces new account trades over time with increasing ids. The same
// account has a user data stream (userstream.go): listenKeys from POST/PUT/DELETE
// /api/v3/userDataStream, valid 60 minutes on the exchange's clock, and /ws/<listenKey> pushing
// an executionReport for each of those trades as its time passes, then listenKeyExpired when the
// key lapses (StreamFaults.UserStreamDown, DropUserStreams and ExpireListenKeys break it).
//
// Each client (remote IP) has a REQUEST_WEIGHT budget per window (6000 per minute by default),
// reported in X-MBX-USED-WEIGHT-* headers; a client over it gets 429 with Retry-After, and one
// that keeps calling after 429s gets 418 with an escalating ban. Latency, 5xx answers and
// malformed bodies can be switched on at runtime, and a 429 or 418 forced, for tests.
//
// It also answers what the real exchange sends unasked: symbols out of TRADING (BREAK, HALT,
// CANCEL_ONLY, END_OF_DAY, …; Config.Statuses, SetSymbolStatus) are reported so by exchangeInfo
// (filterable with symbolStatus) and have an empty REST book that keeps its lastUpdateId, zero
// tickers (as for a symbol without trades) and no candles after trading stopped; only the
// current spell is remembered, so candles of a past one reappear once trading resumes; its
// streams send nothing while it is not trading. Past Config.MaxInFlight concurrent requests it is overloaded
// (503, -1008); its CDN firewall answers 403 with an HTML page (SetFirewall,
// Faults.FirewallRate), and its gateway 502/504 pages and 500 -1000 (Faults.GatewayErrorRate).
package simex
