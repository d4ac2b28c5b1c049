package chat

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pifleet/pifleet/hub/internal/fleet"
	"github.com/pifleet/pifleet/internal/wire"
)

// ButtonRows is how many Pis of a fleet answer get their own Where and
// Health buttons (in Slack two blocks each, so that a list stays within a
// message's 50 blocks). In a fleet of at most ButtonRows every Pi has
// them; in a longer list only the first ButtonRows Pis needing attention
// do, and the healthy ones are lines together.
const ButtonRows = 8

func (e *Engine) fleetCmd(args []string) Reply {
	filter := strings.Join(args, " ")
	devs, err := e.fleet.Filter(filter)
	if err != nil {
		return problem(sentence(err.Error()))
	}
	if len(devs) == 0 {
		return emptyFleet(filter)
	}
	sortForPeople(devs)
	online, bad := 0, 0
	for i := range devs {
		if devs[i].Online() {
			online++
			if len(devs[i].Problems()) > 0 {
				bad++
			}
		}
	}
	// The header is the summary at a glance, and the CLI's first line
	// after "Fleet: ": "2/3 online · 1 🟠" (the orange dot of the lines
	// below: online with problems).
	title := fmt.Sprintf("%s/%s online", fleet.Thousands(online), fleet.Thousands(len(devs)))
	if bad > 0 {
		title += fmt.Sprintf(" · %s 🟠", fleet.Thousands(bad))
	}
	if filter != "" {
		title = filter + " · " + title
	}
	if len(devs) > LargeFleet {
		return e.largeFleet(devs, title)
	}
	var b strings.Builder
	fmt.Fprintln(&b, "Fleet: "+title)
	var secs []Section
	var rest []string
	for i := range devs {
		fmt.Fprintln(&b, "  "+e.DeviceLine(&devs[i]))
		if i < ButtonRows && (len(devs) <= ButtonRows || needsAttention(&devs[i])) {
			secs = append(secs, Section{Text: e.deviceMarked(&devs[i]), Actions: DeviceActions(devs[i].ID)})
		} else {
			rest = append(rest, e.deviceMarked(&devs[i]))
		}
	}
	if len(rest) > 0 {
		secs = append(secs, Section{Text: strings.Join(rest, "\n")})
	}
	return Reply{Text: b.String(), Title: title, Sections: secs}
}

// emptyFleet answers a fleet (or a filter) with no device, once.
func emptyFleet(filter string) Reply {
	if filter == "" {
		const hint = "A Pi shows up here once its agent connects to this hub."
		return Reply{Text: "No devices yet. " + hint, Title: "No devices yet", Sections: []Section{{Text: hint}}}
	}
	title := "No device matches " + filter
	return Reply{Text: title + ".", Title: title, Sections: []Section{{Text: Code("fleet") + " alone lists every device."}}}
}

// sortForPeople puts the Pis needing attention first (lost, unhealthy,
// unknown, shut down), then the rest, each in natural id order (pi-9
// before pi-10).
func sortForPeople(devs []fleet.Device) {
	slices.SortStableFunc(devs, func(a, b fleet.Device) int {
		if c := cmp.Compare(peopleRank(&a), peopleRank(&b)); c != 0 {
			return c
		}
		return fleet.NaturalCompare(a.ID, b.ID)
	})
}

// peopleRank is attentionRank, with the healthy online Pis last.
func peopleRank(d *fleet.Device) int {
	if !needsAttention(d) {
		return 4
	}
	return attentionRank(d)
}

// mark is the coloured dot of a device: green, orange (online with
// problems), red (not online).
func mark(d *fleet.Device) string {
	switch {
	case !d.Online():
		return "🔴"
	case len(d.Problems()) > 0:
		return "🟠"
	}
	return "🟢"
}

// DeviceLine is the one-line summary of a device used in plain fleet
// lists (the CLI, fleet.txt).
func (e *Engine) DeviceLine(d *fleet.Device) string {
	parts := []string{fmt.Sprintf("%s %s", mark(d), d.ID)}
	state := string(d.State)
	if state == "" {
		state = "unknown"
	}
	parts = append(parts, state)
	if addrs := fleet.UsableAddresses(d.Status); len(addrs) > 0 {
		parts = append(parts, strings.Join(addrs, " "))
	} else {
		parts = append(parts, "no address")
	}
	if d.Status != nil && d.Status.Health.TempC != nil {
		parts = append(parts, fmt.Sprintf("%.1f °C", *d.Status.Health.TempC))
	}
	if ps := d.Problems(); len(ps) > 0 {
		parts = append(parts, "problems: "+problemText(ps))
	}
	parts = append(parts, "seen "+Ago(e.now(), d.LastSeen))
	return strings.Join(parts, " · ")
}

