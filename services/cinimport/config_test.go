package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTradeSourceConfig(t *testing.T) {
	t.Parallel()
	env := func(kv ...string) func(string) (string, bool) {
		m := map[string]string{"DATABASE_URL": "postgres://x@127.0.0.1/db", "NATS_URL": "nats://127.0.0.1:4222"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	cfg, err := LoadConfig(env())
	require.NoError(t, err)
	require.Equal(t, TradeSourceStream, cfg.TradeSource)
	require.Equal(t, time.Hour, cfg.TradeReconcileInterval)
	require.Equal(t, 300, cfg.TradeSyncWeightPerMinute)

	cfg, err = LoadConfig(env("CIN_TRADE_SOURCE", "rest", "CIN_TRADE_RECONCILE_INTERVAL", "30m", "CIN_TRADE_SYNC_WEIGHT_PER_MINUTE", "600"))
	require.NoError(t, err)
	require.Equal(t, TradeSourceREST, cfg.TradeSource)
	require.Equal(t, 30*time.Minute, cfg.TradeReconcileInterval)
	require.Equal(t, 600, cfg.TradeSyncWeightPerMinute)

	for name, bad := range map[string]string{
		"CIN_TRADE_SOURCE":                 "websocket",
		"CIN_TRADE_RECONCILE_INTERVAL":     "hourly",
		"CIN_TRADE_SYNC_WEIGHT_PER_MINUTE": "10", // below one call's weight
	} {
		_, err := LoadConfig(env(name, bad))
		require.ErrorContains(t, err, name)
		require.ErrorContains(t, err, bad)
	}
}
