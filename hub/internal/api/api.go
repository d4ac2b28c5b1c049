package api

import (
	"context"
	"crypto/subtle"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/hub/internal/fleet"
	"github.com/pifleet/pifleet/internal/wire"
)

// Device is the JSON shape of one device in the API. Field names are a
// stable contract for scripts and dashboards.
type Device struct {
	ID           string           `json:"id"`
	Online       bool             `json:"online"`
	State        string           `json:"state"`
	Epoch        uint64           `json:"epoch"`
	Hostname     string           `json:"hostname,omitempty"`
	AgentVersion string           `json:"agent_version,omitempty"`
	BootTime     *time.Time       `json:"boot_time,omitempty"`
	Labels       []string         `json:"labels,omitempty"`
	Addresses    []wire.Address   `json:"addresses"`
	Interfaces   []wire.Interface `json:"interfaces"`
	Health       *wire.Health     `json:"health"`
	Problems     []wire.Problem   `json:"problems"`
	LastSeen     *time.Time       `json:"last_seen"`
	Since        *time.Time       `json:"since,omitempty"`
}

// FromFleet converts a fleet device to its API shape.
func FromFleet(d *fleet.Device) Device {
	out := Device{ID: d.ID, Online: d.Online(), State: string(d.State), Epoch: d.Epoch,
		Addresses: []wire.Address{}, Interfaces: []wire.Interface{}, Problems: []wire.Problem{}}
	if out.State == "" {
		out.State = "unknown"
	}
	if !d.LastSeen.IsZero() {
		t := d.LastSeen.UTC()
		out.LastSeen = &t
	}
	if !d.Since.IsZero() {
		t := d.Since.UTC()
		out.Since = &t
	}
	if st := d.Status; st != nil {
		out.Hostname, out.AgentVersion, out.Labels = st.Hostname, st.AgentVersion, st.Labels
		if !st.BootTime.IsZero() {
			t := st.BootTime
			out.BootTime = &t
		}
		if st.Addresses != nil {
			out.Addresses = st.Addresses
		}
		if st.Interfaces != nil {
			out.Interfaces = st.Interfaces
		}
		h := st.Health
		out.Health = &h
		if h.Problems != nil {
			out.Problems = h.Problems
		}
	}
	return out
}

// Asker is the command engine.
type Asker interface {
	Ask(ctx context.Context, r chat.Request) chat.Reply
}

// Server serves the API.
type Server struct {
	Fleet  *fleet.Fleet
	Engine Asker
	// Token, when set, is required as "Authorization: Bearer TOKEN" on
	// every request except /healthz.
	Token  string
	Logger *slog.Logger
	// Health says whether the hub does its job (reaches its broker) and
	// why, for GET /healthz: 200 and "ok" or 503 and "not ok", then the
	// text. nil: always ok.
	Health func() (ok bool, text string)
	// Extra lets other parts of the hub add routes (e.g. /metrics).
	Extra map[string]http.Handler
	// Counters lets other parts of the hub (commands, Slack) show their
	// counters in GET /api/stats, each under its name next to the fleet's.
	Counters map[string]func() any
	// WarmEvery is how often, while device lists are asked for, the
	// devices' JSON is brought up to date in the background, so a list
	// finds it ready (default 5s; negative: never, and each list encodes
	// every report that arrived since the last).
	WarmEvery time.Duration

	enc deviceEncoder // GET /api/devices
}

// MaxBody caps request bodies.
const MaxBody = 64 << 10

// Handler returns the API's http.Handler.
func (s *Server) Handler() http.Handler {
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /api/devices", s.devices)
	mux.HandleFunc("GET /api/devices/{id}", s.device)
	mux.HandleFunc("GET /api/summary", s.summary)
	mux.HandleFunc("POST /api/ask", s.ask)
	// Without this, the catch-all "/" below answers GET /api/ask with a 404.
	mux.HandleFunc("/api/ask", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", "POST")
		writeErr(w, http.StatusMethodNotAllowed, "use POST for /api/ask")
	})
	mux.HandleFunc("GET /api/stats", s.stats)
	for p, h := range s.Extra {
		mux.Handle(p, h)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return s.auth(mux)
}

