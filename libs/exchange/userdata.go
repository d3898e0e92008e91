package exchange

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// User data stream facts (Binance Spot, /api/v3/userDataStream).
const (
	// ListenKeyWeight is the weight of each user data stream call (create, keep alive, close).
	ListenKeyWeight = 2
	// ListenKeyValidity is how long a listenKey lives after its creation or last keepalive.
	ListenKeyValidity = 60 * time.Minute
	// ListenKeyKeepAlive is how often Binance recommends extending a listenKey.
	ListenKeyKeepAlive = 30 * time.Minute
)

// CreateListenKey is POST /api/v3/userDataStream (weight 2, API key, no signature): a listenKey
// for the account's user data stream, valid ListenKeyValidity. An account with a live key gets
// that key back, extended. The key is a bearer secret: never log it.
func (c *Client) CreateListenKey(ctx context.Context) (string, error) {
	var out struct {
		ListenKey string `json:"listenKey"`
	}
	if err := c.do(ctx, call{method: http.MethodPost, path: "/api/v3/userDataStream", weight: ListenKeyWeight, keyed: true}, &out); err != nil {
		return "", err
	}
	if out.ListenKey == "" {
		return "", fmt.Errorf("exchange: POST /api/v3/userDataStream: %w: no listenKey", ErrMalformedResponse)
	}
	return out.ListenKey, nil
}

// KeepAliveListenKey is PUT /api/v3/userDataStream (weight 2): extends the key by
// ListenKeyValidity. A key that expired or never existed fails with ErrListenKeyNotFound.
func (c *Client) KeepAliveListenKey(ctx context.Context, listenKey string) error {
	return c.listenKeyCall(ctx, http.MethodPut, listenKey)
}

// CloseListenKey is DELETE /api/v3/userDataStream (weight 2): closes the key's streams.
func (c *Client) CloseListenKey(ctx context.Context, listenKey string) error {
	return c.listenKeyCall(ctx, http.MethodDelete, listenKey)
}

func (c *Client) listenKeyCall(ctx context.Context, method, listenKey string) error {
	if listenKey == "" {
		return fmt.Errorf("exchange: %s /api/v3/userDataStream: listenKey: %w", method, ErrInvalidArgument)
	}
	var out struct{}
	return c.do(ctx, call{method: method, path: "/api/v3/userDataStream", query: url.Values{"listenKey": {listenKey}},
		weight: ListenKeyWeight, keyed: true}, &out)
}
