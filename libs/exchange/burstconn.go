package exchange

import (
	"context"
	"net"
	"net/http"
	"time"
)

// burstReadSize is how much one read of a stream connection's socket may take.
const burstReadSize = 64 << 10

// burstConn reads its socket in bursts. The exchange writes each stream's event as its own
// frame, every 100 ms for a thousand streams, and a reader that keeps up takes them one read
// (and one park and wake-up) each. After a read that drained the socket, burstConn waits before
// the next one, so the next takes what came meanwhile, up to burstReadSize: at most wait more
// latency, many messages a syscall. A read that fills the buffer does not wait.
type burstConn struct {
	net.Conn
	wait    time.Duration
	sleep   func(time.Duration)
	buf     []byte
	r, w    int
	err     error // the socket's error, returned once the buffer is read
	drained bool  // the last read took all the socket had
}

func (c *burstConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.r == c.w {
		if c.err != nil {
			return 0, c.err
		}
		if c.drained {
			c.sleep(c.wait)
		}
		if c.buf == nil {
			c.buf = make([]byte, burstReadSize)
		}
		n, err := c.Conn.Read(c.buf)
		c.r, c.w, c.err = 0, n, err
		c.drained = n < len(c.buf)
		if n == 0 {
			return 0, err
		}
	}
	n := copy(p, c.buf[c.r:c.w])
	c.r += n
	return n, nil
}

// streamHTTPClient dials stream connections through burstConn (wait ≤ 0: plain connections).
func streamHTTPClient(wait time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if wait > 0 {
		d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &burstConn{Conn: c, wait: wait, sleep: time.Sleep}, nil
		}
	}
	return &http.Client{Transport: tr}
}
