package events

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"unicode"

	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TypeOf returns the ce-type of an event message, derived from its protobuf full name: the
// first package element, the message name in snake case, and the package's version, e.g.
// cryptopill.events.v1.UniverseChanged → "cryptopill.universe_changed.v1".
func TypeOf(m proto.Message) string {
	return typeOfDescriptor(m.ProtoReflect().Descriptor())
}

var versionElem = regexp.MustCompile(`^v[0-9]+([a-z]+[0-9]*)?$`)

func typeOfDescriptor(d protoreflect.MessageDescriptor) string {
	pkg := strings.Split(string(d.ParentFile().Package()), ".")
	parts := []string{pkg[0], snake(string(d.Name()))}
	if last := pkg[len(pkg)-1]; len(pkg) > 1 && versionElem.MatchString(last) {
		parts = append(parts, last)
	}
	return strings.Join(parts, ".")
}

// snake turns a CamelCase name into snake_case: "RowChange" → "row_change", "DLQEntry" →
// "dlq_entry".
func snake(name string) string {
	var b strings.Builder
	rs := []rune(name)
	for i, r := range rs {
		if unicode.IsUpper(r) {
			prevLower := i > 0 && (unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1]))
			nextLower := i > 0 && i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(rs[i-1])
			if prevLower || nextLower {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Types lists the ce-types Decode knows, one per event message of eventsv1.
func Types() []string {
	reg := registry()
	out := make([]string, 0, len(reg))
	for _, m := range eventMessages() {
		out = append(out, TypeOf(m))
	}
	return out
}

// NewMessage returns a new, empty event message for a ce-type, e.g. *eventsv1.Tick for
// "cryptopill.tick.v1". An unknown type gives an error wrapping ErrUnknownType and
// ErrMalformed.
func NewMessage(ceType string) (proto.Message, error) {
	mt, ok := registry()[ceType]
	if !ok {
		return nil, fmt.Errorf("%w: %w: ce-type %q", ErrMalformed, ErrUnknownType, ceType)
	}
	return mt.New().Interface(), nil
}

// eventMessages are the messages published as events; the helper messages (Value,
// OrchestratorSession, HeaderValues) never travel alone.
func eventMessages() []proto.Message {
	return []proto.Message{
		(*eventsv1.Tick)(nil),
		(*eventsv1.UniverseChanged)(nil),
		(*eventsv1.RowChange)(nil),
		(*eventsv1.JobLifecycle)(nil),
		(*eventsv1.MovesImported)(nil),
		(*eventsv1.DeadLetter)(nil),
	}
}

// registry maps ce-type to message type. It is built once, on first use, and never changes.
var registry = sync.OnceValue(func() map[string]protoreflect.MessageType {
	reg := map[string]protoreflect.MessageType{}
	for _, m := range eventMessages() {
		reg[TypeOf(m)] = m.ProtoReflect().Type()
	}
	return reg
})
