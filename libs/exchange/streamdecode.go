package exchange

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
)

// The stream path decodes tens of thousands of messages a second, so the shapes it lives on (the
// combined wrapper, the diff-depth event and the 24-hour ticker event) are read by hand, in Binance's key order, and
// anything else falls back to encoding/json.

var combinedPrefix = []byte(`{"stream":"`)

// UnwrapCombined splits a combined-stream message into its stream name and its data. A message
// that is not a stream message (a request's answer) returns an empty stream.
func UnwrapCombined(msg []byte) (stream string, data []byte, err error) {
	name, data, err := unwrapCombined(msg)
	return string(name), data, err
}

// unwrapCombined is UnwrapCombined with the name as a sub-slice of msg on the fast path.
func unwrapCombined(msg []byte) (stream, data []byte, err error) {
	if rest, ok := bytes.CutPrefix(msg, combinedPrefix); ok {
		if i := bytes.IndexByte(rest, '"'); i > 0 && bytes.IndexByte(rest[:i], '\\') < 0 {
			if d, ok := bytes.CutPrefix(rest[i+1:], []byte(`,"data":`)); ok {
				d = bytes.TrimRight(d, " \t\r\n")
				if len(d) > 1 && d[len(d)-1] == '}' {
					return rest[:i], d[:len(d)-1], nil
				}
			}
		}
	}
	var m combinedMessage
	if err := json.Unmarshal(msg, &m); err != nil {
		return nil, nil, fmt.Errorf("stream message: %w", err)
	}
	if m.Error != nil {
		return nil, nil, fmt.Errorf("stream request refused: code %d: %s", m.Error.Code, m.Error.Msg)
	}
	return []byte(m.Stream), m.Data, nil
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
	v, ok := s.text()
	return string(v), ok
}

// text is str without a copy: a sub-slice of the message.
func (s *scanner) text() ([]byte, bool) {
	if !s.byte('"') {
		return nil, false
	}
	b := s.b
	for j := s.i; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			v := b[s.i:j:j]
			s.i = j + 1
			return v, true
		case c < 0x20 || c > 0x7e || c == '\\': // printable ASCII only: the rest takes the slow path
			return nil, false
		}
	}
	return nil, false
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
	v, ok := parseInt(s.b[s.i:j])
	if !ok {
		return 0, false
	}
	s.i = j
	return v, true
}

// parseInt is strconv.ParseInt(string(b), 10, 64) of an optionally signed run of digits, without
// the string.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	var u uint64
	for _, c := range b {
		if c < '0' || c > '9' || u > (1<<64-1)/10 {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
		if u < uint64(c-'0') {
			return 0, false
		}
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return -int64(u), true
	}
	if u > 1<<63-1 {
		return 0, false
	}
	return int64(u), true
}

// compactLevel reads a level written without spaces, ["price","qty"], as the exchange writes
// them, at s.i without moving it: next is where it ends. Anything else is not ok, for levels to
// read the general way.
func (s *scanner) compactLevel() (l rawLevel, next int, ok bool) {
	b, i := s.b, s.i
	if i+1 >= len(b) || b[i] != '[' || b[i+1] != '"' {
		return l, 0, false
	}
	i += 2
	for k := range l {
		start := i
		for i < len(b) && b[i] != '"' {
			if c := b[i]; c < 0x20 || c > 0x7e || c == '\\' {
				return l, 0, false
			}
			i++
		}
		if i+1 >= len(b) {
			return l, 0, false
		}
		l[k] = rawText(b[start:i:i])
		i++ // the closing quote
		switch {
		case k == 0 && b[i] == ',' && i+1 < len(b) && b[i+1] == '"':
			i += 2
		case k == 1 && b[i] == ']':
			i++
		default:
			return l, 0, false
		}
	}
	return l, i, true
}

