package cli

// `pifleet-agent join HOST:PORT TOKEN`: the Pi's one line of enrolment
// (the hub's side is hub/internal/enrolment, the token internal/enrol).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pifleet/pifleet/agent/internal/console"
	"github.com/pifleet/pifleet/internal/discovery"
	"github.com/pifleet/pifleet/internal/enrol"
	"github.com/pifleet/pifleet/internal/flagenv"
	"github.com/pifleet/pifleet/internal/transport/pki"
	"github.com/pifleet/pifleet/internal/wire"
)

func init() {
	register("join", "enrol this Pi: sudo pifleet-agent join HUB:8443 TOKEN (the line `pifleet add-pi` printed)", runJoin)
}

// joinTimeout bounds the whole exchange with the hub.
const joinTimeout = 30 * time.Second

type joinFlags struct {
	id, root, systemctl string
	restart, discover   bool
	discoverFor         time.Duration
}

func runJoin(ctx context.Context, env Env, args []string) error {
	var f joinFlags
	fs := flagenv.NewFlagSet("pifleet-agent join", "usage: pifleet-agent join [--id ID] HUB[:PORT] TOKEN   (as root: the line `pifleet add-pi` printed)\n       pifleet-agent join --discover [--id ID] TOKEN   (find the hub on the LAN by mDNS)\n"+
		"TOKEN may be - (read it from the standard input) or left out with "+joinTokenEnv+" set: either keeps it out of ps and the shell history", "")
	fs.StringVar(&f.id, "id", "", "the id to ask for when the token does not fix one (default: the host name)")
	fs.StringVar(&f.root, "root", "/", "write the Pi's files under this directory instead of / (an SD card's root)")
	fs.StringVar(&f.systemctl, "systemctl", "systemctl", "the systemctl program that restarts "+enrol.AgentUnit)
	fs.BoolVar(&f.restart, "restart", false, "restart (or start) "+enrol.AgentUnit+" of THIS machine once the files are written (default true with --root /; false with another --root: an SD card's Pi starts its own unit when it boots)")
	fs.BoolVar(&f.discover, "discover", false, "find the hub on the LAN (mDNS, _pifleet._tcp) instead of naming it: the one whose CA pin is the token's")
	fs.DurationVar(&f.discoverFor, "discover-timeout", 10*time.Second, "how long --discover looks for the hub")
	if err := flagenv.Parse(fs, args, env); err != nil {
		return usageErr(err)
	}
	if !flagSet(fs, "restart") {
		f.restart = filepath.Clean(f.root) == "/"
	}
	want := 2
	if f.discover {
		want = 1
	}
	if fs.NArg() != want && fs.NArg() != want-1 {
		fmt.Fprintln(env.Stderr, "usage: sudo pifleet-agent join HUB[:PORT] TOKEN  (the line `pifleet add-pi` printed on the hub), or join --discover TOKEN")
		return ErrUsage
	}
	tok, err := joinToken(env, fs.Arg(want-1))
	if err != nil {
		return err
	}
	if filepath.Clean(f.root) == "/" && os.Geteuid() != 0 {
		return errors.New("join writes /etc/pifleet and restarts the agent: run it with sudo")
	}
	if f.id == "" {
		host, _ := os.Hostname()
		f.id = wire.SanitizeID(host)
	}
	var hubs []string
	if f.discover {
		if hubs, err = discoverHub(ctx, tok, f.discoverFor); err != nil {
			return err
		}
	} else {
		hub, err := hubAddr(fs.Arg(0))
		if err != nil {
			return err
		}
		hubs = []string{hub}
	}
	hub, ans, err := askFirst(ctx, hubs, tok, f.id)
	if err != nil {
		return err
	}
	return f.install(ctx, env, hub, ans)
}

// askFirst asks the hub addresses in turn and returns the first answer.
// It moves on from an address that does not answer or whose certificate
// is not from the token's CA (the pin prefix --discover matches is public:
// a fake may answer first), and stops at any other error: a hub of the
// fleet refused, or this Pi's clock is off.
func askFirst(ctx context.Context, hubs []string, tok enrol.Token, id string) (string, enrol.JoinAnswer, error) {
	var errs []error
	for _, hub := range hubs {
		ans, err := askHub(ctx, hub, tok, id)
		if err == nil {
			return hub, ans, nil
		}
		if errs = append(errs, err); !errors.Is(err, errUnreachable) && !errors.Is(err, errWrongCA) {
			break
		}
	}
	return "", enrol.JoinAnswer{}, errors.Join(errs...)
}

