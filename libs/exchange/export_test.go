package exchange

import "net/url"

// ForgetLimiter drops the process-wide limiter of baseURL's host, so a test server that gets a
// port an earlier one used starts with a fresh budget.
func ForgetLimiter(baseURL string) {
	if u, err := url.Parse(baseURL); err == nil {
		limiters.Delete(u.Host)
	}
}
