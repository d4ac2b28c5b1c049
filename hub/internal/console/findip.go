package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strings"
	"time"
)

// Errors of FindIP; the returned errors wrap them with what to do.
var (
	ErrNoPrompt      = errors.New("no login prompt")
	ErrLoggedIn      = errors.New("a shell is logged in on the console")
	ErrNoBanner      = errors.New("no pifleet banner")
	ErrWrongPassword = errors.New("login incorrect")
	ErrNoAddress     = errors.New("the Pi has no usable address")
)

// FindOptions configure FindIP. The zero value works.
type FindOptions struct {
	// PromptTimeout bounds waking the getty (each wake-up); default 15s.
	PromptTimeout time.Duration
	// LoginTimeout bounds each step of a login; default 20s (PAM waits
	// about 3 s after a wrong password).
	LoginTimeout time.Duration
	// Credentials is asked only when there is no banner; nil: no login.
	Credentials func() (user, password string, err error)
	// Transcript receives every byte the Pi sends (the password is
	// never echoed, so it never lands there).
	Transcript io.Writer
	// Logf reports progress (to stderr); nil: silent.
	Logf func(format string, args ...any)
}

func (o *FindOptions) ensureDefaults() {
	if o.PromptTimeout == 0 {
		o.PromptTimeout = 15 * time.Second
	}
	if o.LoginTimeout == 0 {
		o.LoginTimeout = 20 * time.Second
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}

// Result is what FindIP found.
type Result struct {
	Hostname  string // from the banner; "" after hostname -I
	Addresses []Address
	Source    string  // "banner" or "hostname -I"
	Banner    *Banner // when Source is "banner"
}

var (
	loginRe     = regexp.MustCompile(`(?m)login:[ \t]*$`)
	passwordRe  = regexp.MustCompile(`(?i)password:[ \t]*$`)
	incorrectRe = regexp.MustCompile(`Login incorrect`)
	shellRe     = regexp.MustCompile(`[$#>%][ \t]*$`)
	hostnameRe  = regexp.MustCompile(`hostname -I[^\n]*\n([^\n]*)\n(?:.*\n)*[^\n]*[$#>%][ \t]*$`)
)

// Wake-up keys. Enter makes agetty reprint only "login:"; Ctrl-D at
// agetty's prompt ends it, and systemd starts a fresh getty that prints the
// issue files, the pifleet banner among them. A BREAK or NUL is never
// sent: agetty would switch to its next baud rate.
const (
	keyEnter = "\r"
	keyCtrlD = "\x04"
)

// FindIP finds the Pi's addresses over its serial console rw: it wakes the
// getty, reads the pifleet banner above "login:", and without one logs in
// (when opts.Credentials is set), runs `hostname -I` and logs out.
func FindIP(ctx context.Context, rw io.ReadWriter, opts FindOptions) (Result, error) {
	opts.ensureDefaults()
	s := newSession(rw, opts.Transcript)
	defer s.close()
	if err := wake(ctx, s, opts, keyEnter); err != nil {
		return Result{}, err
	}
	if b, ok := ParseBanner(s.text()); ok {
		return bannerResult(b)
	}
	opts.Logf("no pifleet banner above the prompt; restarting the getty (Ctrl-D) to get a fresh one")
	if err := wake(ctx, s, opts, keyCtrlD); err != nil {
		return Result{}, err
	}
	if b, ok := ParseBanner(s.text()); ok {
		return bannerResult(b)
	}
	if opts.Credentials == nil {
		return Result{}, fmt.Errorf("%w above login: (is pifleet-agent running on the Pi?); to log in and run hostname -I instead, set PIFLEET_CONSOLE_USER and PIFLEET_CONSOLE_PASSWORD or run in a terminal", ErrNoBanner)
	}
	opts.Logf("no pifleet banner; logging in to run hostname -I")
	return login(ctx, s, opts)
}

func bannerResult(b Banner) (Result, error) {
	r := Result{Hostname: b.Hostname, Addresses: b.Addresses, Source: "banner", Banner: &b}
	if len(r.Addresses) == 0 {
		return r, fmt.Errorf("%w: the pifleet banner of %s lists none (no network?)", ErrNoAddress, b.Hostname)
	}
	return r, nil
}

// wake sends key, then Enter every few seconds, until a login prompt
// shows or PromptTimeout passes.
func wake(ctx context.Context, s *session, opts FindOptions, key string) error {
	deadline := time.Now().Add(opts.PromptTimeout)
	s.mark()
	for {
		if err := s.send(key); err != nil {
			return err
		}
		step := min(3*time.Second, time.Until(deadline))
		i, err := s.expect(ctx, step, loginRe, shellRe)
		switch {
		case err == nil && i == 0:
			return nil
		case err == nil:
			return fmt.Errorf("%w: the console shows a shell prompt, not login: (%q); log out first (pifleet console, then exit)", ErrLoggedIn, lastLine(s.text()))
		case !errors.Is(err, errTimeout):
			return err
		case time.Now().After(deadline):
			return fmt.Errorf("%w within %v: is the Pi on, is the cable on the right pins (white → pin 8 GPIO14 TXD, green → pin 10 GPIO15 RXD, black → GND), is serial-getty running? (pifleet-agent doctor on the Pi); received: %q",
				ErrNoPrompt, opts.PromptTimeout, lastLine(s.text()))
		}
		key = keyEnter
	}
}

func login(ctx context.Context, s *session, opts FindOptions) (Result, error) {
	user, pass, err := opts.Credentials()
	if err != nil {
		return Result{}, fmt.Errorf("credentials: %w", err)
	}
	s.setSecret(pass)
	s.mark()
	if err := s.send(user + keyEnter); err != nil {
		return Result{}, err
	}
	if _, err := s.expect(ctx, opts.LoginTimeout, passwordRe); err != nil {
		return Result{}, fmt.Errorf("%w: no Password: prompt after the user name (%v); received %q", ErrNoPrompt, err, lastLine(s.text()))
	}
	s.mark()
	if err := s.send(pass + keyEnter); err != nil {
		return Result{}, err
	}
	i, err := s.expect(ctx, opts.LoginTimeout, incorrectRe, shellRe)
	if err != nil {
		return Result{}, fmt.Errorf("no shell prompt after the password: %w; received %q", err, lastLine(s.text()))
	}
	if i == 0 {
		return Result{}, fmt.Errorf("%w: wrong user name or password for %q", ErrWrongPassword, user)
	}
	s.mark()
	if err := s.send("hostname -I" + keyEnter); err != nil {
		return Result{}, err
	}
	_, err = s.expect(ctx, opts.LoginTimeout, hostnameRe)
	out := s.text()
	s.mark()
	_ = s.send("exit" + keyEnter) // log out whatever happened
	if err != nil {
		return Result{}, fmt.Errorf("hostname -I: no answer: %w; received %q", err, lastLine(out))
	}
	r, perr := parseHostnameI(hostnameRe.FindStringSubmatch(out)[1])
	if _, err := s.expect(ctx, 5*time.Second, loginRe); err != nil {
		opts.Logf("logged out, but no new login prompt yet (%v)", err)
	}
	return r, perr
}

func parseHostnameI(line string) (Result, error) {
	r := Result{Source: "hostname -I"}
	for _, f := range strings.Fields(line) {
		a, err := netip.ParseAddr(f)
		if err != nil {
			return r, fmt.Errorf("hostname -I printed %q, not addresses (busybox hostname has no -I)", strings.TrimSpace(line))
		}
		r.Addresses = append(r.Addresses, Address{Addr: a})
	}
	if len(r.Addresses) == 0 {
		return r, fmt.Errorf("%w: hostname -I printed nothing", ErrNoAddress)
	}
	return r, nil
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[len(s)-200:]
	}
	return s
}
