package report

import (
	"testing"
	"time"
)

func TestDebouncer(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	type op struct {
		event bool // else: Fire
		at    int  // ms
		want  int  // deadline ms after Event, or 1/0 for Fire
	}
	for _, tc := range []struct {
		name string
		ops  []op
	}{
		{"single event fires after quiet", []op{
			{true, 0, 150}, {false, 149, 0}, {false, 150, 1}, {false, 151, 0},
		}},
		{"DHCP burst becomes one", []op{
			{true, 0, 150}, {true, 3, 153}, {true, 5, 155}, {true, 40, 190},
			{false, 160, 0}, {false, 190, 1}, {false, 400, 0},
		}},
		{"endless flapping is capped", []op{
			{true, 0, 150}, {true, 100, 250}, {true, 200, 350}, {true, 300, 450}, {true, 400, 550},
			{true, 500, 650}, {true, 600, 750}, {true, 700, 850}, {true, 800, 950}, {true, 900, 1000},
			{false, 999, 0}, {false, 1000, 1},
			{true, 1050, 1200}, {false, 1200, 1},
		}},
		{"nothing armed never fires", []op{{false, 0, 0}, {false, 5000, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Debouncer{Quiet: 150 * time.Millisecond, Max: time.Second}
			for i, o := range tc.ops {
				if o.event {
					if got := d.Event(ms(o.at)); !got.Equal(ms(o.want)) {
						t.Fatalf("op %d: Event at %dms: deadline got %v, want %dms", i, o.at, got.Sub(t0), o.want)
					}
					continue
				}
				got := d.Fire(ms(o.at))
				if got != (o.want == 1) {
					t.Fatalf("op %d: Fire at %dms = %v, want %v", i, o.at, got, o.want == 1)
				}
			}
		})
	}
}

func TestDebouncerDefaults(t *testing.T) {
	var d Debouncer
	t0 := time.Unix(0, 0)
	if got := d.Event(t0).Sub(t0); got != 150*time.Millisecond {
		t.Errorf("default quiet: got %v, want 150ms", got)
	}
	if d.Deadline().IsZero() || !d.Armed() {
		t.Error("armed debouncer without a deadline")
	}
}
