package exchange

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/testkit/clocktest"
)

type gapRecorder struct{ gaps []time.Time }

func (r *gapRecorder) UserStreamConnected(time.Time)    {}
func (r *gapRecorder) UserStreamDown(error)             {}
func (r *gapRecorder) UserTrade(context.Context, Trade) {}
func (r *gapRecorder) UserStreamGap(at time.Time)       { r.gaps = append(r.gaps, at) }

// A message the stream cannot read may have been a trade: it is counted and reported as a gap,
// so the user reconciles, instead of being dropped.
func TestUnreadableUserEventIsAGap(t *testing.T) {
	clock := clocktest.NewClock(clocktest.Afternoon)
	clock.Pause()
	rec := &gapRecorder{}
	u := &UserStream{cfg: UserStreamConfig{Now: clock.Now, Logger: slog.New(slog.DiscardHandler)}, h: rec}
	require.NoError(t, u.handle(context.Background(), []byte(`{"e":"executionReport","x":"TRADE","t":`)))
	require.Len(t, rec.gaps, 1)
	require.True(t, rec.gaps[0].Equal(clock.Now()), "%v", rec.gaps)
	require.Equal(t, int64(1), u.Stats().BadMessages)
}
