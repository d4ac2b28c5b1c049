package wire

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pifleet/pifleet/internal/testenv/golden"
)

func ptr[T any](v T) *T { return &v }

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// examples are the protocol's normative examples: each is marshalled and
// compared with testdata/NAME.json (PROTOCOL.md refers to these files).
var examples = map[string]any{
	"state_online": State{V: 1, State: StateOnline, Epoch: 1795568144352, Time: t0, BootID: "0f4e6c1a-3b1d-4e0e-9a55-7f4b2f1d9c3e"},
	"state_lost":   State{V: 1, State: StateLost, Epoch: 1795568144352, Time: t0},
	"status": Status{V: 1, ID: "pi-kitchen", Hostname: "pi-kitchen", AgentVersion: "v0.1.0",
		BootTime: t0.Add(-time.Hour), Time: t0, Seq: 7, Epoch: 1795568144352, Labels: []string{"lab"}, Tools: []string{"aws"},
		Interfaces: []Interface{
			{Name: "lo", Up: true, Loopback: true},
			{Name: "eth0", MAC: "b8:27:eb:12:34:56", Up: true, DefaultRoute: true},
			{Name: "wlan0", MAC: "b8:27:eb:65:43:21", Up: true, SSID: "workshop"},
		},
		Addresses: []Address{
			{Address: "127.0.0.1", Prefix: 8, Family: IPv4, Interface: "lo", Loopback: true},
			{Address: "192.0.2.10", Prefix: 24, Family: IPv4, Interface: "eth0", Primary: true},
			{Address: "2001:db8::10", Prefix: 64, Family: IPv6, Interface: "eth0", Primary: true},
			{Address: "fe80::ba27:ebff:fe12:3456", Prefix: 64, Family: IPv6, Interface: "eth0", LinkLocal: true},
			{Address: "198.51.100.7", Prefix: 24, Family: IPv4, Interface: "wlan0"},
		},
		Health: Health{
			TempC: ptr(48.3), CPUFreqMHz: ptr(1200.0),
			Throttle: ptr(Throttle{Raw: 0x50005, UnderVoltage: true, Throttled: true, UnderVoltageOccurred: true, ThrottledOccurred: true, Source: "vcgencmd"}),
			Load1:    ptr(0.12), Load5: ptr(0.08), Load15: ptr(0.05),
			MemTotalB: ptr(uint64(969_736_192)), MemAvailB: ptr(uint64(712_000_000)),
			Disks:        []Disk{{Path: "/", TotalB: 31_000_000_000, FreeB: 20_000_000_000, UsedPercent: 35.5}},
			RootReadOnly: ptr(false), UptimeS: ptr(3600.0), ClockSynced: ptr(true), Docker: "reachable",
			Model: "Raspberry Pi 3 Model B Rev 1.2", Revision: "a02082",
			Console:  &Console{TTY: "ttyS0", GettyActive: true},
			Problems: []Problem{ProblemUnderVoltage, ProblemThrottled},
			Probes:   map[string]ProbeState{"thermal": ProbeOK, "throttle": ProbeOK, "wifi": ProbeAbsent},
		},
	},
	"hub_presence": HubPresence{V: 1, Hub: "hub", State: StateOnline, Epoch: 1795568100000, Time: t0, Version: "v0.1.0"},
	"command": Command{V: 1, ID: "c-01", Hub: "hub", Device: "pi-kitchen", ReplyTo: "pifleet/v1/devices/pi-kitchen/result/hub/c-01",
		Created: t0, Expires: t0.Add(time.Minute), Tool: "aws", Argv: []string{"ec2", "describe-instances", "--region", "eu-west-1"},
		KeyID: "hub", Sig: []byte{1, 2, 3}},
	"chunk": Chunk{V: 1, Kind: KindChunk, ID: "c-01", Device: "pi-kitchen", Seq: 1, Stream: Stdout, Data: "{\n  \"Reservations\": []\n}\n"},
	"final": Final{V: 1, Kind: KindFinal, ID: "c-01", Device: "pi-kitchen", Seq: 2, Outcome: OutcomeExited, ExitCode: 0, DurationMS: 1830, Bytes: 24,
		Output: "{\n  \"Reservations\": []\n}\n", ImageID: "sha256:5f3c3b2a9d1e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a"},
	"notice":          Notice{V: 1, Kind: KindNotice, ID: "c-01", Device: "pi-kitchen", Reason: NoticeDuplicate},
	"notice_accepted": Notice{V: 1, Kind: KindNotice, ID: "c-01", Device: "pi-kitchen", Reason: NoticeAccepted},
}

