package simex

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

// TestCorkedFramesReadAsMessages: text frames written through the corked connection, at every
// length encoding (7-bit, 16-bit, 64-bit), held and written in one batch or written at once,
// with the library's pings in between, read back as the same messages by a websocket client.
func TestCorkedFramesReadAsMessages(t *testing.T) {
	t.Parallel()
	sizes := []int{0, 1, 125, 126, 127, 65535, 65536, 200_000}
	msg := func(n int) []byte { return bytes.Repeat([]byte{byte('a' + n%26)}, n) }
	done := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &corkingWriter{ResponseWriter: w}
		ws, err := websocket.Accept(cw, r, nil)
		if err != nil {
			done <- err
			return
		}
		defer ws.CloseNow()
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		go func() { _, _, _ = ws.Read(ctx) }() // answers the client's pings
		c := cw.conn
		for _, batch := range []bool{true, false} {
			if batch {
				c.cork()
			}
			for _, n := range sizes {
				if err := c.writeText(msg(n)); err != nil {
					done <- err
					return
				}
			}
			if batch {
				go func() { _ = ws.Ping(ctx) }() // a control frame while corked
				time.Sleep(10 * time.Millisecond)
				if err := c.uncork(); err != nil {
					done <- err
					return
				}
			}
		}
		done <- nil
		<-ctx.Done()
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	require.NoError(t, err)
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	for round := range 2 {
		for _, n := range sizes {
			typ, b, err := ws.Read(ctx)
			require.NoError(t, err, "round %d size %d", round, n)
			require.Equal(t, websocket.MessageText, typ)
			require.Equal(t, msg(n), b, "round %d size %d", round, n)
		}
	}
	require.NoError(t, <-done)
}