func (s *scanner) levels(dst []rawLevel) ([]rawLevel, bool) {
	if !s.byte('[') {
		return dst, false
	}
	if s.byte(']') {
		return dst, true
	}
	for {
		if l, next, ok := s.compactLevel(); ok {
			dst = append(dst, l)
			s.i = next
			if next < len(s.b) && s.b[next] == ',' { // the next level, without spaces between
				s.i++
				continue
			}
			if s.byte(']') {
				return dst, true
			}
			if !s.byte(',') {
				return dst, false
			}
			continue
		}
		var l rawLevel
		var ok bool
		if !s.byte('[') {
			return dst, false
		}
		if l[0], ok = s.text(); !ok || !s.byte(',') {
			return dst, false
		}
		if l[1], ok = s.text(); !ok || !s.byte(']') {
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
		key, ok := s.text()
		if !ok || !s.byte(':') {
			return errSlowPath
		}
		switch string(key) {
		case "e":
			ev.Type, ok = s.text()
		case "s":
			ev.Symbol, ok = s.text()
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

// tickerEvent is a "24hrTicker" event (<symbol>@ticker) as sent, its decimals kept as text until
// checked. Every key has its field (see depthEvent: "e" would otherwise land in E).
type tickerEvent struct {
	Type               string `json:"e"`
	E                  int64  `json:"E"`
	Symbol             string `json:"s"`
	PriceChange        string `json:"p"`
	PriceChangePercent string `json:"P"`
	WeightedAvgPrice   string `json:"w"`
	PrevClosePrice     string `json:"x"`
	LastPrice          string `json:"c"`
	LastQty            string `json:"Q"`
	BidPrice           string `json:"b"`
	BidQty             string `json:"B"`
	AskPrice           string `json:"a"`
	AskQty             string `json:"A"`
	OpenPrice          string `json:"o"`
	HighPrice          string `json:"h"`
	LowPrice           string `json:"l"`
	Volume             string `json:"v"`
	QuoteVolume        string `json:"q"`
	OpenTime           int64  `json:"O"`
	CloseTime          int64  `json:"C"`
	FirstID            int64  `json:"F"`
	LastID             int64  `json:"L"`
	Count              int64  `json:"n"`
}

// tickerEventType is the ticker stream's event type.
const tickerEventType = "24hrTicker"

// decodeTickerEvent reads a 24hrTicker event into a Ticker24h; an error names what was wrong.
func decodeTickerEvent(data []byte) (Ticker24h, error) {
	var ev tickerEvent
	if err := fastTickerEvent(data, &ev); err != nil {
		ev = tickerEvent{}
		if err := json.Unmarshal(data, &ev); err != nil {
			return Ticker24h{}, fmt.Errorf("ticker event: %w", err)
		}
	}
	return ev.ticker()
}

// fastTickerEvent is the hand-read path: flat keys, unescaped strings, integer numbers.
func fastTickerEvent(data []byte, ev *tickerEvent) error {
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
		key, ok := s.text()
		if !ok || !s.byte(':') || len(key) != 1 {
			return errSlowPath
		}
		var str *string
		var num *int64
		switch key[0] {
		case 'e':
			str = &ev.Type
		case 's':
			str = &ev.Symbol
		case 'p':
			str = &ev.PriceChange
		case 'P':
			str = &ev.PriceChangePercent
		case 'w':
			str = &ev.WeightedAvgPrice
		case 'x':
			str = &ev.PrevClosePrice
		case 'c':
			str = &ev.LastPrice
		case 'Q':
			str = &ev.LastQty
		case 'b':
			str = &ev.BidPrice
		case 'B':
			str = &ev.BidQty
		case 'a':
			str = &ev.AskPrice
		case 'A':
			str = &ev.AskQty
		case 'o':
			str = &ev.OpenPrice
		case 'h':
			str = &ev.HighPrice
		case 'l':
			str = &ev.LowPrice
		case 'v':
			str = &ev.Volume
		case 'q':
			str = &ev.QuoteVolume
		case 'E':
			num = &ev.E
		case 'O':
			num = &ev.OpenTime
		case 'C':
			num = &ev.CloseTime
		case 'F':
			num = &ev.FirstID
		case 'L':
			num = &ev.LastID
		case 'n':
			num = &ev.Count
		default:
			return errSlowPath
		}
		if str != nil {
			*str, ok = s.str()
		} else {
			*num, ok = s.int()
		}
		if !ok {
			return errSlowPath
		}
	}
}

// ticker checks the event and converts it: the event type, a symbol, an event time, and every
// decimal present and readable.
func (ev *tickerEvent) ticker() (Ticker24h, error) {
	if ev.Type != tickerEventType {
		return Ticker24h{}, fmt.Errorf("ticker event: type %q, want %q", ev.Type, tickerEventType)
	}
	if ev.Symbol == "" {
		return Ticker24h{}, errors.New(`ticker event: no symbol ("s")`)
	}
	if ev.E <= 0 {
		return Ticker24h{}, fmt.Errorf(`ticker event %s: event time ("E") %d`, ev.Symbol, ev.E)
	}
	t := Ticker24h{Symbol: ev.Symbol, FirstID: ev.FirstID, LastID: ev.LastID, Count: ev.Count,
		OpenTime: time.UnixMilli(ev.OpenTime).UTC(), CloseTime: time.UnixMilli(ev.CloseTime).UTC()}
	for _, f := range [...]struct {
		key, text string
		dst       *decimal.Decimal
	}{
		{"p", ev.PriceChange, &t.PriceChange}, {"P", ev.PriceChangePercent, &t.PriceChangePercent},
		{"w", ev.WeightedAvgPrice, &t.WeightedAvgPrice}, {"x", ev.PrevClosePrice, &t.PrevClosePrice},
		{"c", ev.LastPrice, &t.LastPrice}, {"Q", ev.LastQty, &t.LastQty},
		{"b", ev.BidPrice, &t.BidPrice}, {"B", ev.BidQty, &t.BidQty},
		{"a", ev.AskPrice, &t.AskPrice}, {"A", ev.AskQty, &t.AskQty},
		{"o", ev.OpenPrice, &t.OpenPrice}, {"h", ev.HighPrice, &t.HighPrice}, {"l", ev.LowPrice, &t.LowPrice},
		{"v", ev.Volume, &t.Volume}, {"q", ev.QuoteVolume, &t.QuoteVolume},
	} {
		if f.text == "" {
			return Ticker24h{}, fmt.Errorf("ticker event %s: %q missing", ev.Symbol, f.key)
		}
		d, err := decimal.NewFromString(f.text)
		if err != nil {
			return Ticker24h{}, fmt.Errorf("ticker event %s: %q: %w", ev.Symbol, f.key, err)
		}
		*f.dst = d
	}
	return t, nil
}
