package enrolment

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/pifleet/pifleet/internal/credentials"
	"github.com/pifleet/pifleet/internal/enrol"
	"github.com/pifleet/pifleet/internal/loglimit"
	"github.com/pifleet/pifleet/internal/transport/pki"
	"github.com/pifleet/pifleet/internal/wire"
)

// Hub is what the Enroller needs of the running hub: swap the broker's
// logins, cut a device's live session, and forget a device in the view.
type Hub interface {
	SetCredentials(*credentials.File) error
	DisconnectDevice(id string) (int, error)
	ForgetDevice(ctx context.Context, id string) error
	HasDevice(id string) bool // in the view
}

// Config configures an Enroller.
type Config struct {
	PKI    *FleetPKI
	Tokens *Store
	// HubKey is the command-signing public key (base64) Pis trust.
	HubKey string
	// MQTTPort is the broker's TLS port; the Pi reaches it on the host it
	// joined through.
	MQTTPort int
	// JoinAddr is host:port of the enrolment listener as Pis reach it,
	// for the line add-pi prints.
	JoinAddr string
	Hub      Hub
	Logger   *slog.Logger
	Now      func() time.Time
}

// Enroller answers joins and the operator's requests.
type Enroller struct {
	cfg Config
	log *slog.Logger

	credMu   sync.Mutex      // one change of the credentials file at a time
	removing map[string]bool // ids whose remove-pi is under way (under credMu): a join of one is refused

	limitMu  sync.Mutex
	perAddr  map[string]*loglimit.Limit // join attempts per source address
	refusals loglimit.Limit             // log lines about refused joins
}

// New returns an Enroller.
func New(cfg Config) *Enroller {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Enroller{cfg: cfg, log: cfg.Logger.With("component", "enrolment"), removing: map[string]bool{},
		perAddr: map[string]*loglimit.Limit{}, refusals: loglimit.Limit{Per: time.Minute, Burst: 20}}
}

// AddRequest is POST /api/pis: a new join token.
type AddRequest struct {
	ID     string   `json:"id,omitempty"` // the Pi's id; "": its host name
	Labels []string `json:"labels,omitempty"`
	TTL    string   `json:"ttl,omitempty"`  // Go duration, default DefaultTTL
	Uses   int      `json:"uses,omitempty"` // default 1
	Auth   string   `json:"auth,omitempty"` // password (default) or cert
}

// AddAnswer is the new token and the line to run on the Pi.
type AddAnswer struct {
	Command string    `json:"command"` // sudo pifleet-agent join HOST:PORT TOKEN
	Token   string    `json:"token"`
	TokenID string    `json:"token_id"`
	ID      string    `json:"id,omitempty"`
	Labels  []string  `json:"labels,omitempty"`
	Uses    int       `json:"uses"`
	Expires time.Time `json:"expires"`
}

// Limits of add-pi.
const (
	DefaultTTL = time.Hour
	MaxTTL     = 30 * 24 * time.Hour
	MaxUses    = 10000
)

// Add makes a join token.
func (e *Enroller) Add(req AddRequest) (AddAnswer, error) {
	ttl := DefaultTTL
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 || d > MaxTTL {
			return AddAnswer{}, fmt.Errorf("--ttl %q: want a duration from 1s to %v, e.g. 1h", req.TTL, MaxTTL)
		}
		ttl = d
	}
	uses := req.Uses
	switch {
	case uses == 0:
		uses = 1
	case uses < 0 || uses > MaxUses:
		return AddAnswer{}, fmt.Errorf("--uses %d: want 1 to %d", uses, MaxUses)
	}
	if req.ID != "" {
		if err := wire.ValidateID(req.ID); err != nil {
			return AddAnswer{}, fmt.Errorf("id: %w", err)
		}
		if uses > 1 {
			return AddAnswer{}, errors.New("a token for one id is for one Pi: drop --uses, or the id (each Pi then takes its host name)")
		}
		if err := e.checkFree(req.ID); err != nil {
			return AddAnswer{}, err
		}
	}
	for _, l := range req.Labels {
		if err := wire.ValidateID(l); err != nil {
			return AddAnswer{}, fmt.Errorf("label %q: %w", l, err)
		}
	}
	auth := req.Auth
	switch auth {
	case "":
		auth = AuthPassword
	case AuthPassword, AuthCert:
	default:
		return AddAnswer{}, fmt.Errorf("--auth %q: want password or cert", auth)
	}
	tok, err := enrol.NewToken(e.cfg.PKI.Pin)
	if err != nil {
		return AddAnswer{}, err
	}
	now := e.cfg.Now()
	r := Record{ID: tok.ID, SecretHash: tok.SecretHash(), Device: req.ID, Labels: req.Labels, Auth: auth,
		UsesLeft: uses, Uses: uses, Created: now.UTC(), Expires: now.Add(ttl).UTC()}
	if err := e.cfg.Tokens.Add(r); err != nil {
		return AddAnswer{}, err
	}
	e.log.Info("join token made", "token_id", tok.ID, "device", req.ID, "uses", uses, "expires", r.Expires)
	return AddAnswer{Command: "sudo pifleet-agent join " + e.cfg.JoinAddr + " " + tok.String(), Token: tok.String(),
		TokenID: tok.ID, ID: req.ID, Labels: req.Labels, Uses: uses, Expires: r.Expires}, nil
}

