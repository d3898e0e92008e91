package ticks

import "github.com/shopspring/decimal"

func exchangeDecimal(s string) (float64, error) {
	d, err := decimal.NewFromString(s)
	if err != nil {
		return 0, err
	}
	f, _ := d.Float64()
	return f, nil
}