func (s *Server) auth(next http.Handler) http.Handler {
	if s.Token == "" {
		return localOnly(next)
	}
	want := []byte(s.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The scheme is case-insensitive (RFC 9110); the token is not.
		scheme, got, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if r.URL.Path != "/healthz" && (!strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(got), want) != 1) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pifleet"`)
			writeErr(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// localOnly guards the API without a token, which the hub serves on
// loopback only: a loopback socket is not enough when a web browser runs
// on the same machine. A page can make the browser send a request to
// 127.0.0.1 (a form POST needs no CORS preflight, so POST /api/ask would
// run a command), or rebind its own name to 127.0.0.1 and read the answers
// (a join token from POST /api/pis). So the request must be addressed to a
// loopback name or address (Host), and a browser's request must come from
// a loopback origin (Origin, Sec-Fetch-Site). The CLI and curl send
// neither Origin nor a foreign Host.
func localOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackHost(r.Host) {
			writeErr(w, http.StatusForbidden, "this API has no token, so it answers only requests addressed to localhost or a loopback address, not "+strconv.Quote(r.Host)+" (set --http-token-file to reach it by another name)")
			return
		}
		if o := r.Header.Get("Origin"); o != "" {
			u, err := url.Parse(o)
			if err != nil || !loopbackHost(u.Host) {
				writeErr(w, http.StatusForbidden, "this API has no token, so it refuses requests from web pages of other origins ("+strconv.Quote(o)+")")
				return
			}
		} else if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
			writeErr(w, http.StatusForbidden, "this API has no token, so it refuses cross-site requests from web pages")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// loopbackHost reports whether a Host header (host or host:port) names
// this machine's loopback: localhost, *.localhost, 127.0.0.0/8 or ::1.
func loopbackHost(hostport string) bool {
	h := hostport
	if sh, _, err := net.SplitHostPort(hostport); err == nil {
		h = sh
	}
	h = strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback()
}

// MaxLimit is the largest page GET /api/devices?limit= serves.
const MaxLimit = 10000

// devices serves GET /api/devices[?filter=F][&limit=N][&after=ID]. The
// body is always a JSON array of devices sorted by id. With limit (or
// after), it is one page: the devices after the id given (keyset paging,
// so a device added or removed between pages never shifts the rest), at
// most limit of them; X-Total-Count says how many the filter matched, and
// when more follow, X-Next-After names the cursor for the next page and
// Link gives its URL (rel="next"). Without limit and after the answer is
// the whole list, as before paging existed.
func (s *Server) devices(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, after, paged, err := pageParams(q)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err.Error())
		return
	}
	// Filter copies the devices under the fleet's read lock and releases
	// it: nothing below, the encoding and a slow client least of all,
	// holds the fleet up.
	devs, err := s.Fleet.Filter(q.Get("filter"))
	if err != nil {
		writeErr(w, http.StatusBadRequest, err.Error())
		return
	}
	if paged {
		total := len(devs)
		// Filter's list is sorted by id.
		start := sort.Search(len(devs), func(i int) bool { return devs[i].ID > after })
		devs = devs[start:]
		if limit > 0 && len(devs) > limit {
			devs = devs[:limit]
			next := devs[len(devs)-1].ID
			nq := url.Values{}
			for k, v := range q {
				nq[k] = v
			}
			nq.Set("after", next)
			w.Header().Set("X-Next-After", next)
			w.Header().Set("Link", "<"+r.URL.Path+"?"+nq.Encode()+`>; rel="next"`)
		}
		w.Header().Set("X-Total-Count", strconv.Itoa(total))
	}
	s.writeDevices(w, devs)
	s.enc.listed(s.Fleet, time.Now(), s.WarmEvery)
}

// pageParams reads limit and after. paged is false when neither is given.
func pageParams(q url.Values) (limit int, after string, paged bool, err error) {
	if _, ok := q["limit"]; ok {
		v := q.Get("limit")
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit {
			return 0, "", false, fmt.Errorf("limit %q: want a number of devices from 1 to %d", v, MaxLimit)
		}
		limit, paged = n, true
	}
	if _, ok := q["after"]; ok {
		after, paged = q.Get("after"), true
		// Empty means from the start; any other cursor is a device id
		// (it need not exist any more: the page starts after it).
		if after != "" {
			if problem := wire.IDProblem(after); problem != "" {
				return 0, "", false, fmt.Errorf("after %q is not a valid device id: %s", after, problem)
			}
		}
	}
	return limit, after, paged, nil
}

// writeDevices streams devs as a JSON array, one device per line: the
// answer is never built whole in memory, and each device's status part is
// encoded once per report (deviceEncoder), so 10,000 devices cost little
// more than copying their bytes to the socket when most are cached, and
// all CPUs' share of encoding them when none are.
func (s *Server) writeDevices(w http.ResponseWriter, devs []fleet.Device) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if len(devs) == 0 {
		io.WriteString(w, "[]\n")
		return
	}
	parts := s.enc.statusParts(devs, runtime.GOMAXPROCS(0))
	buf := make([]byte, 0, 64<<10)
	for i := range devs {
		if i == 0 {
			buf = append(buf, "[\n"...)
		} else {
			buf = append(buf, ",\n"...)
		}
		buf = appendDevice(buf, &devs[i], parts[i])
		if len(buf) >= 32<<10 {
			if _, err := w.Write(buf); err != nil {
				return // the client went away
			}
			buf = buf[:0]
		}
	}
	buf = append(buf, "\n]\n"...)
	w.Write(buf)
}

