package wire

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"time"
)

// Command is sent by a hub to CmdTopic(device) with QoS 1. It is signed
// with the hub's ed25519 key over SigningBytes (the canonical JSON of the
// command with Sig empty). ReplyTo names the hub whose result topic the
// agent publishes to, so several hubs can share one broker.
type Command struct {
	V       int       `json:"v"`
	ID      string    `json:"id"`
	Hub     string    `json:"hub"`
	Device  string    `json:"device"`
	ReplyTo string    `json:"reply_to"` // result topic prefix: ResultTopic(device, hub, id)
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Tool    string    `json:"tool"` // e.g. "aws"
	Argv    []string  `json:"argv"` // never passed through a shell
	Role    string    `json:"role,omitempty"`
	KeyID   string    `json:"key_id,omitempty"`
	Sig     []byte    `json:"sig,omitempty"`
}

func (m *Command) version() int { return m.V }

// SigningBytes returns the bytes that are signed: the command's JSON with
// Sig cleared. encoding/json emits struct fields in declaration order, so
// this is deterministic for a given protocol version.
func (m Command) SigningBytes() []byte {
	m.Sig = nil
	b, _ := json.Marshal(m) // a struct of strings, times and slices cannot fail
	return b
}

// Sign sets Sig.
func (m *Command) Sign(key ed25519.PrivateKey) {
	m.Sig = ed25519.Sign(key, m.SigningBytes())
}

// Verify reports whether Sig is a valid signature by one of keys.
func (m Command) Verify(keys []ed25519.PublicKey) bool {
	if len(m.Sig) != ed25519.SignatureSize {
		return false
	}
	msg := m.SigningBytes()
	for _, k := range keys {
		if len(k) == ed25519.PublicKeySize && ed25519.Verify(k, msg, m.Sig) {
			return true
		}
	}
	return false
}

// DecodeCommand decodes and validates a Command payload (not its
// signature, which needs the agent's keys).
func DecodeCommand(b []byte) (Command, error) {
	var m Command
	if err := decode(b, &m); err != nil {
		return Command{}, err
	}
	for _, id := range []string{m.ID, m.Hub, m.Device} {
		if err := ValidateID(id); err != nil {
			return Command{}, err
		}
	}
	if len(m.Argv) == 0 {
		return Command{}, errorf("command %s: empty argv", m.ID)
	}
	return m, nil
}

// Stream names an output stream of a command.
type Stream string

// Stream values.
const (
	Stdout Stream = "stdout"
	Stderr Stream = "stderr"
)

// Chunk is a piece of a running command's output, published QoS 1 and not
// retained on ResultTopic. Seq starts at 1 and has no gaps; the Final
// record's Seq is one more than the last chunk's.
type Chunk struct {
	V      int    `json:"v"`
	Kind   string `json:"kind"` // always "chunk"
	ID     string `json:"id"`
	Device string `json:"device"`
	Seq    uint64 `json:"seq"`
	Stream Stream `json:"stream"`
	Data   string `json:"data"`
}

// Outcome says how a command ended.
type Outcome string

// Outcome values.
const (
	OutcomeExited   Outcome = "exited"   // ran; see ExitCode
	OutcomeTimeout  Outcome = "timeout"  // killed at its deadline
	OutcomeRejected Outcome = "rejected" // never ran: bad signature, expired, replay, policy
	OutcomeError    Outcome = "error"    // could not run: docker unreachable, image missing
)

// Final is the last record of a command, published QoS 1 and retained on
// ResultTopic until the hub has it (the hub clears it with an empty
// retained message), so a hub restart mid-command loses nothing.
type Final struct {
	V          int     `json:"v"`
	Kind       string  `json:"kind"` // always "final"
	ID         string  `json:"id"`
	Device     string  `json:"device"`
	Seq        uint64  `json:"seq"`
	Outcome    Outcome `json:"outcome"`
	ExitCode   int     `json:"exit_code"`
	DurationMS int64   `json:"duration_ms"`
	Bytes      int64   `json:"bytes"`
	Truncated  bool    `json:"truncated"`
	Error      string  `json:"error,omitempty"`
	// Output is the whole redacted output (capped) so that a hub that
	// missed chunks still has it.
	Output string `json:"output,omitempty"`
}

// Kinds of result records.
const (
	KindChunk = "chunk"
	KindFinal = "final"
)

// ResultRecord is either a Chunk or a Final.
type ResultRecord struct {
	Chunk *Chunk
	Final *Final
}

type kindProbe struct {
	V    int    `json:"v"`
	Kind string `json:"kind"`
}

func (m *kindProbe) version() int { return m.V }

// DecodeResult decodes a Chunk or a Final by its kind.
func DecodeResult(b []byte) (ResultRecord, error) {
	var k kindProbe
	if err := decode(b, &k); err != nil {
		return ResultRecord{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	switch k.Kind {
	case KindChunk:
		var c Chunk
		if err := dec.Decode(&c); err != nil {
			return ResultRecord{}, fmt.Errorf("decode chunk: %w", err)
		}
		return ResultRecord{Chunk: &c}, nil
	case KindFinal:
		var f Final
		if err := dec.Decode(&f); err != nil {
			return ResultRecord{}, fmt.Errorf("decode final: %w", err)
		}
		return ResultRecord{Final: &f}, nil
	}
	return ResultRecord{}, errorf("result kind %q: not chunk or final", k.Kind)
}

func errorf(format string, a ...any) error { return fmt.Errorf(format, a...) }
