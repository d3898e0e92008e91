package events

import "errors"

var (
	// ErrAttemptsExhausted is the cause of a dead letter written on a consumer's reserved last
	// delivery, after a handler attempt that never settled.
	ErrAttemptsExhausted = errors.New("events: handler attempts exhausted")

	// ErrInvalidEvent is returned by Encode and the publishers for an event that cannot be
	// published: no id, no payload, no source, or an invalid subject.
	ErrInvalidEvent = errors.New("events: invalid event")

	// ErrMalformed is returned by Decode for a message that is not a valid event: a missing or
	// bad CloudEvents header, an unknown ce-type, or a payload that does not parse. A consumer
	// dead-letters such a message.
	ErrMalformed = errors.New("events: malformed message")

	// ErrUnknownType is returned (together with ErrMalformed) for a ce-type no event message
	// has.
	ErrUnknownType = errors.New("events: unknown event type")

	// ErrPublisherClosed is returned by a Publisher after Close.
	ErrPublisherClosed = errors.New("events: publisher closed")

	// ErrPermanent marks a handler error as not worth retrying; see Permanent.
	ErrPermanent = errors.New("events: permanent failure")

	// ErrHandlerPanic is returned by the Recover middleware when a handler panics.
	ErrHandlerPanic = errors.New("events: handler panicked")

	// ErrAlreadyRunning is returned by Consumer.Run when the consumer is already running.
	ErrAlreadyRunning = errors.New("events: consumer already running")
)

// Permanent marks err as permanent: the consumer dead-letters the message at once (reason
// REJECTED) instead of redelivering it. errors.Is(Permanent(err), ErrPermanent) and
// errors.Is(Permanent(err), err) both hold. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type permanentError struct{ err error }

func (e permanentError) Error() string   { return e.err.Error() }
func (e permanentError) Unwrap() []error { return []error{ErrPermanent, e.err} }
