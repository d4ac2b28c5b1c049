package chat

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestStatusLine(t *testing.T) {
	ok := func(dev string, d time.Duration) PiStatus { return PiStatus{Device: dev, State: PiOK, Took: d} }
	run := func(dev string) PiStatus { return PiStatus{Device: dev, State: PiRunning} }
	many := func(nOK, nFailed, nRunning int) Status {
		var s Status
		for i := 0; i < nOK; i++ {
			s.Pis = append(s.Pis, ok(fmt.Sprintf("pi-ok-%02d", i), time.Second))
		}
		for i := 0; i < nFailed; i++ {
			s.Pis = append(s.Pis, PiStatus{Device: fmt.Sprintf("pi-bad-%02d", i), State: PiFailed, Took: time.Second})
		}
		for i := 0; i < nRunning; i++ {
			s.Pis = append(s.Pis, run(fmt.Sprintf("pi-slow-%02d", i)))
		}
		return s
	}
	for _, c := range []struct {
		name string
		s    Status
		want string
	}{
		{"nothing", Status{}, ""},
		{"issue example", Status{Pis: []PiStatus{run("pi-garage"), ok("pi-kitchen", 2700*time.Millisecond)}},
			"pi-garage ⏳ running · pi-kitchen ✅ 2.7 s"},
		{"every state", Status{Pis: []PiStatus{
			{Device: "a", State: PiFailed, Took: 12400 * time.Millisecond},
			{Device: "b", State: PiTimedOut, Took: time.Minute},
			ok("c", 90*time.Second), ok("d", 0), {Device: "e", State: "odd", Took: time.Second}}},
			"a ❌ 12 s · b ⏰ timed out · c ✅ 1 min 30 s · d ✅ · e ❔ 1.0 s"},
		{"six by name", many(3, 1, 2),
			"pi-bad-00 ❌ 1.0 s · pi-ok-00 ✅ 1.0 s · pi-ok-01 ✅ 1.0 s · pi-ok-02 ✅ 1.0 s · pi-slow-00 ⏳ running · pi-slow-01 ⏳ running"},
		{"counted", many(12, 1, 3), "12 ✅ · 1 ❌ · 3 ⏳ running: pi-slow-00, pi-slow-01, pi-slow-02"},
		{"slow ones bounded", many(9000, 0, 1000),
			"9000 ✅ · 1000 ⏳ running: pi-slow-00, pi-slow-01, pi-slow-02, pi-slow-03, pi-slow-04 +995 more"},
		{"all done", many(20, 0, 0), "20 ✅"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.s.Line(); got != c.want {
				t.Errorf("got  %q\nwant %q", got, c.want)
			}
		})
	}
}

func TestStatusLineIsBounded(t *testing.T) {
	long := strings.Repeat("x", 64)
	var s Status
	for i := 0; i < 10000; i++ {
		s.Pis = append(s.Pis, PiStatus{Device: fmt.Sprintf("%s%05d", long, i), State: PiRunning})
	}
	if n := utf8.RuneCountInString(s.Line()); n > 400 {
		t.Errorf("line of %d characters for 10,000 Pis with 69-character ids, want at most 400: %q", n, s.Line())
	}
	few := Status{Pis: []PiStatus{{Device: long + long, State: PiOK, Took: time.Second}}}
	if got := few.Line(); utf8.RuneCountInString(got) > 80 {
		t.Errorf("one Pi with a 128-character id: %q, want its id cut", got)
	}
}
