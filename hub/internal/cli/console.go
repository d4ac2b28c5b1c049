package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/pifleet/pifleet/hub/internal/console"
	"github.com/pifleet/pifleet/internal/flagenv"
)

func init() {
	register("console", "serial console of a Pi over a USB-TTL cable; --find-ip prints its addresses", runConsole)
}

// Environment variables with the Pi login for --find-ip when the Pi shows
// no pifleet banner. A flag would land in shell history.
const (
	envConsoleUser     = "PIFLEET_CONSOLE_USER"
	envConsolePassword = "PIFLEET_CONSOLE_PASSWORD"
)

func runConsole(ctx context.Context, env Env, args []string) error {
	fs := flagenv.NewFlagSet("pifleet console", "usage: pifleet console [--port DEV] [--baud N] [--transcript FILE] [--list | --find-ip [--timeout D]]\n\n"+
		"Interactive by default: your terminal talks to the Pi's console.\n"+console.EscapeHelp+"\n"+
		fmt.Sprintf("--find-ip logs in only without a banner, with %s/%s or a prompt.", envConsoleUser, envConsolePassword), "")
	list := fs.Bool("list", false, "list serial ports with USB VID:PID and exit")
	portName := fs.String("port", "", "serial port (default: the one known USB-TTL cable: PL2303, CP210x, FTDI, CH340)")
	baud := fs.Int("baud", console.DefaultBaud, "baud rate (8N1)")
	findIP := fs.Bool("find-ip", false, "print the Pi's addresses (from the pifleet banner, or by logging in and running hostname -I) and exit")
	timeout := fs.Duration("timeout", 15*time.Second, "with --find-ip: how long to wait for a login prompt")
	transcript := fs.String("transcript", "", "append everything the Pi sends to this file")
	if err := flagenv.Parse(fs, args, env); err != nil {
		return usageErr(err)
	}
	if fs.NArg() > 0 || *baud <= 0 || *timeout <= 0 {
		fs.Usage()
		return ErrUsage
	}
	if *list {
		return listPorts(env)
	}
	name := *portName
	if name == "" {
		ports, err := console.ListPorts()
		if err != nil {
			return err
		}
		p, err := console.PickPort(ports)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stderr, "using %s\n", p)
		name = p.Name
	}
	port, err := console.Open(name, *baud)
	if err != nil {
		return err
	}
	defer port.Close()
	var tw io.Writer
	if *transcript != "" {
		f, err := os.OpenFile(*transcript, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("transcript: %w", err)
		}
		defer f.Close()
		tw = f
	}
	if *findIP {
		return consoleFindIP(ctx, env, port, tw, *timeout)
	}
	fmt.Fprintf(env.Stderr, "connected to %s at %d 8N1. %s\n", name, *baud, console.EscapeHelp)
	return interactive(ctx, env, port, tw, name)
}

func listPorts(env Env) error {
	ports, err := console.ListPorts()
	if err != nil {
		return err
	}
	if len(ports) == 0 {
		fmt.Fprintln(env.Stderr, "no serial ports")
		return nil
	}
	for _, p := range ports {
		fmt.Fprintln(env.Stdout, p)
	}
	return nil
}

func consoleFindIP(ctx context.Context, env Env, port io.ReadWriter, tw io.Writer, timeout time.Duration) error {
	opts := console.FindOptions{
		PromptTimeout: timeout,
		Transcript:    tw,
		Credentials:   consoleLogin(env),
		Logf:          func(f string, a ...any) { fmt.Fprintf(env.Stderr, f+"\n", a...) },
	}
	r, err := console.FindIP(ctx, port, opts)
	if err != nil {
		return err
	}
	if r.Hostname != "" {
		fmt.Fprintf(env.Stderr, "%s (from its %s)\n", r.Hostname, r.Source)
	} else {
		fmt.Fprintf(env.Stderr, "from %s\n", r.Source)
	}
	for _, a := range r.Addresses {
		if a.Interface != "" {
			fmt.Fprintf(env.Stdout, "%s\t%s\n", a.Addr, a.Interface)
		} else {
			fmt.Fprintln(env.Stdout, a.Addr)
		}
	}
	return nil
}

// credentials returns where the login for --find-ip comes from: the
// environment, else a prompt when stdin is a terminal, else nothing.
func consoleLogin(env Env) func() (string, string, error) {
	getenv := env.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	user, pass := getenv(envConsoleUser), getenv(envConsolePassword)
	if user != "" && pass != "" {
		return func() (string, string, error) { return user, pass, nil }
	}
	f, ok := env.Stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return func() (string, string, error) {
		u := user
		if u == "" {
			fmt.Fprint(env.Stderr, "Pi user name: ")
			line, err := bufio.NewReader(f).ReadString('\n')
			if err != nil {
				return "", "", fmt.Errorf("read user name: %w", err)
			}
			u = strings.TrimSpace(line)
		}
		p := pass
		if p == "" {
			fmt.Fprintf(env.Stderr, "Password for %s on the Pi: ", u)
			b, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(env.Stderr)
			if err != nil {
				return "", "", fmt.Errorf("read password: %w", err)
			}
			p = string(b)
		}
		return u, p, nil
	}
}

// interactive connects the terminal to the port in raw mode and restores
// the terminal on every way out: the escape, a signal (ctx), a pulled
// cable, or a panic.
func interactive(ctx context.Context, env Env, port io.ReadWriter, tw io.Writer, name string) (err error) {
	if f, ok := env.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		old, rerr := term.MakeRaw(int(f.Fd()))
		if rerr != nil {
			return fmt.Errorf("raw terminal: %w", rerr)
		}
		defer func() {
			if rerr := term.Restore(int(f.Fd()), old); rerr != nil && err == nil {
				err = fmt.Errorf("restore terminal: %w", rerr)
			}
			fmt.Fprintf(env.Stderr, "\r\ndisconnected from %s\n", name)
		}()
	}
	out := env.Stdout
	if tw != nil {
		out = io.MultiWriter(env.Stdout, tw)
	}
	return console.Passthrough(ctx, port, env.Stdin, out)
}
