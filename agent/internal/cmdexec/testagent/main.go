// Command testagent is the smallest agent that runs cloud commands: the
// MQTT link, cmdexec and the container runner, nothing else. The hub's
// dispatch tests start it as a real process (so a restart is a real
// restart), and it shows how the agent wires the three together. The real
// agent (pifleet-agent) does the same in its daemon.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pifleet/pifleet/agent/internal/cmdexec"
	"github.com/pifleet/pifleet/agent/internal/runner"
	"github.com/pifleet/pifleet/internal/link"
	"github.com/pifleet/pifleet/internal/policy"
	"github.com/pifleet/pifleet/internal/wire"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "testagent:", err)
		os.Exit(1)
	}
}

func run() error {
	var hubKeys multi
	broker := flag.String("broker", "mqtt://127.0.0.1:1883", "MQTT broker URL")
	id := flag.String("id", "pi1", "device id")
	dataDir := flag.String("data-dir", ".", "where the command store lives")
	policyFile := flag.String("policy", "", "policy/tools JSON (empty: built-in)")
	network := flag.String("network", "none", "container network mode")
	instance := flag.String("instance", "agent", "runner instance label")
	timeout := flag.Duration("timeout", 60*time.Second, "longest command run")
	flag.Var(&hubKeys, "hub-key", "hub public key (base64) or file; repeatable")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	keys, err := cmdexec.LoadPublicKeys(hubKeys)
	if err != nil {
		return err
	}
	pol, err := policy.Load(*policyFile)
	if err != nil {
		return err
	}
	store, err := cmdexec.OpenStore(filepath.Join(*dataDir, "commands.db"))
	if err != nil {
		return err
	}
	cmdexec.LogRecovery(log, store)
	defer store.Close()
	rn, err := runner.New(runner.Options{Network: *network, Instance: *instance, Timeout: *timeout, Logger: log})
	if err != nil {
		return err
	}
	defer rn.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if n, err := rn.Sweep(ctx); err != nil {
		log.Warn("sweep leftover containers", "err", err)
	} else if n > 0 {
		log.Info("removed leftover containers", "count", n)
	}
	var lnk *link.Link
	h, err := cmdexec.New(cmdexec.Options{Device: *id, Keys: keys, Store: store, Policy: pol, Runner: rn, Logger: log})
	if err != nil {
		return err
	}
	lnk, err = link.New(link.Options{Brokers: []string{*broker}, ID: *id, Logger: log, KeepAlive: 2 * time.Second,
		OnCommand: func(p []byte) { h.HandleCommand(ctx, p, lnk) },
		// Like the real agent, say which tools it runs, so hubs send only those.
		OnUp: func(epoch uint64) {
			go lnk.PublishStatus(wire.Status{V: wire.ProtocolVersion, ID: *id, Epoch: epoch, Seq: 1, Time: time.Now().UTC(), Tools: pol.ToolNames()}, true)
		}})
	if err != nil {
		return err
	}
	err = lnk.Run(ctx)
	h.Wait()
	return err
}