func (s *Server) summary(w http.ResponseWriter, r *http.Request) {
	devs, err := s.Fleet.Filter(r.URL.Query().Get("filter"))
	if err != nil {
		writeErr(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, fleet.Summarize(devs))
}

func (s *Server) device(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if wire.IDProblem(id) != "" {
		writeErr(w, http.StatusBadRequest, s.Fleet.UnknownID(id).Error())
		return
	}
	d, ok := s.Fleet.Get(id)
	if !ok {
		writeErr(w, http.StatusNotFound, s.Fleet.UnknownID(id).Error())
		return
	}
	writeJSON(w, http.StatusOK, FromFleet(&d))
}

// askRequest is the body of POST /api/ask. The asker is always "http": a
// client cannot claim another user's roles (the bearer token is the only
// identity the API knows).
type askRequest struct {
	Text string `json:"text"`
}

func (s *Server) ask(w http.ResponseWriter, r *http.Request) {
	var req askRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	if err := dec.Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeErr(w, http.StatusRequestEntityTooLarge, "request body too large")
			return
		}
		writeErr(w, http.StatusBadRequest, `want a JSON body like {"text": "fleet"}: `+err.Error())
		return
	}
	creq := chat.Request{Text: req.Text, User: "http", Source: "http"}
	if wantsStream(r) && s.askStream(w, r, creq) { // progress, then the reply (askstream.go)
		return
	}
	reply := s.Engine.Ask(r.Context(), creq)
	writeJSON(w, http.StatusOK, reply.Plain()) // the API's JSON is plain text: no marks
}

// stats answers GET /api/stats: the fleet's counters, and each of
// Counters under its name. Every name is snake_case, as in /api/devices:
// the names of Counters and the fields of the structs they return are
// turned into it here (a field's json tag wins), so no part of the hub
// can bring CamelCase into the API. Map keys are data (reasons, ids) and
// kept.
func (s *Server) stats(w http.ResponseWriter, _ *http.Request) {
	out, _ := snakeFields(reflect.ValueOf(s.Fleet.Stats())).(map[string]any)
	if out == nil {
		out = map[string]any{}
	}
	for name, get := range s.Counters {
		out[snakeCase(name)] = snakeFields(reflect.ValueOf(get()))
	}
	writeJSON(w, http.StatusOK, out)
}

// snakeFields returns v with every struct turned into a map keyed by its
// fields' snake_case names (or json tags); maps, slices and pointers are
// walked, anything that marshals itself is left alone.
func snakeFields(v reflect.Value) any {
	if !v.IsValid() {
		return nil
	}
	if v.CanInterface() {
		switch v.Interface().(type) {
		case json.Marshaler, encoding.TextMarshaler:
			return v.Interface()
		}
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return snakeFields(v.Elem())
	case reflect.Struct:
		m := map[string]any{}
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = snakeCase(f.Name)
			}
			m[name] = snakeFields(v.Field(i))
		}
		return m
	case reflect.Map:
		if v.IsNil() {
			return map[string]any{}
		}
		m := make(map[string]any, v.Len())
		for it := v.MapRange(); it.Next(); {
			m[fmt.Sprint(it.Key().Interface())] = snakeFields(it.Value())
		}
		return m
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return []any{}
		}
		l := make([]any, v.Len())
		for i := range l {
			l[i] = snakeFields(v.Index(i))
		}
		return l
	}
	return v.Interface()
}

// snakeCase turns a Go name into the API's: BadRecords → bad_records,
// LastSnapshotMS → last_snapshot_ms, MQTTRejected → mqtt_rejected;
// snake_case stays.
func snakeCase(s string) string {
	r := []rune(s)
	var b strings.Builder
	for i, c := range r {
		if unicode.IsUpper(c) {
			prevLower := i > 0 && (unicode.IsLower(r[i-1]) || unicode.IsDigit(r[i-1]))
			acronymEnd := i > 0 && unicode.IsUpper(r[i-1]) && i+1 < len(r) && unicode.IsLower(r[i+1])
			if (prevLower || acronymEnd) && !strings.HasSuffix(b.String(), "_") {
				b.WriteByte('_')
			}
			c = unicode.ToLower(c)
		}
		b.WriteRune(c)
	}
	return b.String()
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Error is the JSON body of every error response.
type Error struct {
	Error string `json:"error"`
}

func writeErr(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, Error{Error: strings.TrimSuffix(msg, ".")})
}

// healthz answers a health check: the status code carries the verdict,
// the text the reasons (broker connection, the last message's age).
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.Health == nil {
		io.WriteString(w, "ok\n")
		return
	}
	ok, text := s.Health()
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "not ok\n"+text)
		return
	}
	io.WriteString(w, "ok\n"+text)
}
