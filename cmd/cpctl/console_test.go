package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/testkit/clocktest"
)

// chromiumPath finds Debian's chromium (or another Chrome); it skips the test only when there
// is none and CI_REQUIRE_CHROMIUM is unset (.ci/run sets it).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI_REQUIRE_CHROMIUM") != "" {
		t.Fatal("no chromium binary on PATH and CI_REQUIRE_CHROMIUM is set: apt-get install -y chromium")
	}
	t.Skip("no chromium binary on PATH (apt-get install -y chromium); set CI_REQUIRE_CHROMIUM=1 to make this a failure")
	return ""
}

// startConsoleFor serves the console over the status stack at its fixed clock.
func startConsoleFor(t *testing.T, s *statusStack, actions bool) string {
	t.Helper()
	opt := defaultStatusOptions()
	opt.Now = clocktest.Fixed(s.now)
	src, closeSrc, dbURL, natsURL, err := openStatusSources(context.Background(), s.env, &connFlags{})
	require.NoError(t, err)
	t.Cleanup(closeSrc)
	srv, ln, err := startConsole(consoleConfig{Sources: src, Options: opt, Actions: actions, Database: dbURL, NATS: natsURL,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}

// The page in a real headless Chromium: the dev symbols in the freshness grid, and a failed
// job's retry button puts it back in the queue.
func TestConsoleInChromium(t *testing.T) {
	bin := chromiumPath(t)
	s := setupStatus(t)
	var failedID int64
	require.NoError(t, s.db.Pool.QueryRow(context.Background(), `
		INSERT INTO ingest.jobs (kind, dedup_key, status, attempts, max_attempts, error, finished_at)
		VALUES ('fetch_ticker', 'console-test', 'failed', 5, 5, 'exchange error: 503', $1) RETURNING id`, s.now).Scan(&failedID))
	base := startConsoleFor(t, s, true)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	// No timeout on the browser's own context (it would stop the browser); each step gets one.
	ctx, cancelCtx := chromedp.NewContext(actx)
	defer cancelCtx()
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base)), "start chromium and load the console")
	step, cancelStep := context.WithTimeout(ctx, 60*time.Second)
	defer cancelStep()

	require.NoError(t, chromedp.Do(step, chromedp.WaitVisible(chromedp.CSS("#freshness"))))
	grid, err := chromedp.Run(step, chromedp.Text(chromedp.CSS("#freshness")))
	require.NoError(t, err)
	for _, sym := range devStatusSymbols {
		require.Contains(t, grid, sym)
	}
	health, err := chromedp.Run(step, chromedp.Text(chromedp.CSS("#health")))
	require.NoError(t, err)
	require.Equal(t, "healthy", health, "one failed job is listed, not a failing kind (no occurrences failed in a row)")

	retry := chromedp.CSS("#retry-" + strconv.FormatInt(failedID, 10))
	require.NoError(t, chromedp.Do(step, chromedp.WaitVisible(retry), chromedp.Click(retry), chromedp.WaitVisible(chromedp.CSS("#message"))))
	message, err := chromedp.Run(step, chromedp.Text(chromedp.CSS("#message")))
	require.NoError(t, err)
	require.Contains(t, message, "queued again")
	var status string
	require.NoError(t, s.db.Pool.QueryRow(context.Background(), `SELECT status FROM ingest.jobs WHERE id = $1`, failedID).Scan(&status))
	require.Equal(t, "queued", status)

	// A running job's cancel button cancels it.
	var runningID int64
	require.NoError(t, s.db.Pool.QueryRow(context.Background(), `
		INSERT INTO ingest.jobs (kind, dedup_key, status, attempts, started_at, locked_by, lease_expires_at)
		VALUES ('fetch_orderbook', 'console-cancel', 'running', 1, $1, 'engine-test', $1::timestamptz + interval '1 minute') RETURNING id`, s.now).Scan(&runningID))
	cancel := chromedp.CSS("#cancel-" + strconv.FormatInt(runningID, 10))
	require.NoError(t, chromedp.Do(step, chromedp.Navigate(base), chromedp.WaitVisible(cancel), chromedp.Click(cancel),
		chromedp.WaitVisible(chromedp.CSS("#message"))))
	message, err = chromedp.Run(step, chromedp.Text(chromedp.CSS("#message")))
	require.NoError(t, err)
	require.Contains(t, message, "cancelled (was running)")
	require.NoError(t, s.db.Pool.QueryRow(context.Background(), `SELECT status FROM ingest.jobs WHERE id = $1`, runningID).Scan(&status))
	require.Equal(t, "cancelled", status)
}

// Actions need the CSRF token of the page and its cookie; without -actions there are none.
func TestConsoleActionsNeedCSRF(t *testing.T) {
	s := setupStatus(t)
	var id int64
	require.NoError(t, s.db.Pool.QueryRow(context.Background(), `
		INSERT INTO ingest.jobs (kind, dedup_key, status, attempts, error, finished_at)
		VALUES ('fetch_ticker', 'csrf-test', 'failed', 5, 'boom', $1) RETURNING id`, s.now).Scan(&id))
	base := startConsoleFor(t, s, true)
	resp, err := http.PostForm(base+"actions/retry", url.Values{"id": {strconv.FormatInt(id, 10)}, "csrf": {"guess"}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	var status string
	require.NoError(t, s.db.Pool.QueryRow(context.Background(), `SELECT status FROM ingest.jobs WHERE id = $1`, id).Scan(&status))
	require.Equal(t, "failed", status)

	// A rebound name (DNS rebinding) or a foreign Origin is refused before any handler runs.
	for _, h := range []struct{ host, origin string }{{"evil.example:8095", ""}, {"", "http://evil.example"}} {
		req, err := http.NewRequest(http.MethodPost, base+"actions/retry", strings.NewReader(url.Values{"id": {strconv.FormatInt(id, 10)}}.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if h.host != "" {
			req.Host = h.host
		}
		if h.origin != "" {
			req.Header.Set("Origin", h.origin)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusForbidden, resp.StatusCode, "%+v", h)
		require.Contains(t, string(body), "unexpected host or origin")
	}
	req, err := http.NewRequest(http.MethodGet, base+"status.json", nil)
	require.NoError(t, err)
	req.Host = "evil.example"
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "the report is not readable through a rebound name")

	readOnly := startConsoleFor(t, s, false)
	resp, err = http.PostForm(readOnly+"actions/retry", url.Values{"id": {strconv.FormatInt(id, 10)}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "no action routes without -actions")
}
