package simex

import (
	"fmt"
	"hash/fnv"
	"math"
	"strings"
	"sync"
	"time"
)

// Random-walk shape: value noise on 1 s·2^L lattices, L < walkLevels, with amplitude ∝ √period,
// which has Brownian increments (variance ≈ 8/3·σ²·τ) up to the longest period and stays bounded
// beyond it.
const (
	walkLevels = 22 // longest period 2^21 s ≈ 24 days
	// dailyVol is the typical standard deviation of a day's log return.
	dailyVol = 0.03
)

// quoteAssets are the quote assets symbols are split on, longest first.
var quoteAssets = []string{"FDUSD", "USDT", "USDC", "BTC", "ETH", "BNB"}

// stablecoins are fixed at one dollar.
var stablecoins = map[string]bool{"USDT": true, "USDC": true, "FDUSD": true, "BUSD": true, "TUSD": true, "DAI": true}

// usdPrices are typical dollar prices of known assets; others get a price from their name's
// hash, between 0.01 and 100.
var usdPrices = map[string]float64{
	"BTC": 60000, "ETH": 3000, "BNB": 600, "SOL": 150, "XRP": 0.6, "ADA": 0.45, "DOGE": 0.15,
	"DOT": 7, "LTC": 80, "LINK": 15, "AVAX": 35, "TRX": 0.12, "MATIC": 0.7, "POL": 0.5,
	"SHIB": 0.00002, "PEPE": 0.00001, "TON": 5, "NEAR": 5, "ATOM": 8, "UNI": 8, "XLM": 0.1,
	"BCH": 400, "ETC": 25, "FIL": 5, "APT": 9, "ARB": 1, "OP": 2, "SUI": 1.5, "INJ": 25,
}

var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8}
var ipow10 = [...]int64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8}

// splitSymbol splits a symbol into base and quote asset.
func splitSymbol(s string) (base, quote string, err error) {
	if s == "" || len(s) > 20 || strings.IndexFunc(s, func(r rune) bool {
		return (r < 'A' || r > 'Z') && (r < '0' || r > '9')
	}) >= 0 {
		return "", "", fmt.Errorf("symbol %q: want upper-case letters and digits", s)
	}
	for _, q := range quoteAssets {
		if b, ok := strings.CutSuffix(s, q); ok && b != "" && b != q {
			return b, q, nil
		}
	}
	return "", "", fmt.Errorf("symbol %q: quote asset is none of %s", s, strings.Join(quoteAssets, ", "))
}

// mix is splitmix64's finaliser: a fast, well-spread 64-bit hash step.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func hash2(a, b uint64) uint64    { return mix(a ^ mix(b)) }
func hash3(a, b, c uint64) uint64 { return mix(a ^ mix(b^mix(c))) }

func hashString(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return mix(h.Sum64())
}

// unit maps a hash to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) * 0x1p-53 }

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// walk is one asset's dollar price path.
type walk struct {
	key   uint64
	logP0 float64
	fixed bool
	amp   [walkLevels]float64
}

func newWalk(seed uint64, asset string) *walk {
	w := &walk{key: hash2(seed, hashString(asset)), fixed: stablecoins[asset]}
	p0, ok := usdPrices[asset]
	if w.fixed {
		p0 = 1
	} else if !ok {
		p0 = math.Pow(10, -2+4*unit(hashString("price:"+asset)))
	}
	w.logP0 = math.Log(p0)
	vol := dailyVol * (0.6 + 0.8*unit(hash2(w.key, 1)))
	sigma := vol / math.Sqrt(86400*8.0/3)
	for l := range w.amp {
		w.amp[l] = sigma * math.Sqrt(float64(int64(1)<<l))
	}
	return w
}

// logAt is the log dollar price at Unix millisecond ms.
func (w *walk) logAt(ms int64) float64 { return w.logAtVia(ms, nil) }

// walkMemo keeps the lattice values of a walk's last point per level, for a series of points
// in time order (a ticker's samples): points a lattice cell apart share its corners.
type walkMemo struct {
	cells [walkLevels]struct {
		i    int64
		a, b float64
		set  bool
	}
}

// logAtVia is logAt, through memo (nil: none).
func (w *walk) logAtVia(ms int64, memo *walkMemo) float64 {
	x := w.logP0
	if w.fixed {
		return x
	}
	sec := floorDiv(ms, 1000)
	for l := range walkLevels {
		period := int64(1000) << l
		i := sec >> l // floorDiv(ms, period)
		frac := float64(ms-i*period) / float64(period)
		var a, b float64
		if memo != nil && memo.cells[l].set && memo.cells[l].i == i {
			a, b = memo.cells[l].a, memo.cells[l].b
		} else {
			// One mix per lattice point: level and index occupy disjoint bits (index < 2^56).
			lk := w.key ^ uint64(l)<<56
			if memo != nil && memo.cells[l].set && memo.cells[l].i == i-1 {
				a = memo.cells[l].b // the next cell's first corner is the last one's second
			} else {
				a = unit(mix(lk^uint64(i)))*2 - 1
			}
			b = unit(mix(lk^uint64(i+1)))*2 - 1
			if memo != nil {
				memo.cells[l].i, memo.cells[l].a, memo.cells[l].b, memo.cells[l].set = i, a, b, true
			}
		}
		x += w.amp[l] * (a + (b-a)*frac)
	}
	return x
}

