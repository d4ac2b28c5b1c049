package cli

import (
	"archive/tar"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pifleet/pifleet/hub/internal/sim"
	"github.com/pifleet/pifleet/internal/flagenv"
	"github.com/pifleet/pifleet/internal/transport"
)

func init() {
	register("sim", "simulate many Pis against a broker (load test; each is the agent's real MQTT session)", runSim)
}

// simEnvPrefix + the flag's name in upper case sets a flag of `pifleet sim`.
const simEnvPrefix = "PIFLEET_SIM_"

func runSim(ctx context.Context, env Env, args []string) error {
	var (
		cfg                          sim.Config
		brokers, shard, srcs, labels string
		secrets, logLevel            string
		duration                     time.Duration
	)
	fs := flagenv.NewFlagSet("pifleet sim", "", simEnvPrefix)
	fs.IntVar(&cfg.Agents, "agents", 100, "simulated Pis in total (across all shards)")
	fs.Float64Var(&cfg.Rate, "rate", 100, "connects per second started by this process")
	fs.DurationVar(&cfg.Heartbeat, "heartbeat", 30*time.Second, "status re-sent this often (as the agent's --heartbeat)")
	fs.DurationVar(&cfg.RetainEvery, "retain-every", 10*time.Minute, "a heartbeat is published retained only this long after the last retained status (as the agent); at or below --heartbeat every status is retained, as agents before 2026-12")
	fs.DurationVar(&cfg.KeepAlive, "keepalive", 10*time.Second, "MQTT keepalive (as the agent's --keepalive)")
	fs.StringVar(&cfg.Prefix, "prefix", "sim-", "device ids are PREFIX + 5-digit number")
	fs.StringVar(&shard, "shard", "0/1", "run shard i of n (i/n) of the --agents Pis: start one process per shard")
	fs.StringVar(&srcs, "source-addrs", "", "local addresses to dial from, round robin: a list (127.0.0.2,127.0.0.3) or a range (127.0.0.2-127.0.0.17); one address pair has only ~28k ports")
	fs.StringVar(&brokers, "broker", "mqtt://127.0.0.1:1883", "broker URL(s), comma separated, tried in turn (as the agent's --broker)")
	fs.StringVar(&secrets, "secrets", "", "scripts/provision's secrets directory: each Pi logs in as its device (devices/<id>.tar)")
	fs.Float64Var(&cfg.Churn, "churn", 0, "chance per Pi and heartbeat of an event: address change, problem on/off, or dropped connection")
	fs.StringVar(&labels, "labels", "sim", "comma-separated labels of every simulated Pi")
	fs.DurationVar(&duration, "duration", 0, "stop after this long (0: until Ctrl-C)")
	fs.StringVar(&logLevel, "log-level", "error", "debug, info, warn or error (per-Pi session logs)")
	var topts transport.Options
	topts.RegisterFlags(fs) // --ca-file --server-name --tls-insecure-skip-verify --allow-plaintext (…)
	if err := flagenv.Parse(fs, args, env); err != nil {
		return usageErr(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "pifleet sim: unexpected argument %q\n", fs.Arg(0))
		return ErrUsage
	}
	if err := flagenv.Apply(fs, env.Getenv, simEnvPrefix); err != nil {
		return err
	}
	var err error
	if cfg.Shard, cfg.Shards, err = parseShard(shard); err != nil {
		return err
	}
	if cfg.SourceAddrs, err = parseAddrs(srcs); err != nil {
		return err
	}
	cfg.Labels = splitList(labels)
	cfg.Brokers = splitList(brokers)
	log, err := flagenv.NewLogger(env.Stderr, logLevel)
	if err != nil {
		return err
	}
	cfg.Logger = log
	cfg.Progress = env.Stdout

	// Check TLS and plaintext rules once, as the agent would.
	probe := mqtt.NewClientOptions()
	for _, b := range cfg.Brokers {
		probe.AddBroker(b)
	}
	if err := topts.Apply(probe); err != nil {
		return err
	}
	cfg.Brokers = cfg.Brokers[:0]
	for _, u := range probe.Servers {
		cfg.Brokers = append(cfg.Brokers, u.String())
	}
	logins := map[string]login{}
	if secrets != "" {
		lo, hi := sim.Range(cfg.Agents, cfg.Shard, cfg.Shards)
		if logins, err = readLogins(secrets, cfg.Prefix, lo, hi); err != nil {
			return err
		}
	}
	cfg.Configure = func(id string, o *mqtt.ClientOptions) error {
		if probe.TLSConfig != nil {
			c := probe.TLSConfig.Clone()
			if l, ok := logins[id]; ok && l.cert != nil {
				c.Certificates = l.cert
			}
			o.SetTLSConfig(c)
		}
		if l, ok := logins[id]; ok && l.password != "" {
			o.SetUsername(id)
			o.SetPassword(l.password)
		} else if probe.Username != "" {
			o.SetUsername(probe.Username)
			o.SetPassword(probe.Password)
		}
		return nil
	}

	s, err := sim.New(cfg)
	if err != nil {
		return err
	}
	if duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}
	lo, hi := sim.Range(cfg.Agents, cfg.Shard, cfg.Shards)
	fmt.Fprintf(env.Stdout, "sim: %d Pis (%s … %s, shard %d/%d) → %s at %.0f connects/s, heartbeat %v, keepalive %v\n",
		hi-lo, sim.ID(cfg.Prefix, lo), sim.ID(cfg.Prefix, hi-1), cfg.Shard, cfg.Shards, strings.Join(cfg.Brokers, ","), cfg.Rate, cfg.Heartbeat, cfg.KeepAlive)
	start := time.Now()
	if err := s.Run(ctx); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "sim: done after %v: %s\n", time.Since(start).Round(time.Second), s.Stats())
	return nil
}