// deviceMarked is a device as a phone shows it: the dot, the id in bold
// and the primary IPv4 address as code on the first line; what is wrong,
// in words, on a second line only when something is.
func (e *Engine) deviceMarked(d *fleet.Device) string {
	line := mark(d) + " " + Bold(d.ID)
	if addr := primaryAddress(d.Status); addr != "" {
		line += " " + Code(addr)
	} else {
		line += " · no address"
	}
	switch {
	case !d.Online():
		return line + "\n" + stateShort(d) + " · seen " + e.seen(d.LastSeen)
	case len(d.Problems()) > 0:
		return line + "\n" + problemText(d.Problems())
	}
	if d.Status != nil && d.Status.Health.TempC != nil {
		line += fmt.Sprintf(" · %.1f °C", *d.Status.Health.TempC)
	}
	return line
}

// primaryAddress is the address to reach a device at: the first usable
// IPv4 address (the primary one first), else the first usable address.
func primaryAddress(st *wire.Status) string {
	addrs := fleet.UsableAddresses(st)
	for _, a := range addrs {
		if !strings.Contains(a, ":") {
			return a
		}
	}
	if len(addrs) > 0 {
		return addrs[0]
	}
	return ""
}

// stateShort is a device that is not online, in a word or two.
func stateShort(d *fleet.Device) string {
	switch d.State {
	case wire.StateLost:
		return "lost"
	case wire.StateOffline:
		return "shut down"
	}
	return "state unknown"
}

// seen is when a device was last heard of, as a time mark: Slack shows
// the date and time in the reader's zone, the CLI "12s ago".
func (e *Engine) seen(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return At(t, Ago(e.now(), t))
}

func problemText(ps []wire.Problem) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = fleet.ProblemWords(p)
	}
	return strings.Join(s, ", ")
}

// Duration is d for a person: "45 s", "9 min", "3 h 5 min", "2 d 4 h".
func Duration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 24*time.Hour:
		h, m := int(d.Hours()), int(d.Minutes())%60
		if m == 0 || h >= 10 {
			return fmt.Sprintf("%d h", h)
		}
		return fmt.Sprintf("%d h %d min", h, m)
	}
	days, h := int(d.Hours())/24, int(d.Hours())%24
	if h == 0 || days >= 10 {
		return fmt.Sprintf("%d d", days)
	}
	return fmt.Sprintf("%d d %d h", days, h)
}

