// Package exchange is the Binance Spot REST client the services share: public market data (server
// time, exchangeInfo, klines, 24h tickers, prices, order books), the signed account call
// myTrades, and the account's user data stream.
//
// Every price and quantity is a decimal.Decimal (github.com/shopspring/decimal), never a float64.
//
// All Clients in one process that talk to the same host share one Limiter, because the exchange
// counts REQUEST_WEIGHT per IP, not per client: each call's weight is reserved before it is sent,
// the exchange's X-MBX-USED-WEIGHT-* header corrects the local count, a call that would exceed
// the budget (the limit read from exchangeInfo less a safety margin) waits for the window to roll,
// and a 429 or 418 stops every call to that host until its Retry-After has passed, a 403 (the
// exchange's firewall, ErrFirewall) for five minutes. Only network errors and 5xx answers
// (ErrServer: -1001, -1008 overloaded, gateway pages) are retried (capped exponential backoff
// with jitter); a -1021 answer (timestamp outside recvWindow) resyncs the clock offset and
// retries once. A body that is not Binance's JSON (an HTML page) is kept only as a short
// excerpt of its text.
//
// Calls carry a caller class in their context (WithClass: ClassTicks, ClassJobs, the default, or
// ClassBackfill). Limiter.SetTickReserve keeps a share of every window for ClassTicks: the other
// classes together stop at the rest, while ticks may also use what they leave idle.
//
// Errors are typed: *APIError carries the HTTP status and Binance's code and message, and
// matches sentinels such as ErrRateLimited, ErrBanned or ErrInvalidSignature with errors.Is. The
// API secret is held as a Secret, which never formats; error messages and log lines name the
// request without its signature.
//
// Market streams come over websockets: a Feed holds the connections of a set of streams within
// the exchange's stream rules and hands each message to a FeedHandler. Books keeps local order
// books from diff-depth streams (DepthStream), Tickers the newest 24-hour ticker per symbol from
// ticker streams (TickerStream), the values ticker/24hr gives, without its weight; a FeedMux lets
// one Feed carry both, routing each stream by its kind.
//
// The account's user data stream: CreateListenKey, KeepAliveListenKey and CloseListenKey are
// POST/PUT/DELETE /api/v3/userDataStream (API key, no signature, weight 2); a UserStream holds
// <stream URL>/ws/<listenKey>, keeps the key alive, replaces it when it expires, reconnects and
// rotates its connection, hands each TRADE executionReport to a UserStreamHandler as a Trade,
// and reports every (re)connect, since events may have been missed. The listenKey never
// appears in a log line, an error or a span.
//
// The simulated exchange in package simex speaks the same protocol, for tests and the dev stack.
package exchange
