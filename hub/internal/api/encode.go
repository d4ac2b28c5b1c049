package api

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pifleet/pifleet/hub/internal/fleet"
	"github.com/pifleet/pifleet/internal/wire"
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
//
// Every Pi reports again each heartbeat (30 s), so a list asked for a
// heartbeat after the last would find nothing cached. While lists are
// being asked for, a background pass every warmEvery therefore encodes the
// reports that arrived since (at 10,000 Pis ~333 a second: a few ms of one
// CPU a second) and drops devices gone from the fleet; it stops warmFor
// after the last list.
type deviceEncoder struct {
	mu      sync.Mutex
	cache   map[string]cachedStatus
	asked   time.Time // the last list request
	warming bool      // the background pass runs
	// warmFor, when set, replaces the constant (tests).
	warmFor time.Duration
}

type cachedStatus struct {
	st   *wire.Status
	json []byte // the status fields of Device, from "hostname" (or "addresses") to "problems", without braces
}

// maxCached bounds the cache; past it, it starts afresh.
const maxCached = 100_000

// The background pass (see deviceEncoder).
const (
	warmEvery = 5 * time.Second
	warmFor   = 10 * time.Minute
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
// the one cached, else encoded afresh, with many to encode (the first list
// after the hub started) on up to maxWorkers CPUs at once.
func (e *deviceEncoder) statusParts(devs []fleet.Device, maxWorkers int) [][]byte {
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
	workers := min(maxWorkers, (len(miss)+parallelMin-1)/parallelMin)
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

// listed notes a list request at now and starts the background pass over
// f unless it runs; every is its period (0: warmEvery, negative: none).
func (e *deviceEncoder) listed(f *fleet.Fleet, now time.Time, every time.Duration) {
	if every < 0 {
		return
	}
	if every == 0 {
		every = warmEvery
	}
	e.mu.Lock()
	e.asked = now
	start := !e.warming
	e.warming = true
	e.mu.Unlock()
	if start {
		go e.warm(f, every)
	}
}

// warm is the background pass: every period, while lists were asked for
// within warmFor, it encodes what was reported since the last pass (on
// one CPU: it is not in a hurry) and forgets devices gone from the fleet.
func (e *deviceEncoder) warm(f *fleet.Fleet, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for now := range t.C {
		e.mu.Lock()
		stopAfter := warmFor
		if e.warmFor > 0 {
			stopAfter = e.warmFor
		}
		if now.Sub(e.asked) > stopAfter {
			e.warming = false
			e.mu.Unlock()
			return
		}
		e.mu.Unlock()
		all := f.List()
		e.statusParts(all, 1)
		e.prune(all)
	}
}

// prune drops cached devices that are not in all (the whole fleet, sorted
// by id).
func (e *deviceEncoder) prune(all []fleet.Device) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id := range e.cache {
		if _, found := slices.BinarySearchFunc(all, id, func(d fleet.Device, id string) int { return strings.Compare(d.ID, id) }); !found {
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
