package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/testkit/logtest"
)

func TestSimexServesAndStopsOnCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr logtest.Buffer
	done := make(chan int, 1)
	go func() {
		done <- simexMain(ctx, []string{"--listen", "127.0.0.1:0", "--symbols", "btcusdt,ETHBTC",
			"--gen-symbols", "3", "--seed", "4", "--api-key", "k", "--api-secret", "s", "--weight-limit", "0"}, &stdout, &stderr)
	}()
	addr := regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`)
	require.Eventually(t, func() bool { return addr.MatchString(stdout.String()) }, 10*time.Second, 10*time.Millisecond)
	require.Contains(t, stdout.String(), "5 symbols")
	require.NotContains(t, stdout.String(), " s ")
	url := addr.FindStringSubmatch(stdout.String())[1]

	resp, err := http.Get(url + "/api/v3/ticker/price?symbol=S0003USDT")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Contains(t, string(body), `"symbol":"S0003USDT"`)

	cancel()
	select {
	case code := <-done:
		require.Equal(t, 0, code, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("cpctl simex did not stop on cancel")
	}
}

func TestSimexRejectsBadFlags(t *testing.T) {
	t.Parallel()
	var out, errOut logtest.Buffer
	require.Equal(t, 2, simexMain(context.Background(), []string{"--symbols", "BTCXYZ", "--listen", "127.0.0.1:0"}, &out, &errOut))
	require.Contains(t, errOut.String(), "BTCXYZ")
	require.Equal(t, 2, simexMain(context.Background(), []string{"--error-rate", "2", "--listen", "127.0.0.1:0"}, &out, &errOut))
	require.Equal(t, 2, simexMain(context.Background(), []string{"--nope"}, &out, &errOut))
	require.Equal(t, 2, simexMain(context.Background(), []string{"--status", "BTCUSDT", "--listen", "127.0.0.1:0"}, &out, &errOut))
	require.Contains(t, errOut.String(), `--status "BTCUSDT": want SYMBOL=STATUS`)
	require.Equal(t, 2, simexMain(context.Background(), []string{"--status", "BTCUSDT=PAUSED", "--listen", "127.0.0.1:0"}, &out, &errOut))
	require.Contains(t, errOut.String(), `"PAUSED"`)
	require.Equal(t, 2, simexMain(context.Background(), []string{"--firewall-rate", "-1", "--listen", "127.0.0.1:0"}, &out, &errOut))
}
