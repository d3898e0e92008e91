package exchange

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"
)

// DefaultBaseURL is Binance's Spot REST endpoint.
const DefaultBaseURL = "https://api.binance.com"

// Config configures a Client. The zero value talks to Binance without credentials; every field's
// comment says its default.
type Config struct {
	// BaseURL is the exchange's scheme and host, e.g. "http://127.0.0.1:8090" for the simulated
	// exchange. Default DefaultBaseURL. A path, query or user info is rejected.
	BaseURL string
	// APIKey and APISecret authenticate signed calls (MyTrades). Both empty: public calls only.
	APIKey    string
	APISecret Secret
	// HTTPClient sends the requests. Default: a client with a 30 s timeout whose transport keeps
	// up to 64 idle connections to the host.
	HTTPClient *http.Client
	// TracerProvider makes a client span per HTTP request (otelhttp: method, route, status, and
	// the W3C traceparent sent along) under the span of the call's context. Default: otel's
	// global provider.
	TracerProvider trace.TracerProvider `json:"-"`
	// RecvWindow is how long after its timestamp a signed request stays valid. Default 5 s; at
	// most 60 s.
	RecvWindow time.Duration
	// MaxRetries is how many times a call is sent again after a network error or a 5xx. Default
	// 3; negative: never.
	MaxRetries int
	// MinBackoff and MaxBackoff bound the exponential backoff between retries (each wait is
	// drawn between half and all of min(MaxBackoff, MinBackoff·2^attempt)). Defaults 250 ms and
	// 10 s.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// WeightLimit, if positive, is the REQUEST_WEIGHT per minute to respect instead of the one
	// exchangeInfo reports; the client then never fetches exchangeInfo on its own. Default 0:
	// read it from exchangeInfo (by Init, by the first ExchangeInfo call, or lazily before the
	// first other call).
	WeightLimit int
	// Logger receives retries, rate-limit answers and clock resyncs. Default: discard.
	Logger *slog.Logger
	// Now is the local clock: signed timestamps, weight windows and Retry-After are read from
	// it. Default time.Now. Tests pass the simulated exchange's clock. The host's Limiter keeps
	// the clock of the first client created for that host.
	Now func() time.Time `json:"-"`
}

func (c Config) withDefaults() (Config, *url.URL, error) {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil {
		return c, nil, fmt.Errorf("exchange: BaseURL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return c, nil, fmt.Errorf("exchange: BaseURL %q: want scheme://host[:port]", c.BaseURL)
	}
	if (c.APIKey == "") != (c.APISecret == "") {
		return c, nil, fmt.Errorf("exchange: APIKey and APISecret go together")
	}
	if c.HTTPClient == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		c.HTTPClient = &http.Client{Timeout: 30 * time.Second, Transport: t}
	}
	// A copy, so a client handed in is not changed for its other users.
	hc := *c.HTTPClient
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	topts := []otelhttp.Option{otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
		// Low-cardinality: the endpoint, never the query (symbols, signature).
		return r.Method + " " + r.URL.Path
	})}
	if c.TracerProvider != nil {
		topts = append(topts, otelhttp.WithTracerProvider(c.TracerProvider))
	}
	// The spans never see a request's signature (redact.go).
	hc.Transport = redactQuery{next: otelhttp.NewTransport(restoreQuery{next: base}, topts...)}
	c.HTTPClient = &hc
	switch {
	case c.RecvWindow == 0:
		c.RecvWindow = 5 * time.Second
	case c.RecvWindow < time.Millisecond || c.RecvWindow > 60*time.Second:
		return c, nil, fmt.Errorf("exchange: RecvWindow %s: want 1ms..60s", c.RecvWindow)
	}
	switch {
	case c.MaxRetries == 0:
		c.MaxRetries = 3
	case c.MaxRetries < 0:
		c.MaxRetries = 0
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 250 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 10 * time.Second
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.WeightLimit < 0 {
		return c, nil, fmt.Errorf("exchange: WeightLimit %d: want >= 0", c.WeightLimit)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// Secret is an API secret. It never formats: fmt, slog and encoding/json all print "[redacted]",
// so a Config can be logged whole.
type Secret string

const redacted = "[redacted]"

// Format prints "[redacted]" for every verb.
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// String returns "[redacted]".
func (Secret) String() string { return redacted }

// LogValue returns "[redacted]".
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON returns "[redacted]".
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