func TestGoldenJSON(t *testing.T) {
	for name, v := range examples {
		t.Run(name, func(t *testing.T) {
			got, err := json.MarshalIndent(v, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if !golden.Check(t, filepath.Join("testdata", name+".json"), append(got, '\n')) {
				t.Log("The wire JSON changed. If the change is intended, bump ProtocolVersion or keep it compatible, then run with -update.")
			}
		})
	}
}

// TestGoldenDecode decodes every golden file with the real decoders.
func TestGoldenDecode(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	st, err := DecodeState(read("state_online"))
	if err != nil || st.State != StateOnline || st.Epoch != 1795568144352 {
		t.Errorf("DecodeState = %+v, %v", st, err)
	}
	s, err := DecodeStatus(read("status"))
	if err != nil || s.ID != "pi-kitchen" || len(s.Addresses) != 5 || *s.Health.TempC != 48.3 {
		t.Errorf("DecodeStatus = %+v, %v", s, err)
	}
	h, err := DecodeHubPresence(read("hub_presence"))
	if err != nil || h.Hub != "hub" {
		t.Errorf("DecodeHubPresence = %+v, %v", h, err)
	}
	c, err := DecodeCommand(read("command"))
	if err != nil || c.Argv[1] != "describe-instances" {
		t.Errorf("DecodeCommand = %+v, %v", c, err)
	}
	r, err := DecodeResult(read("chunk"))
	if err != nil || r.Chunk == nil || r.Chunk.Seq != 1 {
		t.Errorf("DecodeResult(chunk) = %+v, %v", r, err)
	}
	r, err = DecodeResult(read("final"))
	if err != nil || r.Final == nil || r.Final.Outcome != OutcomeExited {
		t.Errorf("DecodeResult(final) = %+v, %v", r, err)
	}
	r, err = DecodeResult(read("notice"))
	if err != nil || r.Notice == nil || r.Chunk != nil || r.Final != nil || r.Notice.Reason != NoticeDuplicate || r.Notice.ID != "c-01" {
		t.Errorf("DecodeResult(notice) = %+v, %v", r, err)
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload string
		want    error
	}{
		{"not json", "hello", nil},
		{"future version", `{"v":99,"state":"online","epoch":1}`, ErrBadVersion},
		{"no version", `{"state":"online","epoch":1}`, ErrBadVersion},
		{"bad state", `{"v":1,"state":"zombie","epoch":1}`, nil},
		{"huge", `{"v":1,"state":"online","epoch":1,"boot_id":"` + strings.Repeat("x", MaxPayload) + `"}`, ErrTooLarge},
		{"wrong type", `{"v":"1"}`, nil},
		{"array", `[]`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeState([]byte(tc.payload))
			if err == nil {
				t.Fatalf("DecodeState(%.40q) = nil error, want one", tc.payload)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := DecodeStatus([]byte(`{"v":1,"id":"a/b"}`)); !errors.Is(err, ErrBadID) {
		t.Errorf("status with bad id: got %v, want ErrBadID", err)
	}
	if _, err := DecodeCommand([]byte(`{"v":1,"id":"c","hub":"h","device":"d","argv":[]}`)); err == nil {
		t.Errorf("command with empty argv accepted")
	}
	if _, err := DecodeResult([]byte(`{"v":1,"kind":"other"}`)); err == nil {
		t.Errorf("result of unknown kind accepted")
	}
	if _, err := DecodeResult([]byte(`{"v":1,"kind":"notice","id":"c1","device":"pi1","reason":7}`)); err == nil {
		t.Errorf("notice with a non-string reason accepted")
	}
}

func TestValidateID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"pi-kitchen", true}, {"raspberrypi", true}, {"a.b_c-1", true}, {strings.Repeat("a", MaxIDLen), true},
		{"", false}, {"a/b", false}, {"a+b", false}, {"a#", false}, {"a b", false}, {"-x", false}, {".x", false},
		{strings.Repeat("a", MaxIDLen+1), false}, {"pi\x00", false}, {"pï", false},
	} {
		if err := ValidateID(tc.id); (err == nil) != tc.ok {
			t.Errorf("ValidateID(%q) = %v, want ok=%v", tc.id, err, tc.ok)
		}
	}
	for in, want := range map[string]string{"raspberrypi": "raspberrypi", "my pi/3": "my-pi-3", "-x": "x", "": "pi", "#": "pi"} {
		if got := SanitizeID(in); got != want || ValidateID(got) != nil {
			t.Errorf("SanitizeID(%q) = %q, want %q (valid)", in, got, want)
		}
	}
}

func TestClientID(t *testing.T) {
	for _, tc := range []struct{ role, id, want string }{
		{ClientAgent, "pi1", "pifleet-agent-pi1"}, // no '.': the client id it always had
		{ClientAgent, "a_b", "pifleet-agent-a_b"},
		{ClientAgent, "a-b", "pifleet-agent-a-b"},
		{ClientAgent, "a.b", "pifleet-agent-a~b"},
		{ClientAgent, "a..b.", "pifleet-agent-a~~b~"},
		{ClientAgent, "pi.kitchen", "pifleet-agent-pi~kitchen"},
		{ClientHub, "hub", "pifleet-hub-hub"},
		{ClientHub, "hub.eu-1", "pifleet-hub-hub~eu-1"},
	} {
		if err := ValidateID(tc.id); err != nil {
			t.Fatalf("table id %q: %v", tc.id, err)
		}
		if got := ClientID(tc.role, tc.id); got != tc.want {
			t.Errorf("ClientID(%q, %q): got %q, want %q", tc.role, tc.id, got, tc.want)
		}
	}
	// '~' is what makes the mapping one-to-one: it is never part of an id.
	if ValidateID("a~b") == nil {
		t.Fatalf("ValidateID accepts %q: ClientID would map a.b and a~b to the same client id", "a~b")
	}
	ids := []string{"a", "a.b", "a_b", "a-b", "ab", "a.b.c", "a.b-c", "a-b.c", "a..b", "a.", "a_", "a-", "A.b", "0.0.0.0"}
	seen := map[string]string{}
	for _, role := range []string{ClientAgent, ClientHub} {
		for _, id := range ids {
			if err := ValidateID(id); err != nil {
				t.Fatalf("table id %q: %v", id, err)
			}
			cid := ClientID(role, id)
			if strings.ContainsAny(cid, ".*> \t\r\n\f") {
				t.Errorf("ClientID(%q, %q) = %q: contains a character nats-server refuses", role, id, cid)
			}
			key := role + " " + id
			if other, dup := seen[cid]; dup {
				t.Errorf("ClientID maps %q and %q to the same %q", other, key, cid)
			}
			seen[cid] = key
		}
	}
}

func TestTopics(t *testing.T) {
	for _, tc := range []struct {
		topic string
		want  ParsedTopic
		ok    bool
	}{
		{StateTopic("pi1"), ParsedTopic{Device: "pi1", Leaf: "state"}, true},
		{StatusTopic("pi1"), ParsedTopic{Device: "pi1", Leaf: "status"}, true},
		{CmdTopic("pi1"), ParsedTopic{Device: "pi1", Leaf: "cmd"}, true},
		{ResultTopic("pi1", "hub", "c1"), ParsedTopic{Device: "pi1", Leaf: "result", Hub: "hub", CmdID: "c1"}, true},
		{HubPresenceTopic("hub"), ParsedTopic{Hub: "hub", Leaf: "presence"}, true},
		{"pifleet/v1/devices/pi1/other", ParsedTopic{}, false},
		{"pifleet/v2/devices/pi1/state", ParsedTopic{}, false},
		{"pifleet/v1/devices/+/state", ParsedTopic{}, false},
		{"pifleet/v1/devices//state", ParsedTopic{}, false},
		{"elsewhere", ParsedTopic{}, false},
	} {
		got, err := ParseTopic(tc.topic)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseTopic(%q) = %+v, %v; want %+v ok=%v", tc.topic, got, err, tc.want, tc.ok)
		}
	}
	if got, want := ResultFilter("hub"), "pifleet/v1/devices/+/result/hub/+"; got != want {
		t.Errorf("ResultFilter = %q, want %q", got, want)
	}
}

