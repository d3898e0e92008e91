package clocktest

import (
	"sync"
	"time"
)

// Clock is a clock a test moves: it runs at the real rate (like Running) unless paused, and
// Jump moves it ahead at once (a 24-hour cutoff, a rotation deadline). Safe for concurrent use.
type Clock struct {
	mu     sync.Mutex
	at     time.Time // reading at base
	base   time.Time // real time of the last change; zero while paused
	paused bool
}

// NewClock returns a running Clock reading at.
func NewClock(at time.Time) *Clock { return &Clock{at: at, base: time.Now()} }

// Now reads the clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.paused {
		return c.at
	}
	return c.at.Add(time.Since(c.base))
}

// Jump moves the clock ahead by d.
func (c *Clock) Jump(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at = c.at.Add(d)
}

// Set moves the clock to t, from where it runs on (or stays, if paused).
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at, c.base = t, time.Now()
}

// Pause stops the clock where it is; Resume lets it run again from there.
func (c *Clock) Pause() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.paused {
		c.at, c.paused = c.at.Add(time.Since(c.base)), true
	}
}

// Resume lets a paused clock run again.
func (c *Clock) Resume() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.paused {
		c.base, c.paused = time.Now(), false
	}
}
