package events

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ClaimBucket is the JetStream Object Store bucket of claim-checked payloads (its stream is
// OBJ_CP_CLAIMS).
const ClaimBucket = "CP_CLAIMS"

// Claim-check headers. A claim-checked message has an empty payload and these three headers;
// the payload is the object named in HeaderClaim.
const (
	// HeaderClaim is "<bucket>/<object name>"; the object name is the message's Nats-Msg-Id and
	// a digest prefix of the payload (see ClaimCheck.Offload).
	HeaderClaim = "Cp-Claim"
	// HeaderClaimSize is the payload's length in bytes.
	HeaderClaimSize = "Cp-Claim-Size"
	// HeaderClaimDigest is "SHA-256=<base64url>" of the payload, as the Object Store spells
	// digests (so it reads the same as `nats object info`).
	HeaderClaimDigest = "Cp-Claim-Digest"
	// HeaderClaimOriginal, in a dead letter's original headers, is the Cp-Claim the message
	// had; Cp-Claim there names the dead letter's own copy of the payload (ClaimCheck.Keep).
	HeaderClaimOriginal = "Cp-Claim-Original"
)

var (
	// ErrClaimMissing is returned by Resolve when the named object (or its bucket) does not
	// exist: not written yet, expired, or deleted.
	ErrClaimMissing = errors.New("events: claim-checked object missing")
	// ErrClaimCorrupt is returned by Resolve when the object's size or digest is not the one
	// the message carries, or the claim headers are malformed.
	ErrClaimCorrupt = errors.New("events: claim-checked object corrupt")
)

// ClaimConfig configures a ClaimCheck. Zero values take the defaults.
type ClaimConfig struct {
	// Bucket is the JetStream Object Store bucket. "" means ClaimBucket ("CP_CLAIMS").
	Bucket string
	// Threshold is the payload+header size in bytes above which a message is offloaded. 0 means
	// half the connection's MaxPayload (512 KiB on the default 1 MiB server). It must be below
	// MaxPayload: an offloaded message still carries its headers.
	Threshold int
	// Replicas of the bucket when it is created. 0 means 1.
	Replicas int
	// MaxAge is the objects' TTL when the bucket is created. 0 means ClaimMaxAge (DLQMaxAge
	// and an hour): a dead letter of a claim-checked message points at a copy of the object
	// made just before the dead letter is written (and refreshed while its write is retried),
	// so the copy outlives the dead letter.
	MaxAge time.Duration
	// MaxBytes bounds the bucket's stored bytes (its stream's max_bytes) when it is created. 0
	// means DefaultClaimMaxBytes (8 GiB); -1 means no bound. A Put into a full bucket fails
	// (the bucket discards new writes, never stored objects); it is counted as
	// cp_events_claims_total{result="no_space"} and logged by the caller.
	MaxBytes int64
	// Logger logs a Put refused by a full bucket (an operator must act: raise CLAIMS_MAX_MB or
	// free space). nil means slog.Default().
	Logger *slog.Logger
	// Create creates the bucket, or updates it to this configuration, in NewClaimCheck. Only
	// the bucket's owner sets it; everyone else binds to the existing bucket.
	Create bool
}

// ClaimStats counts a ClaimCheck's outcomes since it was created.
type ClaimStats struct {
	// Offloaded is messages whose payload was stored in the bucket; OffloadedBytes their bytes.
	Offloaded, OffloadedBytes uint64
	// OffloadFailures is offloads that failed (the message was not sent by the caller).
	OffloadFailures uint64
	// NoSpace is Puts (offloads and dead-letter copies) refused because the bucket was at its
	// MaxBytes; each is also an OffloadFailures or a KeepFailures.
	NoSpace uint64
	// Kept is claim-checked payloads copied for a dead letter (Keep); KeepFailures the copies
	// that failed.
	Kept, KeepFailures uint64
	// Resolved is claims read back and verified.
	Resolved uint64
	// Missing and Corrupt are resolves that failed with ErrClaimMissing and ErrClaimCorrupt;
	// ResolveFailures is the other failed resolves (timeouts, connection).
	Missing, Corrupt, ResolveFailures uint64
}

// ClaimCheck stores payloads too large for a NATS message in a JetStream Object Store and puts a
// reference in their place (the claim-check pattern), and resolves such references back. It is
// safe for concurrent use.
type ClaimCheck struct {
	js        jetstream.JetStream
	bucket    string
	threshold int
	log       *slog.Logger

	mu     sync.Mutex
	stores map[string]jetstream.ObjectStore // bound buckets, the own one and any a Cp-Claim names

	offloaded, offloadedBytes, offloadFailures  atomic.Uint64
	noSpace, kept, keepFailures                 atomic.Uint64
	resolved, missing, corrupt, resolveFailures atomic.Uint64
}

// NewClaimCheck binds to (or, with cfg.Create, creates or updates) the claim bucket. Without
// Create a missing bucket is an error wrapping jetstream.ErrBucketNotFound.
func NewClaimCheck(ctx context.Context, js jetstream.JetStream, cfg ClaimConfig) (*ClaimCheck, error) {
	c, err := newClaimCheck(js, cfg)
	if err != nil {
		return nil, err
	}
	var store jetstream.ObjectStore
	if cfg.Create {
		store, err = js.CreateOrUpdateObjectStore(ctx, ClaimBucketConfig(cfg))
		if err != nil {
			return nil, fmt.Errorf("create claim bucket %s: %w", c.bucket, err)
		}
	} else if store, err = js.ObjectStore(ctx, c.bucket); err != nil {
		return nil, fmt.Errorf("bind claim bucket %s: %w", c.bucket, err)
	}
	c.stores[c.bucket] = store
	return c, nil
}

// ClaimBucketConfig is the Object Store configuration of the claim bucket for cfg, defaults
// applied: what NewClaimCheck creates with cfg.Create, and what the topology declares (owned by
// the orchestrator, NewTopology).
func ClaimBucketConfig(cfg ClaimConfig) jetstream.ObjectStoreConfig {
	if cfg.Bucket == "" {
		cfg.Bucket = ClaimBucket
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = ClaimMaxAge
	}
	switch cfg.MaxBytes {
	case 0:
		cfg.MaxBytes = DefaultClaimMaxBytes
	case -1:
		cfg.MaxBytes = 0 // the server's "no bound"
	}
	return jetstream.ObjectStoreConfig{
		Bucket:      cfg.Bucket,
		Description: "Claim-checked payloads of events too large for a NATS message",
		TTL:         cfg.MaxAge,
		MaxBytes:    cfg.MaxBytes,
		Replicas:    cfg.Replicas,
		Storage:     jetstream.FileStorage,
	}
}

// Claim bucket limits, exported for docs and tests.
const (
	// ClaimMaxAge is the objects' default TTL: DLQMaxAge and an hour, so that a dead letter's
	// copy of its claim-checked payload (Keep, refreshed while the write is retried) outlives
	// the dead letter.
	ClaimMaxAge = DLQMaxAge + time.Hour
	// DefaultClaimMaxBytes is the bucket's default bound: room for thousands of oversized rows
	// (~1 MB each) over the CDC retention, far below a node's disk.
	DefaultClaimMaxBytes int64 = 8 << 30
)

// newClaimCheck validates cfg and returns a ClaimCheck that binds its bucket on first use.
func newClaimCheck(js jetstream.JetStream, cfg ClaimConfig) (*ClaimCheck, error) {
	if cfg.Threshold < 0 || cfg.Replicas < 0 || cfg.MaxAge < 0 || cfg.MaxBytes < -1 {
		return nil, fmt.Errorf("events: ClaimConfig: negative Threshold (%d), Replicas (%d), MaxAge (%s) or MaxBytes (%d, -1 is no bound)",
			cfg.Threshold, cfg.Replicas, cfg.MaxAge, cfg.MaxBytes)
	}
	if cfg.Bucket == "" {
		cfg.Bucket = ClaimBucket
	}
	maxPayload := int(js.Conn().MaxPayload()) // 0 before the first connect
	if cfg.Threshold == 0 {
		cfg.Threshold = 512 << 10
		if maxPayload > 0 {
			cfg.Threshold = maxPayload / 2
		}
	}
	if maxPayload > 0 && cfg.Threshold >= maxPayload {
		return nil, fmt.Errorf("events: ClaimConfig.Threshold %d is not below the server's max_payload %d", cfg.Threshold, maxPayload)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &ClaimCheck{js: js, bucket: cfg.Bucket, threshold: cfg.Threshold, log: cfg.Logger, stores: map[string]jetstream.ObjectStore{}}, nil
}

// Bucket is the bucket Offload writes to.
func (c *ClaimCheck) Bucket() string { return c.bucket }

// Threshold is the payload+header size above which Offload stores a message's payload.
func (c *ClaimCheck) Threshold() int { return c.threshold }

// Stats returns the claim-check's counters.
func (c *ClaimCheck) Stats() ClaimStats {
	return ClaimStats{
		Offloaded: c.offloaded.Load(), OffloadedBytes: c.offloadedBytes.Load(), OffloadFailures: c.offloadFailures.Load(),
		Resolved: c.resolved.Load(), Missing: c.missing.Load(), Corrupt: c.corrupt.Load(), ResolveFailures: c.resolveFailures.Load(),
		NoSpace: c.noSpace.Load(), Kept: c.kept.Load(), KeepFailures: c.keepFailures.Load(),
	}
}

// Offload moves msg.Data into the bucket when the message is over Threshold: the object is named
// after the message's Nats-Msg-Id and the payload's digest, "<Nats-Msg-Id>/<16 hex digits of
// SHA-256>" (deterministic, so a replayed publish names the same object and keeps the JetStream
// de-duplication of the small message), msg.Data becomes empty, and the headers
// Cp-Claim: <bucket>/<object name>, Cp-Claim-Size: <bytes> and
// Cp-Claim-Digest: SHA-256=<base64url> are set. The object is stored (Put acknowledged) before
// Offload returns; one already stored with the same digest is not written again. Small messages
// are left as they are.
//
// The digest is in the name because JetStream keeps the first of two publishes with one id: a
// replay whose payload differs (a new timestamp in it) must not overwrite the object the first,
// stored message refers to.
func (c *ClaimCheck) Offload(ctx context.Context, msg *nats.Msg) (offloaded bool, err error) {
	if msgBytes(msg) <= c.threshold {
		return false, nil
	}
	id := msg.Header.Get(HeaderMsgID)
	defer func() {
		if err != nil {
			c.offloadFailures.Add(1)
		}
	}()
	if id == "" {
		return false, fmt.Errorf("offload %s: no %s header to name the object after", msg.Subject, HeaderMsgID)
	}
	if ref := msg.Header.Get(HeaderClaim); ref != "" {
		// Offloaded already: only the headers are left, and they alone are over the threshold.
		return false, fmt.Errorf("offload %s %s: already claim-checked (%s), headers alone are %d bytes",
			msg.Subject, id, ref, msgBytes(msg))
	}
	store, err := c.store(ctx, c.bucket)
	if err != nil {
		return false, fmt.Errorf("offload %s %s: %w", msg.Subject, id, err)
	}
	sum := sha256.Sum256(msg.Data)
	digest := "SHA-256=" + base64URL(sum[:])
	name := id + "/" + hex.EncodeToString(sum[:8])
	info, err := store.GetInfo(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) || err == nil && (info.Digest != digest || info.Size != uint64(len(msg.Data))) {
		info, err = c.put(ctx, store, name, msg.Data)
	}
	if err != nil {
		return false, fmt.Errorf("offload %s %s: put %s/%s: %w", msg.Subject, id, c.bucket, name, err)
	}
	if info.Digest != digest || info.Size != uint64(len(msg.Data)) {
		return false, fmt.Errorf("offload %s %s: stored %d bytes %s, sent %d bytes %s",
			msg.Subject, id, info.Size, info.Digest, len(msg.Data), digest)
	}
	msg.Header.Set(HeaderClaim, c.bucket+"/"+name)
	msg.Header.Set(HeaderClaimSize, strconv.Itoa(len(msg.Data)))
	msg.Header.Set(HeaderClaimDigest, digest)
	c.offloaded.Add(1)
	c.offloadedBytes.Add(uint64(len(msg.Data)))
	msg.Data = nil
	return true, nil
}

// Resolve returns the real payload: data itself when h has no Cp-Claim header, else the
// object's bytes, checked against Cp-Claim-Size and Cp-Claim-Digest (ErrClaimMissing /
// ErrClaimCorrupt otherwise, both wrapping the name). Any other error (a timeout, a lost
// connection) is transient.
func (c *ClaimCheck) Resolve(ctx context.Context, h nats.Header, data []byte) ([]byte, error) {
	ref := h.Get(HeaderClaim)
	if ref == "" {
		return data, nil
	}
	out, err := c.resolve(ctx, ref, h)
	switch {
	case err == nil:
		c.resolved.Add(1)
	case errors.Is(err, ErrClaimMissing):
		c.missing.Add(1)
	case errors.Is(err, ErrClaimCorrupt):
		c.corrupt.Add(1)
	default:
		c.resolveFailures.Add(1)
	}
	return out, err
}

func (c *ClaimCheck) resolve(ctx context.Context, ref string, h nats.Header) ([]byte, error) {
	bucket, name, ok := strings.Cut(ref, "/")
	if !ok || bucket == "" || name == "" {
		return nil, fmt.Errorf("resolve claim %q: %w: not <bucket>/<object>", ref, ErrClaimCorrupt)
	}
	size, err := strconv.ParseUint(h.Get(HeaderClaimSize), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("resolve claim %s: %w: %s %q", ref, ErrClaimCorrupt, HeaderClaimSize, h.Get(HeaderClaimSize))
	}
	want := h.Get(HeaderClaimDigest)
	if !strings.HasPrefix(want, "SHA-256=") {
		return nil, fmt.Errorf("resolve claim %s: %w: %s %q", ref, ErrClaimCorrupt, HeaderClaimDigest, want)
	}
	store, err := c.store(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("resolve claim %s: %w: %w", ref, ErrClaimMissing, err)
	} else if err != nil {
		return nil, fmt.Errorf("resolve claim %s: %w", ref, err)
	}
	data, err := store.GetBytes(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrObjectNotFound):
		return nil, fmt.Errorf("resolve claim %s: %w: %w", ref, ErrClaimMissing, err)
	case errors.Is(err, jetstream.ErrDigestMismatch):
		return nil, fmt.Errorf("resolve claim %s: %w: %w", ref, ErrClaimCorrupt, err)
	case err != nil:
		return nil, fmt.Errorf("resolve claim %s: %w", ref, err)
	}
	if uint64(len(data)) != size {
		return nil, fmt.Errorf("resolve claim %s: %w: %d bytes, the message says %d", ref, ErrClaimCorrupt, len(data), size)
	}
	sum := sha256.Sum256(data)
	if got := "SHA-256=" + base64URL(sum[:]); got != want {
		return nil, fmt.Errorf("resolve claim %s: %w: digest %s, the message says %s", ref, ErrClaimCorrupt, got, want)
	}
	return data, nil
}

// ErrClaimNoSpace is a Put refused because the claim bucket is at its MaxBytes.
var ErrClaimNoSpace = errors.New("events: claim bucket full (max_bytes)")

// put stores data as name and tells a full bucket (ErrClaimNoSpace, counted) from other
// failures by the bucket's own figures, not the server's error text.
func (c *ClaimCheck) put(ctx context.Context, store jetstream.ObjectStore, name string, data []byte) (*jetstream.ObjectInfo, error) {
	info, err := store.Put(ctx, jetstream.ObjectMeta{Name: name}, bytes.NewReader(data))
	if err == nil {
		return info, nil
	}
	if st, serr := store.Status(ctx); serr == nil {
		if bs, ok := st.(*jetstream.ObjectBucketStatus); ok {
			if max := bs.StreamInfo().Config.MaxBytes; max > 0 && st.Size()+uint64(len(data)) > uint64(max) {
				c.noSpace.Add(1)
				c.log.Error("claim bucket full: a payload was refused; raise its max bytes (CLAIMS_MAX_MB) or free space",
					"bucket", c.bucket, "object", name, "used_bytes", st.Size(), "max_bytes", max, "asked_bytes", len(data), "err", err)
				return nil, fmt.Errorf("%w: %d of %d bytes used, %d more asked: %w", ErrClaimNoSpace, st.Size(), max, len(data), err)
			}
		}
	}
	return nil, err
}

// Keep copies the claim-checked payload h refers to into the own bucket as name (always written
// afresh, so the copy's age starts now) and returns a copy of h pointing at it, the original
// reference kept in HeaderClaimOriginal. A dead letter points at such a copy, named after its
// own id, so that its payload lives as long as the dead letter and not only as long as the
// original object. The payload is verified on the way (ErrClaimMissing, ErrClaimCorrupt).
func (c *ClaimCheck) Keep(ctx context.Context, h nats.Header, name string) (out nats.Header, err error) {
	ref := h.Get(HeaderClaim)
	defer func() {
		if err != nil {
			c.keepFailures.Add(1)
		} else {
			c.kept.Add(1)
		}
	}()
	data, err := c.resolve(ctx, ref, h)
	if err != nil {
		return nil, fmt.Errorf("keep %s as %s/%s: %w", ref, c.bucket, name, err)
	}
	store, err := c.store(ctx, c.bucket)
	if err != nil {
		return nil, fmt.Errorf("keep %s as %s/%s: %w", ref, c.bucket, name, err)
	}
	if _, err := c.put(ctx, store, name, data); err != nil {
		return nil, fmt.Errorf("keep %s as %s/%s: put: %w", ref, c.bucket, name, err)
	}
	out = make(nats.Header, len(h)+1)
	for k, vs := range h {
		out[k] = slices.Clone(vs)
	}
	out.Set(HeaderClaim, c.bucket+"/"+name)
	if out.Get(HeaderClaimOriginal) == "" {
		out.Set(HeaderClaimOriginal, ref)
	}
	return out, nil
}

// Notes are small objects beside the payloads: what a consumer that stopped with a dead letter
// unwritten knew (the handler's error), for the instance that writes it on the redelivery.
func (c *ClaimCheck) putNote(ctx context.Context, name string, data []byte) error {
	store, err := c.store(ctx, c.bucket)
	if err != nil {
		return err
	}
	_, err = c.put(ctx, store, name, data)
	return err
}

func (c *ClaimCheck) getNote(ctx context.Context, name string) ([]byte, error) {
	store, err := c.store(ctx, c.bucket)
	if err != nil {
		return nil, err
	}
	return store.GetBytes(ctx, name)
}

func (c *ClaimCheck) deleteNote(ctx context.Context, name string) error {
	store, err := c.store(ctx, c.bucket)
	if err != nil {
		return err
	}
	return store.Delete(ctx, name)
}

// store returns the bound bucket, binding it on first use.
func (c *ClaimCheck) store(ctx context.Context, bucket string) (jetstream.ObjectStore, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.stores[bucket]; ok {
		return s, nil
	}
	s, err := c.js.ObjectStore(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("bind claim bucket %s: %w", bucket, err)
	}
	c.stores[bucket] = s
	return s, nil
}

// msgBytes is what counts against max_payload: headers and payload.
func msgBytes(m *nats.Msg) int {
	return m.Size() - len(m.Subject) - len(m.Reply)
}

// base64URL spells a digest as the Object Store does (jetstream.GetObjectDigestValue).
func base64URL(b []byte) string { return base64.URLEncoding.EncodeToString(b) }