// joinTokenEnv holds the token when the command line leaves it out.
const joinTokenEnv = "PIFLEET_JOIN_TOKEN"

// joinToken is the token from the command line (arg), the standard input
// (arg "-": its first line) or the environment (arg "": joinTokenEnv).
func joinToken(env Env, arg string) (enrol.Token, error) {
	switch arg {
	case "":
		if env.Getenv != nil {
			arg = env.Getenv(joinTokenEnv)
		}
		if arg == "" {
			return enrol.Token{}, fmt.Errorf("no join token: give it after the hub, as - to read it from the standard input, or in %s", joinTokenEnv)
		}
	case "-":
		if env.Stdin == nil {
			return enrol.Token{}, errors.New("join token -: no standard input")
		}
		line, err := bufio.NewReader(io.LimitReader(env.Stdin, 4096)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return enrol.Token{}, fmt.Errorf("join token from the standard input: %w", err)
		}
		arg = line
	}
	return enrol.ParseToken(strings.TrimSpace(arg))
}

// discoverHub finds the hub whose CA pin starts like the token's and
// returns where to reach its enrolment listener, IPv4 first. The pin
// check of the TLS connection is still the trust decision.
func discoverHub(ctx context.Context, tok enrol.Token, timeout time.Duration) ([]string, error) {
	found, err := discovery.FindPin(ctx, timeout, tok.Pin.String())
	if err != nil {
		return nil, fmt.Errorf("--discover: %w", err)
	}
	if addrs := hubCandidates(found); len(addrs) > 0 {
		return addrs, nil
	}
	return nil, fmt.Errorf("--discover: no hub of this token's fleet answered on the LAN within %v (name it instead: join HUB:%d TOKEN)", timeout, enrol.DefaultPort)
}

// hubCandidates are the discovered hubs' enrolment addresses: IPv4, then
// global IPv6 (a link-local address needs a zone that MQTT URLs do not
// carry well, so it is left out).
func hubCandidates(hubs []discovery.Hub) []string {
	var v4, v6 []string
	for _, h := range hubs {
		for _, a := range h.Addrs {
			switch {
			case a.Is4() || a.Is4In6():
				v4 = append(v4, net.JoinHostPort(a.Unmap().String(), strconv.Itoa(h.EnrolPort)))
			case !a.IsLinkLocalUnicast():
				v6 = append(v6, net.JoinHostPort(a.String(), strconv.Itoa(h.EnrolPort)))
			}
		}
	}
	return append(v4, v6...)
}

// hubAddr is HOST:PORT, the port defaulting to enrolment's.
func hubAddr(s string) (string, error) {
	if _, _, err := net.SplitHostPort(s); err != nil {
		if strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[") { // a bare IPv6 address
			s = "[" + s + "]"
		}
		s = net.JoinHostPort(strings.Trim(s, "[]"), strconv.Itoa(enrol.DefaultPort))
	}
	host, port, err := net.SplitHostPort(s)
	if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("%q: want the hub as HOST:PORT, e.g. hub.lan:%d", s, enrol.DefaultPort)
	}
	return s, nil
}

// errUnreachable is a hub address that did not answer, errWrongCA one
// that is not the token's hub; --discover then tries the next.
var (
	errUnreachable = errors.New("cannot reach the hub")
	errWrongCA     = errors.New("its certificate is not from the fleet CA this token was made for (another machine on that address, or another hub)")
)