func parseShard(s string) (i, n int, err error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return 0, 0, fmt.Errorf("--shard %q: want i/n with 0 ≤ i < n, e.g. 0/2", s)
	}
	return i, n, nil
}

// parseAddrs parses "a,b,c" and "first-last" (IPv4 ranges within one /24,
// or any range up to 1024 addresses).
func parseAddrs(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, part := range splitList(s) {
		first, last, isRange := strings.Cut(part, "-")
		a, err := netip.ParseAddr(first)
		if err != nil {
			return nil, fmt.Errorf("--source-addrs: %q is not an address", first)
		}
		if !isRange {
			out = append(out, a)
			continue
		}
		b, err := netip.ParseAddr(last)
		if err != nil || b.Less(a) || a.Is4() != b.Is4() {
			return nil, fmt.Errorf("--source-addrs: %q is not a range first-last", part)
		}
		for x := a; ; x = x.Next() {
			out = append(out, x)
			if len(out) > 1024 {
				return nil, fmt.Errorf("--source-addrs: %q has more than 1024 addresses", part)
			}
			if x == b {
				break
			}
		}
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

type login struct {
	password string
	cert     []tls.Certificate
}

// readLogins reads the device bundles scripts/provision wrote for the Pis
// lo…hi-1 (secrets/devices/<id>.tar): a password or a client certificate.
func readLogins(dir, prefix string, lo, hi int) (map[string]login, error) {
	out := map[string]login{}
	for i := lo; i < hi; i++ {
		id := sim.ID(prefix, i)
		p := filepath.Join(dir, "devices", id+".tar")
		files, err := readTar(p)
		if err != nil {
			return nil, fmt.Errorf("--secrets: %w (provision the simulated ids first: scripts/provision --secrets %s %s …)", err, dir, id)
		}
		var l login
		if pw, ok := files["device.password"]; ok {
			l.password = strings.TrimSuffix(string(pw), "\n")
		} else if cert, ok := files["device.pem"]; ok {
			c, err := tls.X509KeyPair(cert, files["device.key"])
			if err != nil {
				return nil, fmt.Errorf("--secrets: %s: %w", p, err)
			}
			l.cert = []tls.Certificate{c}
		} else {
			return nil, fmt.Errorf("--secrets: %s holds neither device.password nor device.pem", p)
		}
		out[id] = l
	}
	return out, nil
}

func readTar(path string) (map[string][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		b, err := io.ReadAll(io.LimitReader(tr, 1<<20))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out[filepath.Base(h.Name)] = b
	}
}
