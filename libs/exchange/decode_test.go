package exchange

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// Found by the fuzz targets (decode_fuzz_test.go); each was accepted silently or went wrong.

// A Retry-After in the past, negative or beyond any ban was a negative wait or an overflowed
// one (99999999999999999 s wrapped to about -80 years).
func TestRetryAfterIsBounded(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 17, 15, 4, 5, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"120": 2 * time.Minute, "0": 0, "-5": 0, "1e3": 0, "soon": 0, "-99999999999": 0, "-99999999999999999999": 0,
		"99999999999999999":             maxRetryAfter,
		"999999999999999999999999":      maxRetryAfter,
		"259201":                        maxRetryAfter,
		"Wed, 21 Oct 2015 07:28:00 GMT": 0,
		"Tue, 17 Mar 2026 15:05:05 GMT": time.Minute,
	} {
		require.Equal(t, want, retryAfter(http.Header{"Retry-After": {v}}, now), v)
	}
}

// A rateLimits entry with a huge intervalNum overflowed into a negative window, which the
// limiter then divided by.
func TestRateLimitWindowRefusesOverflow(t *testing.T) {
	t.Parallel()
	_, ok := rateLimitWindow("DAY", 2_000_000_000_000)
	require.False(t, ok)
	_, ok = rateLimitWindow("SECOND", int(maxWeightWindow/time.Second)+1)
	require.False(t, ok)
	w, ok := rateLimitWindow("DAY", 7)
	require.True(t, ok)
	require.Equal(t, 7*24*time.Hour, w)
	limit, window := requestWeightLimit([]RateLimit{{Type: "REQUEST_WEIGHT", Interval: "DAY", IntervalNum: 2_000_000_000_000, Limit: 5}})
	require.Equal(t, defaultWeightLimit, limit)
	require.Equal(t, defaultWeightWindow, window)
}

// An error body was cut at byte 200 inside a character (invalid UTF-8 in logs), and a JSON
// error's msg was kept whole however long.
func TestAPIErrorMessageIsReadableAndBounded(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 17, 15, 4, 5, 0, time.UTC)
	resp := &http.Response{StatusCode: 502, Header: http.Header{}}
	e := apiError("GET /api/v3/time", resp, []byte("a"+strings.Repeat("é", 150)), now)
	require.True(t, utf8.ValidString(e.Msg), "%q", e.Msg)
	require.True(t, strings.HasSuffix(e.Msg, "…"))
	require.LessOrEqual(t, len(e.Msg), maxErrorMsg+len("…"))

	long, err := json.Marshal(map[string]any{"code": -1100, "msg": strings.Repeat("x", 100_000)})
	require.NoError(t, err)
	e = apiError("GET /api/v3/time", &http.Response{StatusCode: 400, Header: http.Header{}}, long, now)
	require.Equal(t, -1100, e.Code)
	require.LessOrEqual(t, len(e.Msg), maxErrorMsg+len("…"))

	e = apiError("GET /api/v3/time", resp, []byte("bad \xff gateway"), now)
	require.Equal(t, "bad \uFFFD gateway", e.Msg)

	e = apiError("GET /api/v3/time", &http.Response{StatusCode: 340, Header: http.Header{}}, nil, now)
	require.Equal(t, "empty error body", e.Msg)
}

// A short or long price level, or a null in one or in a kline, decoded as zeros.
func TestIncompleteValuesAreErrors(t *testing.T) {
	t.Parallel()
	for _, body := range []string{`{"bids":[["1"]]}`, `{"bids":[["1","2","3"]]}`, `{"asks":[[null,"1"]]}`, `{"asks":[["1",null]]}`, `{"asks":[[]]}`} {
		var ob OrderBook
		err := json.Unmarshal([]byte(body), &ob)
		require.Error(t, err, body)
		require.Contains(t, err.Error(), "price level", body)
	}
	var ob OrderBook
	require.NoError(t, json.Unmarshal([]byte(`{"lastUpdateId":1,"bids":[["1.5","2"]],"asks":[]}`), &ob))
	require.Equal(t, "1.5", ob.Bids[0].Price.String())

	var ks []Kline
	err := json.Unmarshal([]byte(`[[1,"1","1","1",null,"1",2,"1",1,"1","1","0"]]`), &ks)
	require.ErrorContains(t, err, "kline element 4: null")
	err = json.Unmarshal([]byte(`[[null,null,null,null,null,null,null,null,null,null,null,null]]`), &ks)
	require.ErrorContains(t, err, "kline element 0: null")
}
