package cli

// Enrolment from the operator's side: add-pi makes a join token and prints
// the one line to run on the Pi; pis pending lists the tokens not used up
// and pis revoke ends one; remove-pi revokes a Pi. All go through the hub's HTTP API
// (hub/internal/enrolment serves them).

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pifleet/pifleet/hub/internal/enrolment"
	"github.com/pifleet/pifleet/internal/flagenv"
)

func init() {
	register("add-pi", "make a join token and print the one line to run on a Pi: sudo pifleet-agent join HUB:8443 TOKEN", runAddPi)
	register("remove-pi", "revoke a Pi: its login goes, its session is closed at once, the view forgets it", runRemovePi)
	register("pis", "pifleet pis pending: the join tokens that can still be used (never their secrets); pifleet pis revoke TOKEN_ID ends one", runPis)
}

// parseInterleaved parses flags before and after the positional
// arguments (pifleet add-pi pi-1 --labels lab).
func parseInterleaved(fs *flag.FlagSet, args []string, env Env) ([]string, error) {
	var pos []string
	for {
		if err := flagenv.Parse(fs, args, env); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}

// noEnrolment says what a hub without enrolment needs.
func noEnrolment(err error) error {
	if err != nil && strings.Contains(err.Error(), "no such endpoint") {
		return errors.New("this hub does not enrol Pis: its embedded broker listens on loopback only (start it with --mqtt-listen 0.0.0.0:8883, or ask with --enrol-listen), or it uses an external broker or its own --mqtt-tls-cert (then: scripts/provision)")
	}
	return err
}

func runAddPi(ctx context.Context, env Env, args []string) error {
	fs := flagenv.NewFlagSet("pifleet add-pi", "usage: pifleet add-pi [--labels lab,shelf] [--ttl 1h] [--uses N] [--auth password|cert] [ID]", "")
	var hub, labels string
	var req enrolment.AddRequest
	addHubFlags(fs, &hub)
	fs.StringVar(&labels, "labels", "", "comma-separated labels the Pi gets")
	fs.StringVar(&req.TTL, "ttl", enrolment.DefaultTTL.String(), "how long the token can be used")
	fs.IntVar(&req.Uses, "uses", 1, "how many Pis may join with it (a batch; then without ID: each Pi takes its host name)")
	fs.StringVar(&req.Auth, "auth", enrolment.AuthPassword, "how the Pi logs in to the broker: password or cert")
	pos, err := parseInterleaved(fs, args, env)
	if err != nil {
		return usageErr(err)
	}
	if len(pos) > 1 {
		fmt.Fprintf(env.Stderr, "pifleet add-pi: one ID at most (got %q)\n", pos)
		return ErrUsage
	}
	if len(pos) == 1 {
		req.ID = pos[0]
	}
	req.Labels = splitLabels(labels)
	c, err := newHubClient(env, fs, hub)
	if err != nil {
		return err
	}
	var ans enrolment.AddAnswer
	if err := c.do(ctx, "POST", "/api/pis", req, &ans); err != nil {
		return noEnrolment(err)
	}
	fmt.Fprintln(env.Stdout, ans.Command)
	who := "a Pi (its host name is its id)"
	if ans.ID != "" {
		who = ans.ID
	}
	if ans.Uses > 1 {
		who = fmt.Sprintf("%d Pis (each takes its host name as id)", ans.Uses)
	}
	fmt.Fprintf(env.Stderr, "Run that line on %s before %s. The token is a secret until then.\n", who, ans.Expires.Local().Format("15:04 (Jan 2)"))
	return nil
}

func splitLabels(s string) []string {
	var out []string
	for _, l := range strings.Split(s, ",") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func runRemovePi(ctx context.Context, env Env, args []string) error {
	fs := flagenv.NewFlagSet("pifleet remove-pi", "usage: pifleet remove-pi ID", "")
	var hub string
	addHubFlags(fs, &hub)
	pos, err := parseInterleaved(fs, args, env)
	if err != nil {
		return usageErr(err)
	}
	if len(pos) != 1 {
		fmt.Fprintln(env.Stderr, "usage: pifleet remove-pi ID")
		return ErrUsage
	}
	c, err := newHubClient(env, fs, hub)
	if err != nil {
		return err
	}
	var ans enrolment.RemoveAnswer
	if err := c.do(ctx, "DELETE", "/api/pis/"+url.PathEscape(pos[0]), nil, &ans); err != nil {
		return noEnrolment(err)
	}
	fmt.Fprintf(env.Stdout, "removed %s: login revoked, %d live session(s) closed, forgotten in the view\n", ans.ID, ans.Disconnected)
	return nil
}

func runPis(ctx context.Context, env Env, args []string) error {
	const usage = "usage: pifleet pis pending [--json]\n       pifleet pis revoke TOKEN_ID   (a token id from pis pending or add-pi: it can no longer be used)"
	fs := flagenv.NewFlagSet("pifleet pis", usage, "")
	var hub string
	var asJSON bool
	addHubFlags(fs, &hub)
	fs.BoolVar(&asJSON, "json", false, "print the hub's JSON")
	pos, err := parseInterleaved(fs, args, env)
	if err != nil {
		return usageErr(err)
	}
	revoke := len(pos) == 2 && pos[0] == "revoke"
	if !revoke && (len(pos) != 1 || pos[0] != "pending") {
		fmt.Fprintln(env.Stderr, usage)
		return ErrUsage
	}
	c, err := newHubClient(env, fs, hub)
	if err != nil {
		return err
	}
	if revoke {
		var t enrolment.PendingToken
		if err := c.do(ctx, "DELETE", "/api/pis/pending/"+url.PathEscape(pos[1]), nil, &t); err != nil {
			return noEnrolment(err)
		}
		if asJSON {
			return json.NewEncoder(env.Stdout).Encode(t)
		}
		fmt.Fprintf(env.Stdout, "revoked join token %s (%d use(s) were left); a Pi that tries it is refused\n", t.TokenID, t.UsesLeft)
		return nil
	}
	var toks []enrolment.PendingToken
	if err := c.do(ctx, "GET", "/api/pis/pending", nil, &toks); err != nil {
		return noEnrolment(err)
	}
	if asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(toks)
	}
	if len(toks) == 0 {
		fmt.Fprintln(env.Stdout, "no join tokens pending (pifleet add-pi makes one)")
		return nil
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOKEN\tID\tLABELS\tAUTH\tUSES LEFT\tEXPIRES")
	for _, t := range toks {
		id := t.ID
		if id == "" {
			id = "(host name)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", t.TokenID, id, strings.Join(t.Labels, ","), t.Auth, t.UsesLeft,
			t.Expires.Local().Format(time.DateTime))
	}
	return tw.Flush()
}
