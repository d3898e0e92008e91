package exchange

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// The stream path decodes tens of thousands of messages a second, so the two shapes it lives on
// (the combined wrapper and the diff-depth event) are read by hand, in Binance's key order, and
// anything else falls back to encoding/json.

var combinedPrefix = []byte(`{"stream":"`)

// UnwrapCombined splits a combined-stream message into its stream name and its data. A message
// that is not a stream message (a request's answer) returns an empty stream.
func UnwrapCombined(msg []byte) (stream string, data []byte, err error) {
	if rest, ok := bytes.CutPrefix(msg, combinedPrefix); ok {
		if i := bytes.IndexByte(rest, '"'); i > 0 && bytes.IndexByte(rest[:i], '\\') < 0 {
			if d, ok := bytes.CutPrefix(rest[i+1:], []byte(`,"data":`)); ok {
				d = bytes.TrimRight(d, " \t\r\n")
				if len(d) > 1 && d[len(d)-1] == '}' {
					return string(rest[:i]), d[:len(d)-1], nil
				}
			}
		}
	}
	var m combinedMessage
	if err := json.Unmarshal(msg, &m); err != nil {
		return "", nil, fmt.Errorf("stream message: %w", err)
	}
	if m.Error != nil {
		return "", nil, fmt.Errorf("stream request refused: code %d: %s", m.Error.Code, m.Error.Msg)
	}
	return m.Stream, m.Data, nil
}

var errSlowPath = errors.New("not the usual shape")

// decodeDepthEvent reads a diff-depth event into ev, reusing its level slices.
func decodeDepthEvent(data []byte, ev *depthEvent) error {
	ev.Bids, ev.Asks = ev.Bids[:0], ev.Asks[:0]
	if err := fastDepthEvent(data, ev); err == nil {
		return nil
	}
	*ev = depthEvent{}
	if err := json.Unmarshal(data, ev); err != nil {
		return err
	}
	return nil
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) skipWS() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\n' || s.b[s.i] == '\t' || s.b[s.i] == '\r') {
		s.i++
	}
}

func (s *scanner) byte(c byte) bool {
	s.skipWS()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str reads a string without escapes (Binance's names and decimals have none).
func (s *scanner) str() (string, bool) {
	if !s.byte('"') {
		return "", false
	}
	j := bytes.IndexByte(s.b[s.i:], '"')
	if j < 0 {
		return "", false
	}
	for _, c := range s.b[s.i : s.i+j] {
		if c < 0x20 || c > 0x7e || c == '\\' { // printable ASCII only: the rest takes the slow path
			return "", false
		}
	}
	v := string(s.b[s.i : s.i+j])
	s.i += j + 1
	return v, true
}

func (s *scanner) int() (int64, bool) {
	s.skipWS()
	j := s.i
	if j < len(s.b) && s.b[j] == '-' {
		j++
	}
	d := j
	for j < len(s.b) && s.b[j] >= '0' && s.b[j] <= '9' {
		j++
	}
	if j == d || (s.b[d] == '0' && j > d+1) { // JSON: no empty number, no leading zero
		return 0, false
	}
	if j < len(s.b) && (s.b[j] == '.' || s.b[j] == 'e' || s.b[j] == 'E') {
		return 0, false
	}
	v, err := strconv.ParseInt(string(s.b[s.i:j]), 10, 64)
	if err != nil {
		return 0, false
	}
	s.i = j
	return v, true
}

func (s *scanner) levels(dst []rawLevel) ([]rawLevel, bool) {
	if !s.byte('[') {
		return dst, false
	}
	if s.byte(']') {
		return dst, true
	}
	for {
		var l rawLevel
		var ok bool
		if !s.byte('[') {
			return dst, false
		}
		if l[0], ok = s.str(); !ok || !s.byte(',') {
			return dst, false
		}
		if l[1], ok = s.str(); !ok || !s.byte(']') {
			return dst, false
		}
		dst = append(dst, l)
		if s.byte(']') {
			return dst, true
		}
		if !s.byte(',') {
			return dst, false
		}
	}
}

func fastDepthEvent(data []byte, ev *depthEvent) error {
	s := &scanner{b: data}
	if !s.byte('{') {
		return errSlowPath
	}
	for first := true; ; first = false {
		if s.byte('}') {
			s.skipWS()
			if s.i != len(s.b) {
				return errSlowPath
			}
			return nil
		}
		if !first && !s.byte(',') {
			return errSlowPath
		}
		key, ok := s.str()
		if !ok || !s.byte(':') {
			return errSlowPath
		}
		switch key {
		case "e":
			ev.Type, ok = s.str()
		case "s":
			ev.Symbol, ok = s.str()
		case "E":
			ev.E, ok = s.int()
		case "U":
			ev.First, ok = s.int()
		case "u":
			ev.Final, ok = s.int()
		case "b":
			ev.Bids, ok = s.levels(ev.Bids[:0])
		case "a":
			ev.Asks, ok = s.levels(ev.Asks[:0])
		default:
			return errSlowPath
		}
		if !ok {
			return errSlowPath
		}
	}
}
