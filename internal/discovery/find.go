package discovery

import (
	"context"
	"errors"
	"time"

	"github.com/miekg/dns"
)

// queryGaps is when Find asks again: at once, then after 1, 2, 4… seconds
// (RFC 6762 §5.2), in case the first question or answer was lost.
var queryGaps = []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}

// browsePorts are tried in turn: port 5353 gets the multicast answers every
// browser on the link sees; when it cannot be shared, a one-shot port gets
// answers sent straight back (RFC 6762 §6.7).
var browsePorts = []int{mdnsPort, 0}

// Find browses for _pifleet._tcp on every multicast-capable interface that
// is up and collects the hubs that answer until timeout. Only complete,
// well-formed answers count. It returns an error only when it cannot open
// a socket or ctx ends first; no hub is an empty list.
func Find(ctx context.Context, timeout time.Duration) ([]Hub, error) {
	return browse(ctx, timeout, newBrowseCache(), func([]Hub) bool { return false }, 0)
}

// FindPin is Find for the hubs whose CAPin matches pin (the hex SHA-256 of
// the fleet CA, as in an enrolment token): others are dropped as they
// answer, so they never fill the list. Once one has answered it listens
// matchGrace longer, then returns the matching hubs in the order they
// answered: the pin prefix is public, so the first may be a fake that
// fails the enrolment's pin check and the caller tries the next. After
// timeout it returns what matched, which may be nothing.
func FindPin(ctx context.Context, timeout time.Duration, pin string) ([]Hub, error) {
	prefix, err := pinPrefix(pin)
	if err != nil {
		return nil, err
	}
	c := newBrowseCache()
	c.pin = prefix
	return browse(ctx, timeout, c, func(hubs []Hub) bool { return len(hubs) > 0 }, matchGrace)
}

// matchGrace is how long FindPin listens on after the first match: every
// responder on the link answers the same question at once, so the real
// hub's answer comes within it even when a fake's came first.
var matchGrace = 2 * time.Second

// browse asks until timeout, or until grace after enough says the hubs
// in cache are enough.
func browse(ctx context.Context, timeout time.Duration, cache *browseCache, enough func([]Hub) bool, grace time.Duration) ([]Hub, error) {
	var m *mconn
	var err error
	for _, p := range browsePorts {
		if m, err = listen(nil, p); err == nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	defer m.close()
	if _, err := m.refresh(); err != nil {
		return nil, err
	}
	if len(m.indexes()) == 0 {
		return nil, errors.New("mdns: no multicast-capable network interface with an address is up")
	}
	q := new(dns.Msg)
	q.SetQuestion(serviceName, dns.TypePTR)
	q.Id, q.RecursionDesired = 0, false
	query, err := q.Pack()
	if err != nil {
		return nil, err
	}
	end := time.Now().Add(timeout)
	deadline := time.NewTimer(timeout)
	graceStarted := false
	defer deadline.Stop()
	ask := time.NewTimer(0)
	defer ask.Stop()
	for next := 0; ; {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return cache.hubs(), nil
		case <-ask.C:
			for _, idx := range m.indexes() {
				m.multicast(query, idx)
			}
			if next++; next < len(queryGaps) {
				ask.Reset(queryGaps[next])
			}
		case p := <-m.in:
			cache.add(p.data, p.src.Addr(), zoneOf(m, p))
			if graceStarted {
				continue
			}
			if hubs := cache.hubs(); enough(hubs) {
				if grace <= 0 {
					return hubs, nil
				}
				graceStarted = true
				if deadline.Stop() {
					deadline.Reset(min(grace, time.Until(end)))
				}
			}
		}
	}
}

// zoneOf names the interface a packet came in on: the zone of the
// link-local addresses it carries.
func zoneOf(m *mconn, p packet) string {
	l, _ := m.link(p.ifIndex)
	return l.ifi.Name
}
