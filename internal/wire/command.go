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
	OutcomeRejected Outcome = "rejected" // never ran: bad signature, expired, not for this device, policy
	OutcomeError    Outcome = "error"    // could not run: docker unreachable, image missing
)

// Final is the last record of a command, published QoS 1 and retained on
// ResultTopic until the hub has it (the hub clears it with an empty
// retained message), so a hub restart mid-command loses nothing. The one
// exception is the rejection of a command that did not verify (bad
// signature, another device): published once, not retained.
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
	// ImageID is the Docker image the command ran in ("sha256:…"), when
	// it got as far as checking it (added 2026-12-06; optional, so
	// version 1 readers ignore it).
	ImageID string `json:"image_id,omitempty"`
}

// Notice is an informational record on ResultTopic, published QoS 1 and
// never retained, so it can never replace the retained Final of the same
// command. It is never a result: a hub logs and counts it and keeps
// waiting for (or keeps) the real Final. Hubs that predate it reject its
// kind as an unknown result record and drop it, which is all it needs, so
// it stays within protocol v1.
type Notice struct {
	V      int          `json:"v"`
	Kind   string       `json:"kind"` // always "notice"
	ID     string       `json:"id"`
	Device string       `json:"device"`
	Reason NoticeReason `json:"reason"`
}

// NoticeReason says what a Notice reports. A hub logs a reason it does
// not know as it is.
type NoticeReason string

// NoticeReason values.
const (
	// NoticeDuplicate: the Pi already handled a command with this id (a
	// QoS 1 redelivery, or a replay of a command the hub signed) and did
	// not run it again. Sent only for commands that verify (a trusted hub
	// signature, this device), at most about once a minute per id. The
	// first delivery's records, and its retained Final, are untouched.
	NoticeDuplicate NoticeReason = "duplicate"
	// NoticeAccepted: the Pi got the command, it verified and passed every
	// check, its id is recorded, and it is starting (added 2026-12-06).
	// This is the hub's acknowledgement: commands travel at QoS 0 to the
	// Pi, and the hub sends the same signed command again until any
	// record for its id (this notice, a duplicate notice, a chunk or the
	// final) comes back or it expires. Sent once per id; a hub that
	// predates it logs it as a notice of an unknown reason.
	NoticeAccepted NoticeReason = "accepted"
)

// Kinds of result records.
const (
	KindChunk  = "chunk"
	KindFinal  = "final"
	KindNotice = "notice"
)

// ResultRecord is a Chunk, a Final or a Notice (exactly one is set).
type ResultRecord struct {
	Chunk  *Chunk
	Final  *Final
	Notice *Notice
}

type kindProbe struct {
	V    int    `json:"v"`
	Kind string `json:"kind"`
}

func (m *kindProbe) version() int { return m.V }

// DecodeResult decodes a Chunk, a Final or a Notice by its kind.
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
	case KindNotice:
		var n Notice
		if err := dec.Decode(&n); err != nil {
			return ResultRecord{}, fmt.Errorf("decode notice: %w", err)
		}
		return ResultRecord{Notice: &n}, nil
	}
	return ResultRecord{}, errorf("result kind %q: not chunk, final or notice", k.Kind)
}

func errorf(format string, a ...any) error { return fmt.Errorf(format, a...) }
