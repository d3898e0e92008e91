// Package progress reports progress on long operator work (replays, migrations, bulk retries,
// full imports): a bar with counts, rate and ETA when the output is a terminal
// (github.com/schollz/progressbar), and plain, periodic log lines otherwise, so cron output and CI
// logs stay readable.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Options tune a Bar; the zero value is what operators get.
type Options struct {
	// Terminal forces the bar (true) or plain lines (false); nil detects it from w.
	Terminal *bool
	// Interval is how often a plain line is written; 0 is 5 s.
	Interval time.Duration
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// Bar is one unit of long work. Its methods are safe for concurrent use.
type Bar struct {
	mu       sync.Mutex
	w        io.Writer
	label    string
	total    int64
	done     int64
	started  time.Time
	lastLine time.Time
	interval time.Duration
	now      func() time.Time
	bar      *progressbar.ProgressBar // nil: plain lines
	finished bool
}

// New starts a Bar writing to w; total 0 means the total is unknown (no percentage or ETA).
func New(w io.Writer, label string, total int64) *Bar {
	return NewWithOptions(w, label, total, Options{})
}

// NewWithOptions is New with Options.
func NewWithOptions(w io.Writer, label string, total int64, o Options) *Bar {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	isTerm := false
	if o.Terminal != nil {
		isTerm = *o.Terminal
	} else if f, ok := w.(*os.File); ok {
		isTerm = term.IsTerminal(int(f.Fd()))
	}
	b := &Bar{w: w, label: label, total: total, interval: o.Interval, now: o.Now}
	b.started = o.Now()
	b.lastLine = b.started
	if isTerm {
		max := total
		if max <= 0 {
			max = -1 // a spinner with counts and rate
		}
		b.bar = progressbar.NewOptions64(max,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(label),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("msg"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionFullWidth(),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
	}
	return b
}

// Add records n more units done.
func (b *Bar) Add(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished {
		return
	}
	b.done += n
	if b.bar != nil {
		_ = b.bar.Add64(n)
		return
	}
	if now := b.now(); now.Sub(b.lastLine) >= b.interval {
		b.lastLine = now
		fmt.Fprintln(b.w, b.line(now))
	}
}

// SetTotal changes the total, for work whose size is learnt on the way.
func (b *Bar) SetTotal(total int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.total = total
	if b.bar != nil && total > 0 {
		b.bar.ChangeMax64(total)
	}
}

// Done is the count so far.
func (b *Bar) Done() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.done
}

// Finish ends the bar and writes a summary line (count, elapsed, rate). Calling it twice is safe.
func (b *Bar) Finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished {
		return
	}
	b.finished = true
	now := b.now()
	if b.bar != nil {
		_ = b.bar.Finish()
	}
	elapsed := now.Sub(b.started)
	fmt.Fprintf(b.w, "%s: done %d in %s (%s)\n", b.label, b.done, elapsed.Round(100*time.Millisecond), rate(b.done, elapsed))
}

// line is a plain progress line: "label: 1200/5000 (24.0%), 400 msg/s, eta 9s".
func (b *Bar) line(now time.Time) string {
	elapsed := now.Sub(b.started)
	s := fmt.Sprintf("%s: %d", b.label, b.done)
	if b.total > 0 {
		s += fmt.Sprintf("/%d (%.1f%%)", b.total, 100*float64(b.done)/float64(b.total))
	}
	s += ", " + rate(b.done, elapsed)
	if b.total > 0 && b.done > 0 && b.done < b.total && elapsed > 0 {
		eta := time.Duration(float64(elapsed) * float64(b.total-b.done) / float64(b.done))
		s += ", eta " + eta.Round(time.Second).String()
	}
	return s
}

func rate(n int64, elapsed time.Duration) string {
	if elapsed <= 0 {
		return "- /s"
	}
	return fmt.Sprintf("%.0f/s", float64(n)/elapsed.Seconds())
}
