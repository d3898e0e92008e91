package simex

import (
	"bufio"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// A stream connection writes each interval's events as one batch: the websocket library
// flushes every message to the socket (a write system call each, the larger part of an event's
// cost), so the connection underneath holds the flushed bytes while corked and writes them at
// once when uncorked, as TCP_CORK would. Frames keep their order: everything the library writes
// goes through the corked connection, and the batch is written under the lock direct writes take.

// The stream's text messages are framed here, not by the library (whose per-message write
// costs a context timer and two copies): a final, unmasked, uncompressed text frame is what a
// server sends, and the library writes only control frames (pings, pongs, a close), each in a
// single Write, so a frame appended here never lands inside one of its frames.

// corkWriteTimeout bounds the write of one batch: a client that reads nothing for this long has
// its connection cut, as the library's 10 s write timeout did per message.
const corkWriteTimeout = 10 * time.Second

// corkConn is a hijacked connection whose writes can be held back.
type corkConn struct {
	net.Conn

	mu       sync.Mutex
	corked   bool
	released bool // for good: the connection is closing
	held     []byte
}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked {
		c.held = append(c.held, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// writeText writes one text message: held while corked, else at once (within
// corkWriteTimeout). errReleased: the connection is closing.
func (c *corkConn) writeText(p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.released {
		return errReleased
	}
	c.held = appendTextFrame(c.held, p)
	if c.corked {
		return nil
	}
	return c.writeHeldLocked()
}

var errReleased = errors.New("stream connection closing")

// appendTextFrame appends p as one final, unmasked text frame (RFC 6455 section 5.2).
func appendTextFrame(b, p []byte) []byte {
	b = append(b, 0x81)
	switch n := len(p); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, p...)
}

// cork holds the writes from now on.
func (c *corkConn) cork() {
	c.mu.Lock()
	c.corked = !c.released
	c.mu.Unlock()
}

// release uncorks for good: the close frame that follows must not be held.
func (c *corkConn) release() error {
	c.mu.Lock()
	c.released = true
	c.mu.Unlock()
	return c.uncork()
}

// heldBytes is how much is held.
func (c *corkConn) heldBytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.held)
}

// uncork writes what is held and lets writes through again.
func (c *corkConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	return c.writeHeldLocked()
}

// writeHeldLocked writes what is held; c.mu is held.
func (c *corkConn) writeHeldLocked() error {
	if len(c.held) == 0 {
		return nil
	}
	if err := c.Conn.SetWriteDeadline(time.Now().Add(corkWriteTimeout)); err != nil {
		return err
	}
	_, err := c.Conn.Write(c.held)
	if cap(c.held) > 1<<20 {
		c.held = nil // a burst's buffer is not kept
	} else {
		c.held = c.held[:0]
	}
	if err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(time.Time{})
}

// corkingWriter hands the websocket library a corkConn when it hijacks the connection.
type corkingWriter struct {
	http.ResponseWriter
	conn *corkConn
}

func (w *corkingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *corkingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// net/http's hijacked writer is a fresh, empty buffer over nc: this one replaces it.
	w.conn = &corkConn{Conn: nc}
	return w.conn, bufio.NewReadWriter(brw.Reader, bufio.NewWriterSize(w.conn, 16<<10)), nil
}
