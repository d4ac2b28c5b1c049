package daemon

import (
	"testing"

	"github.com/pifleet/pifleet/agent/wire"
)

func f(v float64) *float64 { return &v }
func b(v bool) *bool        { return &v }

func TestSignificant(t *testing.T) {
	base := wire.Status{
		Addresses: []wire.Address{{Address: "192.0.2.1", Prefix: 24, Interface: "eth0"}},
		Health:    wire.Health{TempC: f(50), Load1: f(0.1), RootReadOnly: b(false)},
	}
	for _, tc := range []struct {
		name   string
		change func(*wire.Status)
		want   bool
	}{
		{"nothing", func(*wire.Status) {}, false},
		{"load moves", func(s *wire.Status) { s.Health.Load1 = f(0.9) }, false},
		{"temp +1.9", func(s *wire.Status) { s.Health.TempC = f(51.9) }, false},
		{"temp +2", func(s *wire.Status) { s.Health.TempC = f(52) }, true},
		{"temp -2.5", func(s *wire.Status) { s.Health.TempC = f(47.5) }, true},
		{"temp gone", func(s *wire.Status) { s.Health.TempC = nil }, true},
		{"address replaced", func(s *wire.Status) { s.Addresses[0].Address = "198.51.100.1" }, true},
		{"address added", func(s *wire.Status) {
			s.Addresses = append(s.Addresses, wire.Address{Address: "2001:db8::1", Prefix: 64, Interface: "eth0"})
		}, true},
		{"root read-only", func(s *wire.Status) { s.Health.RootReadOnly = b(true) }, true},
		{"problem appears", func(s *wire.Status) { s.Health.Problems = []wire.Problem{wire.ProblemUnderVoltage} }, true},
		{"throttle flips", func(s *wire.Status) { s.Health.Throttle = &wire.Throttle{Raw: 0x50000} }, true},
	} {
		next := base
		next.Addresses = append([]wire.Address(nil), base.Addresses...)
		next.Health = base.Health
		tc.change(&next)
		if got := Significant(base, next); got != tc.want {
			t.Errorf("%s: Significant = %v, want %v", tc.name, got, tc.want)
		}
	}
}
