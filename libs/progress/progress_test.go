package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestPlainLinesCarryCountRateAndETA(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	var out bytes.Buffer
	off := false
	b := NewWithOptions(&out, "replay CP_TICKS", 1000, Options{Terminal: &off, Interval: time.Second, Now: func() time.Time { return now }})
	now = t0.Add(500 * time.Millisecond)
	b.Add(100) // before the interval: no line
	if out.Len() != 0 {
		t.Fatalf("line written before the interval: %q", out.String())
	}
	now = t0.Add(2 * time.Second)
	b.Add(100)
	now = t0.Add(4 * time.Second)
	b.Add(800)
	b.Finish()
	b.Finish()
	b.Add(5) // after Finish: ignored
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{
		"replay CP_TICKS: 200/1000 (20.0%), 100/s, eta 8s",
		"replay CP_TICKS: 1000/1000 (100.0%), 250/s",
		"replay CP_TICKS: done 1000 in 4s (250/s)",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), strings.Join(want, "\n"))
	}
	if b.Done() != 1000 {
		t.Fatalf("Done = %d", b.Done())
	}
}

func TestUnknownTotal(t *testing.T) {
	t0 := time.Date(2026, 2, 28, 23, 59, 59, 0, time.UTC)
	now := t0
	var out bytes.Buffer
	off := false
	b := NewWithOptions(&out, "import", 0, Options{Terminal: &off, Interval: time.Second, Now: func() time.Time { return now }})
	now = t0.Add(2 * time.Second)
	b.Add(10)
	if got := strings.TrimSpace(out.String()); got != "import: 10, 5/s" {
		t.Fatalf("got %q", got)
	}
}

func TestTerminalBarWritesToItsWriter(t *testing.T) {
	var out bytes.Buffer
	on := true
	b := NewWithOptions(&out, "retry", 3, Options{Terminal: &on})
	b.Add(3)
	b.Finish()
	if !strings.Contains(out.String(), "retry") || !strings.Contains(out.String(), "3/3") || !strings.Contains(out.String(), "done 3") {
		t.Fatalf("bar output %q", out.String())
	}
}
