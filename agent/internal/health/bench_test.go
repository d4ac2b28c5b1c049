package health

import (
	"context"
	"testing"
)

// BenchmarkCollect runs every probe against the Pi 3 fixtures (vcgencmd
// and the Docker ping are served from their SlowEvery cache, as they are
// between slow samples on a Pi).
func BenchmarkCollect(b *testing.B) {
	c := New(opts(b, mkroot(b, pi3()), "cmd/vcgencmd_get_throttled.0x0"))
	ctx := context.Background()
	c.Collect(ctx)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.Collect(ctx)
	}
}

// BenchmarkCollectThisMachine runs the probes against the real system
// (real statfs, adjtimex and Docker socket).
func BenchmarkCollectThisMachine(b *testing.B) {
	c := New(Options{})
	ctx := context.Background()
	c.Collect(ctx)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.Collect(ctx)
	}
}
