package exchange

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"
)

// maxBody caps an answer's size (a full exchangeInfo is a few MB).
const maxBody = 64 << 20

// maxErrorMsg caps the bytes of an error body kept in APIError.Msg.
const maxErrorMsg = 200

// maxPageExcerpt caps the text kept from an error body that is not JSON (an HTML page).
const maxPageExcerpt = 80

// Client calls one exchange. It is safe for concurrent use; create one per process and host and
// share it, although clients for the same host share their Limiter anyway.
type Client struct {
	base       *url.URL
	apiKey     string
	sign       func(payload string) string // nil without credentials; the secret lives only here
	http       *http.Client
	recvWindow time.Duration
	maxRetries int
	minBackoff time.Duration
	maxBackoff time.Duration
	fixedLimit bool
	log        *slog.Logger
	now        func() time.Time
	lim        *Limiter
	offset     atomic.Int64 // exchange clock − local clock, ns
}

// New validates cfg and returns a Client. It sends nothing; see Init.
func New(cfg Config) (*Client, error) {
	cfg, base, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Client{
		base:       base,
		apiKey:     cfg.APIKey,
		http:       cfg.HTTPClient,
		recvWindow: cfg.RecvWindow,
		maxRetries: cfg.MaxRetries,
		minBackoff: cfg.MinBackoff,
		maxBackoff: cfg.MaxBackoff,
		fixedLimit: cfg.WeightLimit > 0,
		log:        cfg.Logger,
		now:        cfg.Now,
		lim:        limiterFor(base.Host, cfg.Now),
	}
	if cfg.APISecret != "" {
		c.sign = signer(string(cfg.APISecret))
	}
	if c.fixedLimit {
		c.lim.configure(cfg.WeightLimit, time.Minute)
	}
	return c, nil
}

// signer returns the HMAC-SHA256 signature function for a secret, hex encoded, as Binance wants
// it in the signature parameter.
func signer(secret string) func(string) string {
	key := []byte(secret)
	return func(payload string) string {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(payload))
		return hex.EncodeToString(m.Sum(nil))
	}
}

// Limiter returns the limiter this client shares with every other client of its host.
func (c *Client) Limiter() *Limiter { return c.lim }

// ClockOffset is the exchange clock minus the local clock, as last measured by SyncTime.
func (c *Client) ClockOffset() time.Duration { return time.Duration(c.offset.Load()) }

// Init measures the clock offset (GET /api/v3/time) and reads the weight limit from exchangeInfo
// (weight 1 + 20). Calling it at start is optional but saves the first call the lazy read.
func (c *Client) Init(ctx context.Context) error {
	if _, err := c.SyncTime(ctx); err != nil {
		return err
	}
	if c.fixedLimit {
		return nil
	}
	if err := c.lim.lockInit(ctx); err != nil {
		return err
	}
	defer c.lim.unlockInit()
	_, err := c.ExchangeInfo(ctx)
	return err
}

// SyncTime measures the exchange clock's offset from the local one (GET /api/v3/time, weight 1)
// and uses it for signed timestamps and window alignment.
func (c *Client) SyncTime(ctx context.Context) (time.Duration, error) {
	sent := c.now()
	st, err := c.ServerTime(ctx)
	if err != nil {
		return 0, fmt.Errorf("sync time: %w", err)
	}
	recv := c.now()
	mid := sent.Add(recv.Sub(sent) / 2)
	off := st.Sub(mid)
	c.offset.Store(int64(off))
	// The exchange read its clock somewhere in the round trip, in whole milliseconds.
	c.lim.setClockOffset(off, recv.Sub(sent)/2+time.Millisecond)
	return off, nil
}

// ensureLimit reads exchangeInfo once per limiter before the first weighed call, unless the
// limit is fixed or already known.
func (c *Client) ensureLimit(ctx context.Context) error {
	if c.lim.isConfigured() {
		return nil
	}
	if err := c.lim.lockInit(ctx); err != nil {
		return err
	}
	defer c.lim.unlockInit()
	if c.lim.isConfigured() {
		return nil
	}
	if _, err := c.ExchangeInfo(ctx); err != nil {
		return fmt.Errorf("read weight limit: %w", err)
	}
	return nil
}