func TestCommandSignature(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	otherPub, _, _ := ed25519.GenerateKey(nil)
	c := examples["command"].(Command)
	c.Sign(priv)
	if !c.Verify([]ed25519.PublicKey{otherPub, pub}) {
		t.Fatal("signed command does not verify with its key")
	}
	if c.Verify([]ed25519.PublicKey{otherPub}) {
		t.Error("command verifies with the wrong key")
	}
	// Survives a round trip through JSON (what the agent receives).
	b, _ := json.Marshal(c)
	got, err := DecodeCommand(b)
	if err != nil || !got.Verify([]ed25519.PublicKey{pub}) {
		t.Fatalf("round-tripped command: %v, verify=%v", err, got.Verify([]ed25519.PublicKey{pub}))
	}
	for name, tamper := range map[string]func(*Command){
		"argv":    func(c *Command) { c.Argv = append(c.Argv, "--x") },
		"expires": func(c *Command) { c.Expires = c.Expires.Add(time.Hour) },
		"device":  func(c *Command) { c.Device = "other" },
		"no sig":  func(c *Command) { c.Sig = nil },
	} {
		cc := got
		cc.Argv = append([]string(nil), got.Argv...)
		tamper(&cc)
		if cc.Verify([]ed25519.PublicKey{pub}) {
			t.Errorf("tampered %s still verifies", name)
		}
	}
}

func TestThrottleBits(t *testing.T) {
	for raw, want := range map[uint32]Throttle{
		0x0:     {},
		0x50000: {Raw: 0x50000, UnderVoltageOccurred: true, ThrottledOccurred: true},
		0x50005: {Raw: 0x50005, UnderVoltage: true, Throttled: true, UnderVoltageOccurred: true, ThrottledOccurred: true},
		0x80008: {Raw: 0x80008, SoftTempLimit: true, SoftTempLimitOccurred: true},
	} {
		if got := DecodeThrottle(raw); got != want {
			t.Errorf("DecodeThrottle(%#x) = %+v, want %+v", raw, got, want)
		}
	}
}

// TestStdlibOnly keeps the wire package a leaf: anyone can import it.
func TestStdlibOnly(t *testing.T) {
	names, err := filepath.Glob("*.go")
	if err != nil || len(names) == 0 {
		t.Fatalf("no Go files found: %v", err)
	}
	fset := token.NewFileSet()
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path := strings.Trim(imp.Path.Value, `"`)
			if first, _, _ := strings.Cut(path, "/"); strings.Contains(first, ".") {
				t.Errorf("%s imports %s: internal/wire must import only the standard library", name, path)
			}
		}
	}
}
