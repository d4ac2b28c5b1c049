package natsfeed

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkSnapshot measures how long a new feed takes to deliver a
// snapshot of every Pi's state and status (records = 2 × Pis).
func BenchmarkSnapshot(b *testing.B) {
	for _, records := range []int{2_000, 10_000} {
		b.Run(fmt.Sprintf("records=%d", records), func(b *testing.B) {
			n := newNode(b, "n1", b.TempDir(), 0, nil)
			start := time.Now()
			retain(b, n.pi("pub"), fleetMsgs(records/2)...)
			waitStored(b, n.natsURL(), uint64(records))
			b.Logf("published %d retained records over MQTT in %v", records, time.Since(start))
			b.ResetTimer()
			for b.Loop() {
				snapshotOnce(b, n.natsURL(), records)
			}
		})
	}
}

func snapshotOnce(b *testing.B, url string, want int) {
	got := 0
	f, err := New(Options{URL: url})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Run(ctx, func(string, []byte, bool) {
			if got++; got == want {
				cancel()
			}
		})
	}()
	<-done
	if st := f.Stats(); st.SnapshotMsgs != int64(want) {
		b.Fatalf("got %d records in the snapshot, want %d", st.SnapshotMsgs, want)
	}
}
