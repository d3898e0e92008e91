package exchange

import (
	"encoding/json"
	"testing"
)

func TestFastDecodersAgreeWithEncodingJSON(t *testing.T) {
	for _, msg := range []string{
		`{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":5,"u":9,"b":[["1.0","2.0"]],"a":[]}}`,
		`{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":5,"u":9,"b":[],"a":[["3.5","0.00000000"],["3.6","1"]]}}` + "\n",
		// Other key orders and spacing take the slow path and read the same.
		`{"data": {"u":9, "U":5, "s":"BTCUSDT", "E":1, "e":"depthUpdate", "a":[["3.5","1"]], "b":[ ["1.0", "2.0"] ]}, "stream":"btcusdt@depth@100ms"}`,
		`{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":5,"u":9,"pu":4,"b":[["1.0","2.0"]],"a":[]}}`,
	} {
		stream, data, err := UnwrapCombined([]byte(msg))
		if err != nil || stream != "btcusdt@depth@100ms" {
			t.Fatalf("%s: stream %q err %v", msg, stream, err)
		}
		var fast, slow depthEvent
		if err := decodeDepthEvent(data, &fast); err != nil {
			t.Fatalf("%s: %v", msg, err)
		}
		if err := json.Unmarshal(data, &slow); err != nil {
			t.Fatal(err)
		}
		for _, e := range []*depthEvent{&fast, &slow} {
			if e.Bids == nil {
				e.Bids = []rawLevel{}
			}
			if e.Asks == nil {
				e.Asks = []rawLevel{}
			}
		}
		fj, _ := json.Marshal(fast)
		sj, _ := json.Marshal(slow)
		if string(fj) != string(sj) {
			t.Fatalf("%s:\nfast %s\nslow %s", msg, fj, sj)
		}
	}
	for _, bad := range []string{`{"result":null,"id":1}`, `{"error":{"code":2,"msg":"Invalid request"},"id":3}`, `{"stream":`} {
		stream, _, err := UnwrapCombined([]byte(bad))
		if stream != "" || (bad != `{"result":null,"id":1}` && err == nil) {
			t.Fatalf("%s: stream %q err %v", bad, stream, err)
		}
	}
	var ev depthEvent
	if err := decodeDepthEvent([]byte(`{"e":"depthUpdate","b":[["1"]]}`), &ev); err == nil {
		t.Fatal("a one-element level decoded")
	}
}

// FuzzDepthEvent: whatever the fast path accepts, encoding/json reads the same way.
func FuzzDepthEvent(f *testing.F) {
	f.Add([]byte(`{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":5,"u":9,"b":[["1.0","2.0"]],"a":[]}`))
	f.Add([]byte(`{"e":"depthUpdate","E":-1,"s":"X","U":5,"u":9,"b":[],"a":[["3","0"],["4","1"]]} `))
	f.Add([]byte(`{"u":9}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast depthEvent
		if fastDepthEvent(data, &fast) != nil {
			return
		}
		var slow depthEvent
		if err := json.Unmarshal(data, &slow); err != nil {
			t.Fatalf("fast path accepted what encoding/json refuses (%v): %q", err, data)
		}
		for _, e := range []*depthEvent{&fast, &slow} {
			if e.Bids == nil {
				e.Bids = []rawLevel{}
			}
			if e.Asks == nil {
				e.Asks = []rawLevel{}
			}
		}
		fj, _ := json.Marshal(fast)
		sj, _ := json.Marshal(slow)
		if string(fj) != string(sj) {
			t.Fatalf("%q:\nfast %s\nslow %s", data, fj, sj)
		}
	})
}

// FuzzTickerEvent: whatever the fast path accepts, encoding/json reads the same way; and the
// decoder never panics.
func FuzzTickerEvent(f *testing.F) {
	f.Add([]byte(`{"e":"24hrTicker","E":1672515782136,"s":"BNBBTC","p":"0.0015","P":"250.00","w":"0.0018","x":"0.0009","c":"0.0025",` +
		`"Q":"10","b":"0.0024","B":"10","a":"0.0026","A":"100","o":"0.0010","h":"0.0025","l":"0.0010","v":"10000","q":"18",` +
		`"O":0,"C":86400000,"F":0,"L":18150,"n":18151}`))
	f.Add([]byte(`{"e":"24hrTicker","E":1,"s":"X","c":"1"} `))
	f.Add([]byte(`{"e":"24hrMiniTicker","E":1,"s":"X","c":"1","o":"1","h":"1","l":"1","v":"0","q":"0"}`))
	f.Add([]byte(`{"C":9223372036854775807,"E":-0}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tk, err := decodeTickerEvent(data)
		if err == nil && (tk.Symbol == "" || tk.LastPrice.String() == "") {
			t.Fatalf("accepted without a symbol or last price: %q", data)
		}
		var fast tickerEvent
		if fastTickerEvent(data, &fast) != nil {
			return
		}
		var slow tickerEvent
		if err := json.Unmarshal(data, &slow); err != nil {
			t.Fatalf("fast path accepted what encoding/json refuses (%v): %q", err, data)
		}
		if fast != slow {
			t.Fatalf("%q:\nfast %+v\nslow %+v", data, fast, slow)
		}
	})
}