// Ago renders how long ago t was, coarsely.
func Ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 2*time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func (e *Engine) where(args []string) Reply {
	d, bad := e.oneID("where", args)
	if bad != nil {
		return *bad
	}
	title := fmt.Sprintf("%s is %s", d.ID, stateWord(&d))
	var b strings.Builder
	fmt.Fprintln(&b, title)
	var fields []Field
	var aside []string // what is not a way to reach it
	if d.Status == nil {
		fmt.Fprintln(&b, "  no status report yet")
	} else {
		byIf := map[string][]wire.Address{}
		for _, a := range d.Status.Addresses {
			byIf[a.Interface] = append(byIf[a.Interface], a)
		}
		// Lead with where to reach it; down interfaces, container bridges
		// and link-local addresses go into the context line.
		if addrs := fleet.UsableAddresses(d.Status); len(addrs) > 0 {
			line := "Reach it at " + addrs[0]
			for _, ifc := range d.Status.Interfaces {
				for _, a := range byIf[ifc.Name] {
					if a.Address == addrs[0] {
						line += " on " + ifc.Name
						if ifc.DefaultRoute {
							line += " (default route)"
						}
					}
				}
			}
			fmt.Fprintln(&b, "  "+line)
			fields = append(fields, Field{Label: "Reach it at", Value: Code(addrs[0]) + strings.TrimPrefix(line, "Reach it at "+addrs[0])})
		}
		for _, ifc := range d.Status.Interfaces {
			if ifc.Loopback {
				continue
			}
			var main []string
			for _, a := range byIf[ifc.Name] {
				switch {
				case !ifc.Up || fleet.SideInterface(ifc.Name):
					aside = append(aside, ifc.Name+" "+addrText(a))
				case a.LinkLocal:
					aside = append(aside, ifc.Name+" "+a.Address+" (link-local)")
				default:
					main = append(main, addrText(a))
				}
			}
			switch {
			case !ifc.Up:
				if len(byIf[ifc.Name]) == 0 {
					aside = append(aside, ifc.Name+" down")
				}
				continue
			case fleet.SideInterface(ifc.Name) || len(main) == 0:
				continue
			}
			label := ifc.Name
			if ifc.DefaultRoute {
				label += " (default route)"
			}
			if ifc.SSID != "" {
				label += " wifi " + ifc.SSID
			}
			val := strings.Join(main, "\n")
			fmt.Fprintf(&b, "  %s: %s\n", label, strings.ReplaceAll(val, "\n", ", "))
			fields = append(fields, Field{Label: label, Value: val})
		}
		if len(d.Status.Interfaces) == 0 {
			for _, a := range d.Status.Addresses {
				fmt.Fprintf(&b, "  %s: %s\n", a.Interface, addrText(a))
				fields = append(fields, Field{Label: a.Interface, Value: addrText(a)})
			}
		}
	}
	ctx := "last seen " + e.seen(d.LastSeen)
	if len(aside) > 0 {
		ctx += " · also " + strings.Join(aside, " · ")
	}
	fmt.Fprintln(&b, "  "+Plain(ctx))
	return Reply{Text: b.String(), Title: title, Sections: []Section{{Fields: fields}}, Context: ctx}
}

func addrText(a wire.Address) string {
	s := fmt.Sprintf("%s/%d", a.Address, a.Prefix)
	switch {
	case a.Loopback:
		s += " (loopback)"
	case a.LinkLocal:
		s += " (link-local)"
	case a.Primary:
		s += " (primary)"
	}
	return s
}

func stateWord(d *fleet.Device) string {
	switch d.State {
	case wire.StateOnline:
		return "online"
	case wire.StateOffline:
		return "offline (shut down cleanly)"
	case wire.StateLost:
		return "offline (connection lost)"
	}
	return "in an unknown state"
}

func (e *Engine) health(args []string) Reply {
	d, bad := e.oneID("health", args)
	if bad != nil {
		return *bad
	}
	title := fmt.Sprintf("Health of %s (%s)", d.ID, stateWord(&d))
	if d.Status == nil {
		return Reply{Text: title + "\n  no status report yet", Title: title}
	}
	fields := HealthFields(d.Status)
	var b strings.Builder
	fmt.Fprintln(&b, title)
	for _, f := range fields {
		fmt.Fprintf(&b, "  %-22s %s\n", f.Label+":", f.Value)
	}
	secs := []Section{{Fields: fields}}
	if ps := d.Problems(); len(ps) > 0 {
		p := "⚠️ Problems: " + problemText(ps)
		fmt.Fprintln(&b, "  "+p)
		secs = append([]Section{{Text: p}}, secs...)
	}
	ctx := "last seen " + e.seen(d.LastSeen)
	fmt.Fprintln(&b, "  "+Plain(ctx))
	return Reply{Text: b.String(), Title: title, Sections: secs, Context: ctx}
}

