package exchange

import (
	"context"
	"net/http"
	"strings"
)

// A signed request's query carries its signature (and the key's timestamp), a user data stream
// request its listenKey, which the HTTP client spans would record in url.full: the span sees a
// copy whose signature and listenKey are redacted, and the request sent is the original.
// redactQuery wraps the otelhttp transport, restoreQuery the one it wraps.

type signedQueryKey struct{}

const redactedSignature = "REDACTED"

// redactSecrets replaces the values of the signature and listenKey parameters.
func redactSecrets(q string) (string, bool) {
	parts := strings.Split(q, "&")
	found := false
	for i, p := range parts {
		if k, _, ok := strings.Cut(p, "="); ok && (k == "signature" || k == "listenKey") {
			parts[i], found = k+"="+redactedSignature, true
		}
	}
	return strings.Join(parts, "&"), found
}

type redactQuery struct{ next http.RoundTripper }

func (t redactQuery) RoundTrip(r *http.Request) (*http.Response, error) {
	q, ok := redactSecrets(r.URL.RawQuery)
	if !ok {
		return t.next.RoundTrip(r)
	}
	r2 := r.Clone(context.WithValue(r.Context(), signedQueryKey{}, r.URL.RawQuery))
	r2.URL.RawQuery = q
	return t.next.RoundTrip(r2)
}

type restoreQuery struct{ next http.RoundTripper }

func (t restoreQuery) RoundTrip(r *http.Request) (*http.Response, error) {
	q, ok := r.Context().Value(signedQueryKey{}).(string)
	if !ok {
		return t.next.RoundTrip(r)
	}
	r2 := r.Clone(r.Context())
	r2.URL.RawQuery = q
	return t.next.RoundTrip(r2)
}