// market is one symbol: its price path, tick and lot sizes, and volume scale.
type market struct {
	symbol, base, quote string
	key                 uint64
	baseW, quoteW       *walk
	p0                  float64 // typical price, in quote
	priceDec            int     // tick size 10^-priceDec
	qtyDec              int     // lot step 10^-qtyDec
	levelQty            float64 // typical book level size, base units
	volPerSec           float64 // typical traded volume, base units per second
	marketTradeMs       int64   // mean spacing of market trades, for ticker trade ids
	accountTradeMs      int64   // slot length of the account's trades (myTrades)

	// streamMu guards levels, the diff-depth streams' level cache (nil until streamed).
	streamMu sync.Mutex
	levels   *levelCache
}

func newMarket(seed uint64, symbol string, walks map[string]*walk, accountTradeEvery time.Duration) (*market, error) {
	base, quote, err := splitSymbol(symbol)
	if err != nil {
		return nil, err
	}
	for _, a := range []string{base, quote} {
		if walks[a] == nil {
			walks[a] = newWalk(seed, a)
		}
	}
	m := &market{symbol: symbol, base: base, quote: quote, key: hash2(seed, hashString(symbol)),
		baseW: walks[base], quoteW: walks[quote]}
	m.p0 = math.Exp(m.baseW.logP0 - m.quoteW.logP0)
	// About seven significant digits of price, and lots worth between $0.10 and $1 or less.
	m.priceDec = min(8, max(0, 6-int(math.Floor(math.Log10(m.p0)))))
	baseUSD := math.Exp(m.baseW.logP0)
	m.qtyDec = min(8, max(0, int(math.Floor(math.Log10(baseUSD)))+1))
	m.levelQty = 2500 / baseUSD
	// Between $1M and $50M a day.
	m.volPerSec = 1e6 * math.Pow(50, unit(hash2(m.key, 2))) / baseUSD / 86400
	m.marketTradeMs = 50 + int64(unit(hash2(m.key, 3))*450)
	m.accountTradeMs = max(1, int64(float64(accountTradeEvery.Milliseconds())*(0.5+unit(hash2(m.key, 4)))))
	return m, nil
}

// price is the symbol's price, in quote, at Unix millisecond ms.
func (m *market) price(ms int64) float64 {
	return math.Exp(m.baseW.logAt(ms) - m.quoteW.logAt(ms))
}

// ticks is the price at ms in tick units (at least one tick).
func (m *market) ticks(ms int64) int64 { return m.ticksVia(ms, nil) }

// ticksVia is ticks, the walks through memo (nil: none; else one per walk, base then quote).
func (m *market) ticksVia(ms int64, memo *[2]walkMemo) int64 {
	var p float64
	if memo == nil {
		p = m.price(ms)
	} else {
		p = math.Exp(m.baseW.logAtVia(ms, &memo[0]) - m.quoteW.logAtVia(ms, &memo[1]))
	}
	return max(1, int64(math.Round(p*pow10[m.priceDec])))
}

// qtyUnits converts a base quantity to lot units (at least one).
func (m *market) qtyUnits(q float64) int64 {
	return max(1, int64(math.Round(q*pow10[m.qtyDec])))
}

// appendFixed appends units·10^-dec with Binance's eight decimals.
func appendFixed(b []byte, units int64, dec int) []byte {
	if units < 0 {
		b = append(b, '-')
		units = -units
	}
	if units > maxScaledUnits[dec] {
		// Too large to scale to 10^-8 units in an int64: integer part and fraction apart.
		b = appendInt(b, units/ipow10[dec])
		return appendFraction(b, uint64(units%ipow10[dec]*ipow10[8-dec]))
	}
	v := uint64(units * ipow10[8-dec]) // in 10^-8
	b = appendInt(b, int64(v/1e8))
	return appendFraction(b, v%1e8)
}

// maxScaledUnits[dec] is the most units of 10^-dec that scale to 10^-8 units in an int64.
var maxScaledUnits = func() (m [9]int64) {
	for dec := range m {
		m[dec] = (1<<63 - 1) / ipow10[8-dec]
	}
	return m
}()

// appendFraction appends '.' and eight digits of f < 10^8, two at a time.
func appendFraction(b []byte, f uint64) []byte {
	n := len(b)
	b = append(b, ".00000000"...)
	d := b[n+1 : n+9]
	hi, lo := f/10000, f%10000
	d[0], d[1] = digitPairs[2*(hi/100)], digitPairs[2*(hi/100)+1]
	d[2], d[3] = digitPairs[2*(hi%100)], digitPairs[2*(hi%100)+1]
	d[4], d[5] = digitPairs[2*(lo/100)], digitPairs[2*(lo/100)+1]
	d[6], d[7] = digitPairs[2*(lo%100)], digitPairs[2*(lo%100)+1]
	return b
}

const digitPairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

func appendInt(b []byte, v int64) []byte {
	if v < 0 {
		b = append(b, '-')
		v = -v
	}
	u := uint64(v)
	var d [20]byte
	i := len(d)
	for u >= 100 {
		q := u % 100
		u /= 100
		i -= 2
		d[i], d[i+1] = digitPairs[2*q], digitPairs[2*q+1]
	}
	if u >= 10 {
		i -= 2
		d[i], d[i+1] = digitPairs[2*u], digitPairs[2*u+1]
	} else {
		i--
		d[i] = byte('0' + u)
	}
	return append(b, d[i:]...)
}

// fixed formats units·10^-dec as a string with eight decimals.
func fixed(units int64, dec int) string { return string(appendFixed(nil, units, dec)) }

// fixedFloat formats a derived quantity (volumes, averages) with eight decimals.
func fixedFloat(v float64) string { return string(appendFixedFloat(nil, v)) }