// askHub sends the join request over TLS that trusts only the pinned CA,
// and checks that the CA in the answer is that one.
func askHub(ctx context.Context, hub string, tok enrol.Token, id string) (enrol.JoinAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	body, _ := json.Marshal(enrol.JoinRequest{V: enrol.JoinVersion, Token: tok.String(), ID: id})
	req, err := http.NewRequestWithContext(ctx, "POST", "https://"+hub+enrol.JoinPath, bytes.NewReader(body))
	if err != nil {
		return enrol.JoinAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: enrol.PinnedTLS(tok.Pin), Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, enrol.ErrPinMismatch) {
			return enrol.JoinAnswer{}, fmt.Errorf("refusing %s: %w", hub, errWrongCA)
		}
		if errors.Is(err, enrol.ErrClock) {
			return enrol.JoinAnswer{}, fmt.Errorf("refusing %s for now: %v", hub, unwrapURL(err))
		}
		return enrol.JoinAnswer{}, fmt.Errorf("%w at %s: %v", errUnreachable, hub, unwrapURL(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return enrol.JoinAnswer{}, fmt.Errorf("read the hub's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e enrol.ErrorAnswer
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return enrol.JoinAnswer{}, fmt.Errorf("the hub refused: %s", e.Error)
		}
		return enrol.JoinAnswer{}, fmt.Errorf("the hub refused: %s", resp.Status)
	}
	var ans enrol.JoinAnswer
	if err := json.Unmarshal(b, &ans); err != nil {
		return enrol.JoinAnswer{}, fmt.Errorf("the hub's answer is not the expected JSON: %w", err)
	}
	return ans, checkAnswer(ans, tok.Pin)
}

// unwrapURL drops net/http's "Post URL:" prefix, which repeats the address.
func unwrapURL(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

// checkAnswer refuses an answer that does not fit: another CA than the
// pinned one, a bad id, no login.
func checkAnswer(ans enrol.JoinAnswer, pin enrol.Pin) error {
	ca, err := pki.ParseCertPEM([]byte(ans.CAPEM))
	if err != nil {
		return fmt.Errorf("the hub's answer holds no CA certificate: %w", err)
	}
	if enrol.PinOf(ca.Raw) != pin {
		return errors.New("the hub sent another CA than the token's: refusing it")
	}
	if err := wire.ValidateID(ans.ID); err != nil {
		return fmt.Errorf("the hub gave this Pi the id %q: %w", ans.ID, err)
	}
	if ans.Password == "" && ans.CertPEM == "" {
		return errors.New("the hub's answer holds no login")
	}
	if ans.CertPEM != "" {
		c, err := pki.ParseCertPEM([]byte(ans.CertPEM))
		if err != nil {
			return fmt.Errorf("the hub's client certificate: %w", err)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool(ca), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			return fmt.Errorf("the hub's client certificate is not from its CA: %w", err)
		}
	}
	return nil
}

func pool(c *x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c)
	return p
}

// install writes the Pi's files where the packaged unit reads them and
// restarts the unit.
func (f *joinFlags) install(ctx context.Context, env Env, hub string, ans enrol.JoinAnswer) error {
	host, _, _ := net.SplitHostPort(hub)
	pc := enrol.PiConfig{ID: ans.ID, Broker: "mqtts://" + net.JoinHostPort(host, strconv.Itoa(ans.MQTTPort)),
		ServerName: ans.ServerName, CAPEM: []byte(ans.CAPEM), HubKey: ans.HubKey, Labels: ans.Labels,
		Password: ans.Password, CertPEM: []byte(ans.CertPEM), KeyPEM: []byte(ans.KeyPEM),
		Origin: "pifleet-agent join on " + time.Now().UTC().Format(time.RFC3339)}
	files, err := pc.Files()
	if err != nil {
		return err
	}
	gid, ok, err := enrol.AgentGID(f.root) // under --root: the SD card's /etc/group, not this machine's
	if err != nil {
		return err
	}
	if !ok {
		gid = -1
		fmt.Fprintf(env.Stderr, "note: there is no group %s in %s (is the pifleet-agent package installed?); the Pi's secrets are root's only\n",
			enrol.AgentGroup, filepath.Join(f.root, "etc/group"))
	}
	if err := enrol.WriteFiles(f.root, files, gid); err != nil {
		return err
	}
	login := "password"
	if ans.CertPEM != "" {
		login = "client certificate"
	}
	fmt.Fprintf(env.Stdout, "joined the fleet as %s (%s login, broker %s); wrote %s and %s\n", ans.ID, login, pc.Broker,
		filepath.Join(f.root, enrol.PiDir), filepath.Join(f.root, enrol.PiEnvFile))
	if !f.restart {
		return nil
	}
	if err := (console.Systemctl{Path: f.systemctl}).Restart(ctx, enrol.AgentUnit); err != nil {
		return fmt.Errorf("the files are written, but: %w (start it with: sudo systemctl restart %s)", err, enrol.AgentUnit)
	}
	fmt.Fprintf(env.Stdout, "restarted %s\n", enrol.AgentUnit)
	return nil
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
