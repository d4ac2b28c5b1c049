package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pifleet/pifleet/hub/internal/api"
	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/hub/internal/fleet"
	"github.com/pifleet/pifleet/internal/flagenv"
	"github.com/pifleet/pifleet/internal/wire"
)

func init() {
	register("devices", "list the fleet as a table (or --json)", runDevices)
}

func runDevices(ctx context.Context, env Env, args []string) error {
	fs := flagenv.NewFlagSet("pifleet devices", "usage: pifleet devices [flags] [DEVICE-ID]", "")
	var hub, filter string
	var asJSON bool
	addHubFlags(fs, &hub)
	fs.BoolVar(&asJSON, "json", false, "print the hub's JSON")
	fs.StringVar(&filter, "filter", "", "online, offline, problems or label:NAME")
	if err := flagenv.Parse(fs, args, env); err != nil {
		return usageErr(err)
	}
	if fs.NArg() > 1 {
		fmt.Fprintf(env.Stderr, "pifleet devices: one device id at most, and flags before it (got %q)\n", fs.Args())
		return ErrUsage
	}
	if fs.NArg() == 1 {
		if problem := wire.IDProblem(fs.Arg(0)); problem != "" {
			return fmt.Errorf("%q is not a valid device id: %s", fs.Arg(0), problem)
		}
	}
	c, err := newHubClient(env, fs, hub)
	if err != nil {
		return err
	}
	if fs.NArg() == 1 {
		var d api.Device
		if err := c.do(ctx, "GET", "/api/devices/"+url.PathEscape(fs.Arg(0)), nil, &d); err != nil {
			return err
		}
		return printDevices(env, []api.Device{d}, asJSON)
	}
	devs, err := listDevices(ctx, c, filter)
	if err != nil {
		return err
	}
	return printDevices(env, devs, asJSON)
}

// devicesPage is how many devices `pifleet devices` asks the hub for at a
// time, so a large fleet comes in pages rather than as one huge answer.
var devicesPage = 1000

// listDevices fetches every device the filter matches, page by page
// (GET /api/devices?limit=&after=, following X-Next-After). A hub from
// before paging ignores limit and sends the whole list without a cursor,
// which ends the walk just as well.
func listDevices(ctx context.Context, c *hubClient, filter string) ([]api.Device, error) {
	devs := []api.Device{}
	after := ""
	for {
		q := url.Values{"limit": {strconv.Itoa(devicesPage)}}
		if filter != "" {
			q.Set("filter", filter)
		}
		if after != "" {
			q.Set("after", after)
		}
		var page []api.Device
		h, err := c.send(ctx, "GET", "/api/devices?"+q.Encode(), nil, &page)
		if err != nil {
			return nil, err
		}
		devs = append(devs, page...)
		next := h.Get("X-Next-After")
		if next == "" {
			return devs, nil
		}
		if next <= after || len(page) == 0 {
			return nil, fmt.Errorf("the hub's pages do not advance (next page after %q, then %q)", after, next)
		}
		after = next
	}
}

func printDevices(env Env, devs []api.Device, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(devs)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tONLINE\tADDRESSES\tTEMP\tPROBLEMS\tLAST SEEN")
	now := time.Now()
	for _, d := range devs {
		addrs := addressesByInterface(d.Addresses)
		online := "yes"
		if !d.Online {
			online = "NO (" + d.State + ")"
		}
		temp := "-"
		if d.Health != nil && d.Health.TempC != nil {
			temp = fmt.Sprintf("%.1f°C", *d.Health.TempC)
		}
		probs := "-"
		if len(d.Problems) > 0 {
			var p []string
			for _, x := range d.Problems {
				p = append(p, fleet.ProblemWords(x))
			}
			probs = strings.Join(p, ", ")
		}
		seen := "never"
		if d.LastSeen != nil {
			seen = chat.Ago(now, *d.LastSeen)
		}
		if len(addrs) == 0 {
			addrs = []string{"-"}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, online, strings.Join(addrs, " "), temp, probs, seen)
	}
	return tw.Flush()
}

// addressesByInterface lists the usable addresses per interface, in the
// order the agent reported them (the default route's first):
// "eth0=192.0.2.10,2001:db8::10 wlan0=198.51.100.7".
func addressesByInterface(as []wire.Address) []string {
	var order []string
	by := map[string][]string{}
	for _, a := range as {
		if !a.Usable() {
			continue
		}
		if _, seen := by[a.Interface]; !seen {
			order = append(order, a.Interface)
		}
		by[a.Interface] = append(by[a.Interface], a.Address)
	}
	out := make([]string, 0, len(order))
	for _, iface := range order {
		name := iface
		if name == "" {
			name = "?"
		}
		out = append(out, name+"="+strings.Join(by[iface], ","))
	}
	return out
}