// call is one request: path, parameters and weight.
type call struct {
	// method is the HTTP method; default GET.
	method string
	path   string
	query  url.Values
	weight int
	signed bool
	// keyed calls send the API key (X-MBX-APIKEY) without a signature: the user data stream's.
	keyed bool
	// noInit marks the calls that must not trigger the lazy exchangeInfo read (time, and
	// exchangeInfo itself).
	noInit bool
}

// do sends a call through the limiter, with retries, and decodes a 2xx body into out.
func (c *Client) do(ctx context.Context, cl call, out any) error {
	if cl.method == "" {
		cl.method = http.MethodGet
	}
	if cl.signed && c.sign == nil {
		return fmt.Errorf("exchange: %s %s: %w", cl.method, cl.path, ErrMissingCredentials)
	}
	if cl.keyed && c.apiKey == "" {
		return fmt.Errorf("exchange: %s %s: %w", cl.method, cl.path, ErrMissingCredentials)
	}
	if !cl.noInit {
		if err := c.ensureLimit(ctx); err != nil {
			return err
		}
	}
	resynced := false
	for attempt := 0; ; attempt++ {
		body, name, retry, err := c.send(ctx, cl)
		if err == nil {
			if err := json.Unmarshal(body, out); err != nil {
				return fmt.Errorf("exchange: %s: %w: %v", name, ErrMalformedResponse, err)
			}
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		var apiErr *APIError
		if errors.As(err, &apiErr) {
			if apiErr.Code == -1021 && cl.signed && !resynced {
				resynced = true
				off, serr := c.SyncTime(ctx)
				if serr != nil {
					return errors.Join(err, serr)
				}
				c.log.LogAttrs(ctx, slog.LevelWarn, "exchange clock resynced after -1021",
					slog.String("request", name), slog.Duration("offset", off))
				attempt-- // the resync retry is not one of the MaxRetries
				continue
			}
			if apiErr.Status == http.StatusForbidden {
				c.log.LogAttrs(ctx, slog.LevelError, "exchange firewall blocked the request; every call to the host pauses",
					slog.String("request", name), slog.Duration("pause", c.lim.Stats().BlockedUntil.Sub(c.now()).Round(time.Second)))
			}
			if apiErr.Status == http.StatusTooManyRequests || apiErr.Status == http.StatusTeapot {
				c.log.LogAttrs(ctx, slog.LevelWarn, "exchange rate limit answer",
					slog.String("request", name), slog.Int("status", apiErr.Status),
					slog.Duration("retry_after", apiErr.RetryAfter))
			}
		}
		if !retry || attempt >= c.maxRetries {
			return err
		}
		pause := c.backoff(attempt)
		c.log.LogAttrs(ctx, slog.LevelWarn, "exchange call failed, retrying",
			slog.String("request", name), slog.Int("attempt", attempt+1),
			slog.Duration("backoff", pause), slog.String("error", err.Error()))
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up retrying: %w)", err, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// backoff is the pause before retry attempt+1: exponential from MinBackoff, capped at
// MaxBackoff, with the upper half drawn at random.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.maxBackoff
	if attempt < 30 {
		d = min(c.maxBackoff, c.minBackoff<<attempt)
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// send sends one request and returns the body of a 2xx answer, or an error and whether it may
// be retried (network errors and 5xx only); name is the request as it may be logged (no
// signature).
func (c *Client) send(ctx context.Context, cl call) (body []byte, name string, retry bool, err error) {
	q := url.Values{}
	for k, v := range cl.query {
		q[k] = v
	}
	payload := q.Encode()
	name = requestName(cl.method, cl.path, payload)
	// Wait for the weight first: a signed request's timestamp is taken after the wait, or a
	// long wait would make it older than recvWindow (-1021).
	r, err := c.lim.acquire(ctx, cl.weight)
	if err != nil {
		return nil, name, false, fmt.Errorf("exchange: %s: %w", name, err)
	}
	if cl.signed {
		q.Set("recvWindow", strconv.FormatInt(c.recvWindow.Milliseconds(), 10))
		q.Set("timestamp", strconv.FormatInt(c.now().Add(c.ClockOffset()).UnixMilli(), 10))
		payload = q.Encode()
		name = requestName(cl.method, cl.path, payload)
		payload += "&signature=" + c.sign(payload)
	}
	u := *c.base
	u.Path = cl.path
	u.RawQuery = payload
	req, err := http.NewRequestWithContext(ctx, cl.method, u.String(), nil)
	if err != nil {
		c.lim.finish(r, 0, nil)
		return nil, name, false, fmt.Errorf("exchange: %s: %w", name, stripURL(err))
	}
	if cl.signed || cl.keyed {
		req.Header.Set("X-MBX-APIKEY", c.apiKey)
	}
	req.Header.Set("Accept", "application/json")

	resp, err := c.http.Do(req)
	if err != nil {
		c.lim.finish(r, 0, nil)
		return nil, name, true, fmt.Errorf("exchange: %s: %w", name, stripURL(err))
	}
	c.lim.finish(r, resp.StatusCode, resp.Header)
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, name, true, fmt.Errorf("exchange: %s: read body: %w", name, stripURL(err))
	}
	if resp.StatusCode/100 == 2 {
		return body, name, false, nil
	}
	return nil, name, retryableStatus(resp.StatusCode), apiError(name, resp, body, c.now())
}

// requestName is a request as errors and logs may show it: method, path and query, with the
// listenKey (a bearer secret) redacted.
func requestName(method, path, query string) string {
	name := method + " " + path
	if query != "" {
		q, _ := redactSecrets(query)
		name += "?" + q
	}
	return name
}

// stripURL unwraps a *url.Error, whose message carries the full URL with its signature.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func apiError(name string, resp *http.Response, body []byte, now time.Time) *APIError {
	e := &APIError{Status: resp.StatusCode, Request: name}
	var b struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	}
	if json.Unmarshal(body, &b) == nil && (b.Code != 0 || b.Msg != "") {
		e.Code, e.Msg = b.Code, b.Msg
	} else if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '<' {
		// A firewall's or gateway's page: a few words of it, never the markup.
		e.Msg = "HTML page: " + cutText(pageText(t), maxPageExcerpt)
	} else {
		e.Msg = strings.TrimSpace(strings.ToValidUTF8(string(body), "\uFFFD"))
	}
	// An error body ends up in logs: readable and bounded, cut on a character boundary.
	e.Msg = cutText(e.Msg, maxErrorMsg)
	if e.Msg == "" {
		e.Msg = http.StatusText(resp.StatusCode)
	}
	if e.Msg == "" { // an empty body with a status net/http has no name for
		e.Msg = "empty error body"
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusTeapot || resp.StatusCode == http.StatusForbidden {
		e.RetryAfter = retryAfter(resp.Header, now)
	}
	return e
}

// cutText cuts s to at most n bytes on a character boundary, marking the cut.
func cutText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// pageText is the text of a non-JSON body: tags (and what is inside them) removed, entities
// and whitespace runs reduced to single spaces, valid UTF-8.
func pageText(body []byte) string {
	var b strings.Builder
	inTag, space := false, false
	for _, r := range strings.ToValidUTF8(string(body), "\uFFFD") {
		switch {
		case r == '<':
			inTag, space = true, true
		case r == '>' && inTag:
			inTag = false
		case inTag:
		case unicode.IsSpace(r) || unicode.IsControl(r):
			space = true
		default:
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteRune(r)
		}
		if b.Len() > 4*maxErrorMsg {
			break
		}
	}
	return b.String()
}
