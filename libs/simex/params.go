package simex

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
)

// apiError is a Binance error answer.
type apiError struct {
	status int
	code   int
	msg    string
}

func (e *apiError) reply() (int, []byte) { return e.status, errBody(e.code, e.msg) }

func errBody(code int, msg string) []byte {
	b, _ := json.Marshal(struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	}{code, msg})
	return b
}

func badRequest(code int, msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, msg: msg}
}

func mandatory(name string) *apiError {
	return badRequest(-1102, "Mandatory parameter '"+name+"' was not sent, was empty/null, or malformed.")
}

func illegal(name string) *apiError {
	return badRequest(-1100, "Illegal characters found in parameter '"+name+"'; legal range is '^[0-9]{1,20}$'.")
}

func invalidSymbol() *apiError { return badRequest(-1121, "Invalid symbol.") }

// intParam reads an optional non-negative integer parameter; ok is false when absent.
func intParam(q url.Values, name string) (v int64, ok bool, err *apiError) {
	s := q.Get(name)
	if s == "" {
		return 0, false, nil
	}
	if len(s) > 20 {
		return 0, false, illegal(name)
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, false, illegal(name)
		}
	}
	v, perr := strconv.ParseInt(s, 10, 64)
	if perr != nil {
		return 0, false, illegal(name)
	}
	return v, true, nil
}

// limitParam reads limit: def when absent, an error outside 1..max.
func limitParam(q url.Values, def, maxLimit int64) (int64, *apiError) {
	v, ok, err := intParam(q, "limit")
	if err != nil {
		return 0, err
	}
	if !ok {
		return def, nil
	}
	if v < 1 || v > maxLimit {
		return 0, badRequest(-1130, "Data sent for parameter 'limit' is not valid.")
	}
	return v, nil
}

// marketParam reads the mandatory symbol parameter.
func (e *Exchange) marketParam(q url.Values) (*market, *apiError) {
	s := q.Get("symbol")
	if s == "" {
		return nil, mandatory("symbol")
	}
	m := e.markets[s]
	if m == nil {
		return nil, invalidSymbol()
	}
	return m, nil
}

// marketsParam reads symbol or symbols=["A","B"]; neither means every market.
func (e *Exchange) marketsParam(q url.Values) (ms []*market, single bool, err *apiError) {
	one, many := q.Get("symbol"), q.Get("symbols")
	switch {
	case one != "" && many != "":
		return nil, false, badRequest(-1101, "Parameter 'symbol' and 'symbols' are mutually exclusive.")
	case one != "":
		m, err := e.marketParam(q)
		if err != nil {
			return nil, false, err
		}
		return []*market{m}, true, nil
	case many != "":
		var names []string
		if json.Unmarshal([]byte(many), &names) != nil || len(names) == 0 {
			return nil, false, badRequest(-1100, `Illegal characters found in parameter 'symbols'; legal range is '^\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\]$'.`)
		}
		ms = make([]*market, len(names))
		for i, n := range names {
			if ms[i] = e.markets[n]; ms[i] == nil {
				return nil, false, invalidSymbol()
			}
		}
		return ms, false, nil
	default:
		return e.symbols, false, nil
	}
}
