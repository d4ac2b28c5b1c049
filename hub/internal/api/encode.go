package api

import (
	"bytes"
	"encoding/json"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/pifleet/pifleet/agent/wire"
	"github.com/pifleet/pifleet/hub/internal/fleet"
)

// deviceEncoder writes a device's JSON exactly as json.Marshal(FromFleet(d))
// does, fast enough for 10,000 devices in one answer.
//
// Most of a device's JSON (addresses, interfaces, health) comes from its
// last status report, which changes only when the Pi reports, while a list
// is asked for far more often. So that part is encoded once per report and
// kept, per device id, with the *wire.Status it came from: the fleet never
// changes a status in place (it replaces the pointer; every reader relies
// on that, as readers hold no lock), so an equal pointer means equal JSON.
// The few fields around it (id, state, epoch, times) are written directly.
// Whatever does not fit this fast path is encoded by encoding/json.
type deviceEncoder struct {
	mu     sync.Mutex
	cache  map[string]cachedStatus
	pruned time.Time // when devices gone from the fleet were last dropped
}

type cachedStatus struct {
	st   *wire.Status
	json []byte // the status fields of Device, from "hostname" (or "addresses") to "problems", without braces
}

// maxCached bounds the cache; past it, it starts afresh. Devices gone from
// the fleet are dropped at most every pruneEvery, when the list is asked
// for.
const (
	maxCached  = 100_000
	pruneEvery = time.Minute
)

// Encoded JSON of the device-level fields of a Device with only a Status:
// what brackets the status part (see statusPart).
var (
	zeroHead = []byte(`{"id":"","online":false,"state":"unknown","epoch":0,`)
	zeroTail = []byte(`,"last_seen":null}`)
	// noStatus is the status part of a device that never reported.
	noStatus = []byte(`"addresses":[],"interfaces":[],"health":null,"problems":[]`)
)

// statusPart returns the status fields of d's JSON, or nil when they
// cannot be cut out of the generic encoding (then the caller encodes the
// whole device generically).
func statusPart(st *wire.Status) []byte {
	if st == nil {
		return noStatus
	}
	b, err := json.Marshal(FromFleet(&fleet.Device{Status: st}))
	if err != nil || !bytes.HasPrefix(b, zeroHead) || !bytes.HasSuffix(b, zeroTail) {
		return nil
	}
	return b[len(zeroHead) : len(b)-len(zeroTail)]
}

// statusParts returns the status part of each of devs (nil where the
// generic encoding must do), from the cache where the device's status is
// the one cached, else encoded afresh: with many to encode (the first list
// after the hub started, or a list asked for a heartbeat or more after
// the last, when every Pi has reported again) on all CPUs at once.
func (e *deviceEncoder) statusParts(devs []fleet.Device) [][]byte {
	parts := make([][]byte, len(devs))
	var miss []int
	e.mu.Lock()
	for i := range devs {
		d := &devs[i]
		if d.Status == nil {
			parts[i] = noStatus
		} else if c, ok := e.cache[d.ID]; ok && c.st == d.Status {
			parts[i] = c.json
		} else {
			miss = append(miss, i)
		}
	}
	e.mu.Unlock()
	if len(miss) == 0 {
		return parts
	}
	workers := min(runtime.GOMAXPROCS(0), (len(miss)+parallelMin-1)/parallelMin)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := w; k < len(miss); k += workers {
				i := miss[k]
				parts[i] = statusPart(devs[i].Status)
			}
		}()
	}
	wg.Wait()
	e.mu.Lock()
	if e.cache == nil || len(e.cache)+len(miss) > maxCached {
		e.cache = make(map[string]cachedStatus, len(miss))
	}
	for _, i := range miss {
		if parts[i] != nil {
			e.cache[devs[i].ID] = cachedStatus{devs[i].Status, parts[i]}
		}
	}
	e.mu.Unlock()
	return parts
}

// parallelMin is how many statuses to encode make one more goroutine worth
// it.
const parallelMin = 256

// prune drops cached devices that are no longer in the fleet, at most
// every pruneEvery; ids lists the fleet's device ids, sorted.
func (e *deviceEncoder) prune(now time.Time, ids func() []string) {
	e.mu.Lock()
	due := len(e.cache) > 0 && now.Sub(e.pruned) >= pruneEvery
	if due {
		e.pruned = now
	}
	e.mu.Unlock()
	if !due {
		return
	}
	live := ids()
	e.mu.Lock()
	defer e.mu.Unlock()
	for id := range e.cache {
		if _, found := slices.BinarySearch(live, id); !found {
			delete(e.cache, id)
		}
	}
}

// appendDevice appends d's JSON (no newline) to b; part is its status part
// from statusParts.
func appendDevice(b []byte, d *fleet.Device, part []byte) []byte {
	if part != nil && jsonSafe(d.ID) && timeOK(d.LastSeen) && timeOK(d.Since) {
		state := string(d.State)
		if state == "" {
			state = "unknown"
		}
		if jsonSafe(state) {
			b = append(b, `{"id":"`...)
			b = append(b, d.ID...)
			b = append(b, `","online":`...)
			b = strconv.AppendBool(b, d.Online())
			b = append(b, `,"state":"`...)
			b = append(b, state...)
			b = append(b, `","epoch":`...)
			b = strconv.AppendUint(b, d.Epoch, 10)
			b = append(b, ',')
			b = append(b, part...)
			b = append(b, `,"last_seen":`...)
			b = appendTime(b, d.LastSeen)
			if !d.Since.IsZero() {
				b = append(b, `,"since":`...)
				b = appendTime(b, d.Since)
			}
			return append(b, '}')
		}
	}
	j, err := json.Marshal(FromFleet(d))
	if err != nil {
		j, _ = json.Marshal(Device{ID: d.ID, State: "unknown"}) // cannot happen for these types
	}
	return append(b, j...)
}

// appendTime appends t in UTC as encoding/json writes a time.Time, or null
// for the zero time.
func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b, _ = t.UTC().AppendText(b) // timeOK checked it
	return append(b, '"')
}

// timeOK reports whether t encodes without error (a year in 0..9999).
func timeOK(t time.Time) bool {
	y := t.UTC().Year()
	return t.IsZero() || (y >= 0 && y <= 9999)
}

// jsonSafe reports whether s needs no escaping in a JSON string, as
// encoding/json escapes (printable ASCII without " \ < > &).
func jsonSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