// checkFree refuses an id that already has a login.
func (e *Enroller) checkFree(id string) error {
	creds, err := credentials.Load(e.cfg.PKI.Credentials)
	if err != nil {
		return err
	}
	if _, hub, ok := creds.Find(id); ok {
		if hub {
			return fmt.Errorf("%q is a hub's id", id)
		}
		return fmt.Errorf("a Pi named %q is already enrolled (on the hub: pifleet remove-pi %s, then enrol it again)", id, id)
	}
	return nil
}

// joinError is a refused join: what the Pi is told, and the HTTP status.
type joinError struct {
	status int
	err    error
}

func (j *joinError) Error() string { return j.err.Error() }
func (j *joinError) Unwrap() error { return j.err }

func refuse(status int, err error) error { return &joinError{status, err} }

// Join enrols a Pi: the token's use is spent, the Pi gets a login that
// the broker accepts from now on, and everything it needs to trust the
// hub.
func (e *Enroller) Join(req enrol.JoinRequest) (enrol.JoinAnswer, error) {
	if req.V != enrol.JoinVersion {
		return enrol.JoinAnswer{}, refuse(400, fmt.Errorf("join request version %d: this hub speaks %d (update pifleet-agent or the hub)", req.V, enrol.JoinVersion))
	}
	tok, err := enrol.ParseToken(req.Token)
	if err != nil {
		return enrol.JoinAnswer{}, refuse(400, err)
	}
	if tok.Pin != e.cfg.PKI.Pin {
		return enrol.JoinAnswer{}, refuse(403, errors.New("this token was made for another fleet's CA"))
	}
	if rec, id, ok := e.cfg.Tokens.Retry(tok, req.ID); ok {
		return e.readmit(rec, id)
	}
	rec, err := e.cfg.Tokens.Take(tok)
	if err != nil {
		return enrol.JoinAnswer{}, refuse(403, err)
	}
	ans, err := e.admit(rec, req.ID)
	if err != nil {
		e.cfg.Tokens.GiveBack(rec.ID, ans.ID)
		return enrol.JoinAnswer{}, err
	}
	return ans, nil
}

// readmit answers a Pi that joined with this single-use token and id
// less than RetryWindow ago and asks again: the answer was lost (the
// connection dropped, the hub stopped after saving the login). It gets a
// new login, which replaces the first (nobody could have received that
// one, or the Pi would not ask again). Not when the id has shown up in
// the view since — then the first answer did arrive, and the token is
// used — nor while or after it is removed (Remove forgets the join).
func (e *Enroller) readmit(rec Record, id string) (enrol.JoinAnswer, error) {
	e.credMu.Lock()
	defer e.credMu.Unlock()
	if e.removing[id] {
		return enrol.JoinAnswer{}, refuse(409, fmt.Errorf("the Pi named %q is being removed right now", id))
	}
	if e.cfg.Hub.HasDevice(id) {
		return enrol.JoinAnswer{}, refuse(403, fmt.Errorf("%w: %q joined with it and has connected since (on the hub: pifleet remove-pi %s to enrol it again)", ErrUsedUp, id, id))
	}
	old, err := credentials.Load(e.cfg.PKI.Credentials)
	if err != nil {
		return enrol.JoinAnswer{}, err
	}
	if _, hub, _ := old.Find(id); hub {
		return enrol.JoinAnswer{}, refuse(409, fmt.Errorf("%q is a hub's id", id))
	}
	creds := old.Clone()
	ans, err := e.login(rec, id, creds)
	if err != nil {
		return enrol.JoinAnswer{}, err
	}
	if err := e.swap(old, creds); err != nil {
		return enrol.JoinAnswer{}, err
	}
	if _, err := e.cfg.Hub.DisconnectDevice(id); err != nil { // a session of the first login, if one began
		e.log.Warn("join again: could not close a session of the first login", "id", id, "err", err)
	}
	e.log.Info("Pi joined again with the same token (its first answer was lost); its first login is replaced", "id", id, "token_id", rec.ID)
	return ans, nil
}

