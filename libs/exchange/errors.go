package exchange

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Sentinel errors. An *APIError matches the ones that describe its status or code, so callers
// write errors.Is(err, exchange.ErrRateLimited) and never compare messages.
var (
	// ErrRateLimited: HTTP 429, the request weight (or another limit) was exceeded. Every call to
	// the host waits until the answer's Retry-After has passed.
	ErrRateLimited = errors.New("exchange: rate limited")
	// ErrBanned: HTTP 418, the IP is banned for continuing after 429s. Every call to the host
	// waits until the answer's Retry-After has passed.
	ErrBanned = errors.New("exchange: IP banned")
	// ErrServer: a 5xx answer that was still failing after the retries; the outcome is unknown.
	// It covers Binance's own (-1001 internal error, -1008 overloaded, -1000 unknown) and its
	// gateway's HTML pages (502, 504), whose body is kept only as a short tag-free excerpt.
	ErrServer = errors.New("exchange: server error")
	// ErrFirewall: HTTP 403, the exchange's web application firewall blocked the request (too
	// many requests, or a rule it matched). Not retried: every call to the host waits out a
	// long pause (Retry-After if the answer has one, else five minutes), as Binance asks.
	ErrFirewall = errors.New("exchange: blocked by the exchange's firewall (HTTP 403)")
	// ErrInvalidSymbol: code -1121.
	ErrInvalidSymbol = errors.New("exchange: invalid symbol")
	// ErrInvalidSignature: code -1022, the signature does not match (wrong secret).
	ErrInvalidSignature = errors.New("exchange: invalid signature")
	// ErrInvalidAPIKey: codes -2014 and -2015, the API key is malformed, unknown or not allowed.
	ErrInvalidAPIKey = errors.New("exchange: invalid API key")
	// ErrClockSkew: code -1021, the timestamp is outside recvWindow even after a resync.
	ErrClockSkew = errors.New("exchange: timestamp outside recvWindow")
	// ErrMalformedResponse: a 2xx answer whose body could not be decoded. Not retried.
	ErrMalformedResponse = errors.New("exchange: malformed response")
	// ErrMissingCredentials: a signed call on a Client without APIKey and APISecret; nothing is
	// sent.
	ErrMissingCredentials = errors.New("exchange: signed call needs APIKey and APISecret")
	// ErrListenKeyNotFound: code -1125, the user data stream's listenKey expired or never
	// existed; create a new one.
	ErrListenKeyNotFound = errors.New("exchange: listenKey does not exist")
	// ErrInvalidArgument: the request was rejected before sending (missing symbol, bad interval,
	// limit out of range).
	ErrInvalidArgument = errors.New("exchange: invalid argument")
)

// APIError is a non-2xx answer from the exchange. A body that is not Binance's JSON (a
// firewall's or gateway's HTML page) is never kept whole: Msg is a short excerpt of its text,
// tags stripped.
type APIError struct {
	// Status is the HTTP status.
	Status int
	// Code and Msg are Binance's error body ({"code":-1121,"msg":"Invalid symbol."}); Code is 0
	// when the body was not one.
	Code int
	Msg  string
	// Request names the call: method, path and query without the signature.
	Request string
	// RetryAfter is the answer's Retry-After (429, 418, 403), zero when absent.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("exchange: %s: HTTP %d", e.Request, e.Status)
	if e.Code != 0 {
		s += fmt.Sprintf(" code %d", e.Code)
	}
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return s
}

// Is maps the status and code to the package's sentinels.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrRateLimited:
		return e.Status == http.StatusTooManyRequests
	case ErrBanned:
		return e.Status == http.StatusTeapot
	case ErrFirewall:
		return e.Status == http.StatusForbidden
	case ErrServer:
		return e.Status >= 500
	case ErrInvalidSymbol:
		return e.Code == -1121
	case ErrInvalidSignature:
		return e.Code == -1022
	case ErrInvalidAPIKey:
		return e.Code == -2014 || e.Code == -2015
	case ErrClockSkew:
		return e.Code == -1021
	case ErrListenKeyNotFound:
		return e.Code == -1125
	}
	return false
}

// retryable reports whether an answer with this status may be sent again: only 5xx, whose
// outcome is unknown. 4xx (429 and 418 included) are final.
func retryableStatus(status int) bool { return status >= 500 }