// HealthFields renders every known health fact of a status.
func HealthFields(st *wire.Status) []Field {
	h := st.Health
	var f []Field
	add := func(label, value string) { f = append(f, Field{Label: label, Value: value}) }
	if h.Model != "" {
		add("Model", strings.TrimSpace(h.Model+" "+h.Revision))
	}
	add("Agent", st.AgentVersion)
	if h.TempC != nil {
		add("SoC temperature", fmt.Sprintf("%.1f °C", *h.TempC))
	}
	if h.CPUFreqMHz != nil {
		add("CPU frequency", fmt.Sprintf("%.0f MHz", *h.CPUFreqMHz))
	}
	if t := h.Throttle; t != nil {
		add("Throttling now", flagList(t.UnderVoltage, t.FreqCapped, t.Throttled, t.SoftTempLimit))
		add("Since boot", flagList(t.UnderVoltageOccurred, t.FreqCappedOccurred, t.ThrottledOccurred, t.SoftTempLimitOccurred))
	}
	if h.Load1 != nil && h.Load5 != nil && h.Load15 != nil {
		add("Load", fmt.Sprintf("%.2f %.2f %.2f", *h.Load1, *h.Load5, *h.Load15))
	}
	if h.MemTotalB != nil && h.MemAvailB != nil {
		add("Memory available", fmt.Sprintf("%s of %s", bytesText(*h.MemAvailB), bytesText(*h.MemTotalB)))
	}
	for _, d := range h.Disks {
		v := fmt.Sprintf("%.0f%% used, %s free", d.UsedPercent, bytesText(d.FreeB))
		if d.ReadOnly {
			v += ", READ-ONLY"
		}
		add("Disk "+d.Path, v)
	}
	if h.RootReadOnly != nil {
		add("Root filesystem", map[bool]string{true: "read-only ⚠️", false: "read-write"}[*h.RootReadOnly])
	}
	if h.ClockSynced != nil {
		add("Clock", map[bool]string{true: "synchronised", false: "NOT synchronised ⚠️"}[*h.ClockSynced])
	}
	if h.UptimeS != nil {
		add("Uptime", Duration(time.Duration(*h.UptimeS)*time.Second))
	}
	if h.Docker != "" {
		add("Docker", h.Docker)
	}
	if c := h.Console; c != nil {
		v := "getty " + map[bool]string{true: "active", false: "NOT active"}[c.GettyActive]
		if c.TTY != "" {
			v = c.TTY + ", " + v
		}
		if c.InUse {
			v += ", in use"
		}
		add("Console", v)
	}
	var absent, failed []string
	for name, s := range h.Probes {
		switch s {
		case wire.ProbeAbsent:
			absent = append(absent, name)
		case wire.ProbeFailed:
			failed = append(failed, name)
		}
	}
	sort.Strings(absent)
	sort.Strings(failed)
	if len(absent) > 0 {
		add("Not present", strings.Join(absent, ", "))
	}
	if len(failed) > 0 {
		add("Probes failing", strings.Join(failed, ", "))
	}
	return f
}

func flagList(uv, capped, thr, soft bool) string {
	var s []string
	if uv {
		s = append(s, "under-voltage")
	}
	if capped {
		s = append(s, "frequency capped")
	}
	if thr {
		s = append(s, "throttled")
	}
	if soft {
		s = append(s, "soft temperature limit")
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func bytesText(b uint64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}

func (e *Engine) history(args []string) Reply {
	d, bad := e.oneID("history", args)
	if bad != nil {
		return *bad
	}
	title := fmt.Sprintf("Recent changes of %s", d.ID)
	var b strings.Builder
	fmt.Fprintln(&b, title)
	if len(d.History) == 0 {
		fmt.Fprintln(&b, "  nothing recorded since this hub started")
	}
	var lines []string
	for i := len(d.History) - 1; i >= 0; i-- {
		c := d.History[i]
		at := c.Time.UTC().Format("2006-01-02 15:04:05Z")
		fmt.Fprintf(&b, "  %s  %s\n", at, changeText(c.Kind, c.Detail))
		// In Slack the time is a date token in the reader's zone.
		lines = append(lines, AtSeconds(c.Time, at)+" · "+changeText(c.Kind, c.Detail))
	}
	text := strings.Join(lines, "\n")
	if text == "" {
		text = "nothing recorded since this hub started"
	}
	return Reply{Text: b.String(), Title: title, Sections: []Section{{Text: text}}}
}

// changeText is one history entry in words: lifecycle changes as what
// happened, without the session epoch the fleet records with them.
func changeText(kind, detail string) string {
	switch kind {
	case string(wire.StateOnline):
		if strings.Contains(detail, "birth was not seen") {
			return "online (known from its status; its hello was not seen)"
		}
		return "online"
	case string(wire.StateLost):
		return "lost its connection"
	case string(wire.StateOffline):
		return "shut down cleanly"
	case "problem":
		return "health problem: " + fleet.ProblemsInWords(detail)
	case "recovered":
		return "recovered: " + fleet.ProblemsInWords(detail)
	}
	if detail == "" {
		return kind
	}
	return kind + ": " + detail
}
