package exchange

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// scriptedConn returns its chunks, one a read, then io.EOF.
type scriptedConn struct {
	net.Conn
	chunks [][]byte
}

func (c *scriptedConn) Read(p []byte) (int, error) {
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	if c.chunks[0] = c.chunks[0][n:]; len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

// A read that drained the socket makes the next one wait; a read that filled the buffer does
// not; the bytes come through in order and the socket's error after them.
func TestBurstConnWaitsAfterADrainingRead(t *testing.T) {
	t.Parallel()
	full := bytes.Repeat([]byte("f"), burstReadSize)
	src := &scriptedConn{chunks: [][]byte{[]byte("one"), full, []byte("two"), []byte("three")}}
	var waits []time.Duration
	c := &burstConn{Conn: src, wait: 2 * time.Millisecond, sleep: func(d time.Duration) { waits = append(waits, d) }}
	var got []byte
	var waitsAt []int // how many waits before each socket read
	p := make([]byte, 4096)
	for {
		before := len(src.chunks)
		n, err := c.Read(p)
		got = append(got, p[:n]...)
		if len(src.chunks) != before {
			waitsAt = append(waitsAt, len(waits))
		}
		if err != nil {
			require.ErrorIs(t, err, io.EOF)
			break
		}
	}
	want := append(append([]byte("one"), full...), "twothree"...)
	require.Equal(t, want, got)
	// Reads of the socket: "one" (no wait yet), full (after one wait), "two" (no wait: the
	// previous read filled the buffer), "three" (after a second wait).
	require.Equal(t, []int{0, 1, 1, 2}, waitsAt)
	require.Equal(t, []time.Duration{2 * time.Millisecond, 2 * time.Millisecond, 2 * time.Millisecond}, waits,
		"and one more before the read that found EOF")
}
