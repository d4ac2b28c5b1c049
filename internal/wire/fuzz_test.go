package wire_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/pifleet/pifleet/internal/wire"
)

// The fuzzers feed arbitrary bytes to every decoder the hub and agent run
// on broker input. Properties: no panic; anything accepted re-encodes to
// JSON that is accepted again and encodes the same (no lossy or unstable
// decode); oversized input is ErrTooLarge. Seeds: the golden files plus
// testdata/fuzz/<Fuzzer>/ (checked in; add any crasher found there).
// CI: go test ./internal/wire -run '^$' -fuzz '^FuzzDecodeStatus$' -fuzztime 10s (one fuzzer per run).

func addGolden(f *testing.F, names ...string) {
	f.Helper()
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatalf("seed %s: %v", n, err)
		}
		f.Add(b)
	}
	for _, s := range []string{``, `{}`, `null`, `[]`, `{"v":1}`, `{"v":99}`, `{"v":-1}`, `{"v":1e309}`, `{"v":"1"}`, "{\"v\":1,\"id\":\"\\u0000\"}"} {
		f.Add([]byte(s))
	}
}

// stable checks that v, decoded from some input, re-encodes to bytes that
// decode (with dec) and re-encode identically.
func stable[T any](t *testing.T, v T, dec func([]byte) (T, error)) {
	t.Helper()
	b1, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("re-encode accepted value: %v", err)
	}
	v2, err := dec(b1)
	if err != nil {
		t.Fatalf("decoder rejects its own re-encoding %s: %v", b1, err)
	}
	b2, err := json.Marshal(v2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1, b2) {
		t.Fatalf("unstable decode:\n%s\n%s", b1, b2)
	}
}

func tooLarge(t *testing.T, b []byte, err error) {
	t.Helper()
	if len(b) > wire.MaxPayload && !errors.Is(err, wire.ErrTooLarge) {
		t.Fatalf("%d bytes: got %v, want ErrTooLarge", len(b), err)
	}
}

func FuzzDecodeState(f *testing.F) {
	addGolden(f, "state_online.json", "state_lost.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := wire.DecodeState(b)
		tooLarge(t, b, err)
		if err != nil {
			return
		}
		if !m.State.Valid() || m.V < 1 || m.V > wire.ProtocolVersion {
			t.Fatalf("accepted invalid state %+v", m)
		}
		stable(t, m, wire.DecodeState)
	})
}

func FuzzDecodeStatus(f *testing.F) {
	addGolden(f, "status.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := wire.DecodeStatus(b)
		tooLarge(t, b, err)
		if err != nil {
			return
		}
		if wire.ValidateID(m.ID) != nil {
			t.Fatalf("accepted invalid id %q", m.ID)
		}
		stable(t, m, wire.DecodeStatus)
	})
}

func FuzzDecodeCommand(f *testing.F) {
	addGolden(f, "command.json")
	pub, _, _ := ed25519.GenerateKey(nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := wire.DecodeCommand(b)
		tooLarge(t, b, err)
		if err != nil {
			return
		}
		for _, id := range []string{m.ID, m.Hub, m.Device} {
			if wire.ValidateID(id) != nil {
				t.Fatalf("accepted invalid id %q", id)
			}
		}
		if len(m.Argv) == 0 {
			t.Fatal("accepted empty argv")
		}
		// Whatever the bytes, nobody forges a signature by fuzzing.
		if m.Verify([]ed25519.PublicKey{pub}) {
			t.Fatal("fuzzed command verified against a fresh key")
		}
		stable(t, m, wire.DecodeCommand)
	})
}

func FuzzDecodeResult(f *testing.F) {
	addGolden(f, "chunk.json", "final.json", "notice.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := wire.DecodeResult(b)
		tooLarge(t, b, err)
		if err != nil {
			return
		}
		switch {
		case r.Chunk != nil && r.Final == nil && r.Notice == nil:
			stable(t, *r.Chunk, func(b []byte) (wire.Chunk, error) {
				r, err := wire.DecodeResult(b)
				if err != nil || r.Chunk == nil {
					return wire.Chunk{}, errors.Join(err, errors.New("not a chunk"))
				}
				return *r.Chunk, nil
			})
		case r.Final != nil && r.Chunk == nil && r.Notice == nil:
			stable(t, *r.Final, func(b []byte) (wire.Final, error) {
				r, err := wire.DecodeResult(b)
				if err != nil || r.Final == nil {
					return wire.Final{}, errors.Join(err, errors.New("not a final"))
				}
				return *r.Final, nil
			})
		case r.Notice != nil && r.Chunk == nil && r.Final == nil:
			stable(t, *r.Notice, func(b []byte) (wire.Notice, error) {
				r, err := wire.DecodeResult(b)
				if err != nil || r.Notice == nil {
					return wire.Notice{}, errors.Join(err, errors.New("not a notice"))
				}
				return *r.Notice, nil
			})
		default:
			t.Fatalf("accepted result with chunk %v, final %v, notice %v", r.Chunk != nil, r.Final != nil, r.Notice != nil)
		}
	})
}

func FuzzParseTopic(f *testing.F) {
	for _, s := range []string{
		wire.StateTopic("pi-1"), wire.StatusTopic("pi-1"), wire.CmdTopic("pi-1"),
		wire.ResultTopic("pi-1", "hub", "c1"), wire.HubPresenceTopic("hub"),
		wire.FilterAllStates, "pifleet/v1/devices//state", "pifleet/v1/devices/a/b/c/d/e", "pifleet/v1/", "x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		p, err := wire.ParseTopic(topic)
		if err != nil {
			return
		}
		// Accepted topics rebuild exactly from their parts.
		var back string
		switch p.Leaf {
		case wire.LeafState, wire.LeafStatus, wire.LeafCmd:
			back = wire.DeviceTopic(p.Device, p.Leaf)
		case wire.LeafResult:
			back = wire.ResultTopic(p.Device, p.Hub, p.CmdID)
		case "presence":
			back = wire.HubPresenceTopic(p.Hub)
		default:
			t.Fatalf("accepted topic %q with leaf %q", topic, p.Leaf)
		}
		if back != topic {
			t.Fatalf("ParseTopic(%q) = %+v, which rebuilds to %q", topic, p, back)
		}
	})
}
