package e2e

import (
	"fmt"
	"sort"
	"testing"
	"time"
)

// BenchmarkNetnsAddrToHub measures how long an address change inside the
// namespace takes to show in the hub's /api/devices (netlink event →
// debounce → snapshot → MQTT publish → hub → HTTP). Each iteration
// renumbers v0 (delete the old address, add a new one: one DHCP-like
// burst) after a quiet second, and polls the hub every 2 ms. Reported:
// p50, p99 and max in ms. Run with -benchtime=Nx.
func BenchmarkNetnsAddrToHub(b *testing.B) {
	const id = "pi-bench"
	w := newWorld(b, id)
	w.wait(id, 20*time.Second, func(d device) string {
		if !d.Online {
			return "agent not online yet"
		}
		return ""
	})
	prev := ""
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		time.Sleep(time.Second) // a quiet network, then one change
		b.StartTimer()
		addr := fmt.Sprintf("192.0.2.%d", 10+i%200)
		start := time.Now()
		if prev != "" {
			w.ns.IP("addr", "del", prev+"/24", "dev", "v0")
		}
		w.ns.IP("addr", "add", addr+"/24", "dev", "v0")
		for {
			d, err := w.device(id)
			if err == nil && findAddr(d, addr) != nil {
				break
			}
			if time.Since(start) > 10*time.Second {
				b.Fatalf("%s not on the hub after 10s", addr)
			}
			time.Sleep(2 * time.Millisecond)
		}
		lat = append(lat, time.Since(start))
		prev = addr
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 {
		i := int(p * float64(len(lat)-1))
		return float64(lat[i].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(1), "max-ms")
	b.ReportMetric(0, "ns/op")
}