// login makes id's login as rec says (password or certificate), sets it
// in creds and returns the answer that carries it.
func (e *Enroller) login(rec Record, id string, creds *credentials.File) (enrol.JoinAnswer, error) {
	ans := enrol.JoinAnswer{V: enrol.JoinVersion, ID: id, MQTTPort: e.cfg.MQTTPort, ServerName: ServerName,
		CAPEM: string(e.cfg.PKI.CA.CertPEM), HubKey: e.cfg.HubKey, Labels: rec.Labels}
	switch rec.Auth {
	case AuthCert:
		cert, key, err := e.cfg.PKI.CA.Issue(pki.Client, id, nil, e.cfg.Now(), certValidity)
		if err != nil {
			return enrol.JoinAnswer{}, err
		}
		entry, err := credentials.CertEntry(id, cert) // only this certificate logs in as id
		if err != nil {
			return enrol.JoinAnswer{}, err
		}
		creds.Set(false, entry)
		ans.CertPEM, ans.KeyPEM = string(cert), string(key)
	default:
		pw, err := credentials.NewPassword()
		if err != nil {
			return enrol.JoinAnswer{}, err
		}
		h, err := credentials.HashPassword(pw)
		if err != nil {
			return enrol.JoinAnswer{}, err
		}
		creds.Set(false, credentials.Entry{ID: id, PasswordHash: h})
		ans.Password = pw
	}
	return ans, nil
}

// admit adds the Pi's login to the credentials and swaps the broker's.
func (e *Enroller) admit(rec Record, asked string) (enrol.JoinAnswer, error) {
	id := rec.Device
	if id == "" {
		id = asked
		if err := wire.ValidateID(id); err != nil {
			return enrol.JoinAnswer{}, refuse(400, fmt.Errorf("id %q: %w (join --id NAME)", id, err))
		}
	}
	e.credMu.Lock()
	defer e.credMu.Unlock()
	old, err := credentials.Load(e.cfg.PKI.Credentials)
	if err != nil {
		return enrol.JoinAnswer{}, err
	}
	creds := old.Clone()
	if e.removing[id] {
		// Its old session and view entry are still being cut: admitting it
		// now would let that remove cut the new Pi off instead.
		return enrol.JoinAnswer{}, refuse(409, fmt.Errorf("the Pi named %q is being removed right now: join again in a moment", id))
	}
	if _, _, ok := creds.Find(id); ok {
		return enrol.JoinAnswer{}, refuse(409, fmt.Errorf("the fleet already has a Pi or hub named %q: join --id ANOTHER, or on the hub: pifleet remove-pi %s", id, id))
	}
	ans, err := e.login(rec, id, creds)
	if err != nil {
		return enrol.JoinAnswer{}, err
	}
	// Noted before the login is saved: if the answer is lost from here on
	// (a dropped connection, the hub stopping), the Pi may ask again.
	if err := e.cfg.Tokens.NoteJoin(rec.ID, id); err != nil {
		return enrol.JoinAnswer{ID: id}, err
	}
	if err := e.swap(old, creds); err != nil {
		return enrol.JoinAnswer{ID: id}, err // Join forgets the noted join
	}
	return ans, nil
}

// swap hands the new credentials to the broker, then writes them: a
// broker that did not take them (not running yet) leaves the file as it
// was, and a file that cannot be written puts the old logins back.
func (e *Enroller) swap(old, creds *credentials.File) error {
	if err := e.cfg.Hub.SetCredentials(creds); err != nil {
		return fmt.Errorf("the broker did not take the new logins: %w", err)
	}
	if err := creds.Write(e.cfg.PKI.Credentials); err != nil {
		_ = e.cfg.Hub.SetCredentials(old)
		return err
	}
	return nil
}

// ErrNoPi is a remove of a Pi the hub does not know.
var ErrNoPi = errors.New("no Pi")

// RemoveAnswer is DELETE /api/pis/{id}.
type RemoveAnswer struct {
	ID           string `json:"id"`
	Disconnected int    `json:"disconnected"` // live sessions closed
}

