package console

import (
	"net/netip"
	"regexp"
	"strings"
)

// Markers of the banner pifleet-agent writes (agent/internal/console,
// RenderBanner). The wire between the two is a serial line, so the format
// is text a person can read too.
const (
	bannerBegin = "=== pifleet "
	bannerEnd   = "=== end pifleet ==="
)

// Address is one address of the Pi.
type Address struct {
	Addr      netip.Addr
	Prefix    int    // 0 when unknown (hostname -I)
	Interface string // "" when unknown
}

// Banner is a parsed pifleet banner.
type Banner struct {
	Hostname     string
	Addresses    []Address
	HubConnected bool
	Health       []string // problem codes; empty when "ok"
}

var ansiRe = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78]`)

// cleanText removes terminal escapes, carriage returns and other control
// bytes (but newlines and tabs) from what came over the line.
func cleanText(s string) string {
	s = ansiRe.ReplaceAllString(s, "")
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || r >= ' ' && r != 0x7f {
			return r
		}
		return -1
	}, s)
}

// ParseBanner returns the last complete pifleet banner in text.
func ParseBanner(text string) (Banner, bool) {
	lines := strings.Split(cleanText(text), "\n")
	end := -1
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.TrimSpace(lines[i]) == bannerEnd {
			end = i
			break
		}
	}
	if end < 0 {
		return Banner{}, false
	}
	for begin := end - 1; begin >= 0; begin-- {
		l := strings.TrimSpace(lines[begin])
		if strings.HasPrefix(l, bannerBegin) && strings.HasSuffix(l, " ===") {
			b := Banner{Hostname: strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(l, bannerBegin), "===")),
				Health: []string{}}
			for _, body := range lines[begin+1 : end] {
				b.parseLine(strings.Fields(body))
			}
			return b, true
		}
	}
	return Banner{}, false
}

func (b *Banner) parseLine(f []string) {
	if len(f) == 0 {
		return
	}
	switch f[0] {
	case "ip":
		if len(f) < 3 {
			return
		}
		for _, s := range f[2:] {
			if p, err := netip.ParsePrefix(s); err == nil {
				b.Addresses = append(b.Addresses, Address{Addr: p.Addr(), Prefix: p.Bits(), Interface: f[1]})
			}
		}
	case "hub":
		b.HubConnected = len(f) == 2 && f[1] == "connected"
	case "health":
		if len(f) > 1 && f[1] != "ok" {
			b.Health = append(b.Health, f[1:]...)
		}
	}
}