// Remove revokes a Pi: its login goes, its live session is closed at once
// and the view forgets it.
func (e *Enroller) Remove(ctx context.Context, id string) (RemoveAnswer, error) {
	if err := wire.ValidateID(id); err != nil {
		return RemoveAnswer{}, fmt.Errorf("id: %w", err)
	}
	e.credMu.Lock()
	old, err := credentials.Load(e.cfg.PKI.Credentials)
	if err == nil && e.removing[id] {
		err = fmt.Errorf("%q is being removed already", id)
	}
	if err == nil {
		creds := old.Clone()
		_, hub, enrolled := creds.Find(id)
		switch {
		case hub:
			err = fmt.Errorf("%q is a hub, not a Pi", id)
		case enrolled:
			creds.Remove(id)
			if err = e.cfg.Tokens.ForgetJoins(id); err == nil { // its token cannot bring it back (readmit)
				err = e.swap(old, creds)
			}
		case !e.cfg.Hub.HasDevice(id): // a Pi with no login but still in the view (a remove cut short) is forgotten below
			err = fmt.Errorf("%w %q: it has no login and the view does not know it", ErrNoPi, id)
		}
	}
	if err == nil {
		// Until its session is closed and the view forgets it, a join of
		// the same id is refused (admit): else the end of this remove
		// would cut off and forget the new Pi.
		e.removing[id] = true
		defer func() {
			e.credMu.Lock()
			delete(e.removing, id)
			e.credMu.Unlock()
		}()
	}
	e.credMu.Unlock()
	if err != nil {
		return RemoveAnswer{}, err
	}
	n, err := e.cfg.Hub.DisconnectDevice(id)
	if err != nil {
		return RemoveAnswer{}, err
	}
	if err := e.cfg.Hub.ForgetDevice(ctx, id); err != nil {
		return RemoveAnswer{}, fmt.Errorf("login removed and session closed, but: %w", err)
	}
	e.log.Info("Pi removed", "id", id, "sessions_closed", n)
	return RemoveAnswer{ID: id, Disconnected: n}, nil
}

// allow rate-limits join attempts per source address: 10 a minute.
func (e *Enroller) allow(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	e.limitMu.Lock()
	defer e.limitMu.Unlock()
	l, ok := e.perAddr[host]
	if !ok {
		if len(e.perAddr) > 10000 { // a flood of sources: start over rather than grow
			e.perAddr = map[string]*loglimit.Limit{}
		}
		l = &loglimit.Limit{Per: time.Minute, Burst: 10}
		e.perAddr[host] = l
	}
	ok, _ = l.Allow(e.cfg.Now())
	return ok
}

// logRefusal logs a refused join without the token's secret, at most 20
// lines a minute.
func (e *Enroller) logRefusal(remote string, req enrol.JoinRequest, err error) {
	ok, muted := e.refusals.Allow(e.cfg.Now())
	if !ok {
		return
	}
	tokenID := "?"
	if t, perr := enrol.ParseToken(req.Token); perr == nil {
		tokenID = t.ID
	}
	args := []any{"remote", remote, "token_id", tokenID, "asked_id", req.ID, "err", err}
	if muted > 0 {
		args = append(args, "muted_before", muted)
	}
	e.log.Warn("join refused", args...)
}

// Pending lists the usable tokens, never their secrets.
func (e *Enroller) Pending() []PendingToken {
	out := []PendingToken{}
	for _, r := range e.cfg.Tokens.Pending() {
		out = append(out, PendingToken{TokenID: r.ID, ID: r.Device, Labels: r.Labels, Auth: r.Auth,
			UsesLeft: r.UsesLeft, Created: r.Created, Expires: r.Expires})
	}
	return out
}

// Revoke ends a pending join token (DELETE /api/pis/pending/{token_id}):
// a Pi that tries it later is told it was revoked.
func (e *Enroller) Revoke(tokenID string) (PendingToken, error) {
	r, err := e.cfg.Tokens.Revoke(tokenID)
	if err != nil {
		return PendingToken{}, err
	}
	e.log.Info("join token revoked", "token_id", r.ID, "device", r.Device, "uses_left", r.UsesLeft)
	return PendingToken{TokenID: r.ID, ID: r.Device, Labels: r.Labels, Auth: r.Auth, UsesLeft: r.UsesLeft,
		Created: r.Created, Expires: r.Expires}, nil
}

// PendingToken is one entry of GET /api/pis/pending.
type PendingToken struct {
	TokenID  string    `json:"token_id"`
	ID       string    `json:"id,omitempty"`
	Labels   []string  `json:"labels,omitempty"`
	Auth     string    `json:"auth"`
	UsesLeft int       `json:"uses_left"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
}

// JoinAddr returns host:port for add-pi's line: host, else the first
// global address of this machine, with the listener's port.
func JoinAddr(host string, port int) string {
	if host == "" {
		host = firstGlobalAddr()
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

func firstGlobalAddr() string {
	addrs, _ := net.InterfaceAddrs()
	var v6 string
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || !ipn.IP.IsGlobalUnicast() {
			continue
		}
		if ipn.IP.To4() != nil {
			return ipn.IP.String()
		}
		if v6 == "" {
			v6 = ipn.IP.String()
		}
	}
	if v6 != "" {
		return v6
	}
	return "HUB"
}
