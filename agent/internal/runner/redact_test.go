package runner

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/pifleet/pifleet/internal/wire"
)

func TestRedact(t *testing.T) {
	r := NewRedactor([]string{"hunter2-long-password", "short"})
	tests := []struct{ in, want string }{
		{"nothing secret here", "nothing secret here"},
		{"key AKIAIOSFODNN7EXAMPLE used", "key AKIA[REDACTED] used"},
		{"ASIAY34FZKBOKMUTVV7A", "ASIA[REDACTED]"},
		{"AKIAIOSFODNN7EXAMPLEXYZ is too long to be a key id", "AKIAIOSFODNN7EXAMPLEXYZ is too long to be a key id"},
		{"aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_access_key = [REDACTED]"},
		{`"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",`, `"SecretAccessKey": "[REDACTED]",`},
		{"AWS_SESSION_TOKEN=IQoJb3JpZ2luX2VjEHoaCXVzLWVhc3QtMSJGMEQCIDexample", "AWS_SESSION_TOKEN=[REDACTED]"},
		{`"SessionToken": "FwoGZXIvYXdzEBYaDHhBTEXAMPLETOKENVALUE1234"`, `"SessionToken": "[REDACTED]"`},
		{"token IQoJb3JpZ2luX2VjEHoaCXVzLWVhc3QtMSJGMEQCIDexample alone", "token [REDACTED] alone"},
		{"the password is hunter2-long-password!", "the password is [REDACTED]!"},
		{"short values stay", "short values stay"},
		{"region us-east-1", "region us-east-1"},
	}
	for _, tt := range tests {
		if got := r.Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestReadEnvFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "aws.env")
	os.WriteFile(p, []byte("# credentials\nAWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\nexport AWS_SECRET_ACCESS_KEY=\"wJalr/K7MDENG\"\n\nAWS_DEFAULT_REGION='eu-west-1'\n"), 0o600)
	env, err := ReadEnvFile(p)
	if err != nil {
		t.Fatal(err)
	}
	want := EnvFile{"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalr/K7MDENG", "AWS_DEFAULT_REGION": "eu-west-1"}
	if !reflect.DeepEqual(env, want) {
		t.Errorf("got %v, want %v", env, want)
	}
	s := env.Secrets()
	sort.Strings(s)
	if want := []string{"AKIAIOSFODNN7EXAMPLE", "wJalr/K7MDENG"}; !reflect.DeepEqual(s, want) {
		t.Errorf("Secrets() = %v, want %v (the region is not secret)", s, want)
	}
	os.WriteFile(p, []byte("garbage line\n"), 0o600)
	if _, err := ReadEnvFile(p); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("bad line: got %v, want an error naming line 1", err)
	}
	if _, err := ReadEnvFile(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("missing file: no error")
	}
}

type rec struct {
	s wire.Stream
	d string
}

func TestCollectorOrderRedactionAndCap(t *testing.T) {
	var got []rec
	c := newCollector(NewRedactor(nil), func(s wire.Stream, d string) { got = append(got, rec{s, d}) }, 1<<20)
	c.write(wire.Stdout, []byte("one\ntw"))
	c.write(wire.Stdout, []byte("o\n"))
	// a secret split across two writes is still found
	c.write(wire.Stderr, []byte("key AKIAIOSF"))
	c.write(wire.Stderr, []byte("ODNN7EXAMPLE\n"))
	c.write(wire.Stdout, []byte("three"))
	c.write(wire.Stderr, []byte("err\n")) // a whole line: out before stdout's partial one
	c.flush()
	want := []rec{{wire.Stdout, "one\n"}, {wire.Stdout, "two\n"}, {wire.Stderr, "key AKIA[REDACTED]\n"}, {wire.Stderr, "err\n"}, {wire.Stdout, "three"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	out, n, trunc := c.result()
	if out != "one\ntwo\nkey AKIA[REDACTED]\nerr\nthree" || n != 42 || trunc {
		t.Errorf("result = %q, %d bytes, truncated %v", out, n, trunc)
	}

	c = newCollector(NewRedactor(nil), func(wire.Stream, string) {}, 10)
	c.write(wire.Stdout, []byte(strings.Repeat("x\n", 100)))
	c.flush()
	out, n, trunc = c.result()
	if len(out) != 10 || n != 200 || !trunc {
		t.Errorf("capped: got %d bytes kept, %d counted, truncated %v; want 10, 200, true", len(out), n, trunc)
	}
}

// TestRedactionForms: a literal secret comes back redacted however a tool
// (or a hostile image) prints it — split over writes and around a write on
// the other stream, broken over two lines, in another letter case, with
// '/' escaped as in JSON — and ordinary output is not held back.
func TestRedactionForms(t *testing.T) {
	const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	type w struct {
		s wire.Stream
		d string
	}
	for _, tc := range []struct {
		name   string
		writes []w
		want   string // the whole result
	}{
		{"whole", []w{{wire.Stdout, "k=" + secret + "\n"}}, "k=[REDACTED]\n"},
		{"half, one byte on stderr, the rest", []w{{wire.Stdout, "a " + secret[:20]}, {wire.Stderr, "!"}, {wire.Stdout, secret[20:] + " b\n"}}, "a [REDACTED] b\n!"},
		{"split over two lines", []w{{wire.Stdout, "a " + secret[:13] + "\n"}, {wire.Stdout, secret[13:] + " b\n"}}, "a [REDACTED] b\n"},
		{"split over two lines with CRLF, in three writes", []w{{wire.Stdout, "a " + secret[:7]}, {wire.Stdout, secret[7:30] + "\r\n" + secret[30:]}, {wire.Stdout, "\n"}}, "a [REDACTED]\n"},
		{"upper case", []w{{wire.Stderr, strings.ToUpper(secret) + "\n"}}, "[REDACTED]\n"},
		{"lower case", []w{{wire.Stderr, strings.ToLower(secret) + "\n"}}, "[REDACTED]\n"},
		{"JSON-escaped slashes", []w{{wire.Stdout, `{"k":"` + strings.ReplaceAll(secret, "/", `\/`) + `"}` + "\n"}}, `{"k":"[REDACTED]"}` + "\n"},
		{"escaped and split over lines", []w{{wire.Stdout, strings.ReplaceAll(secret[:15], "/", `\/`) + "\n"}, {wire.Stdout, strings.ReplaceAll(secret[15:], "/", `\/`) + "\n"}}, "[REDACTED]\n"},
		{"ends without a line break", []w{{wire.Stdout, "x " + secret[:9]}, {wire.Stdout, secret[9:]}}, "x [REDACTED]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var streamed strings.Builder
			c := newCollector(NewRedactor([]string{secret}), func(_ wire.Stream, d string) { streamed.WriteString(d) }, 1<<20)
			for _, x := range tc.writes {
				c.write(x.s, []byte(x.d))
			}
			c.flush()
			out, _, _ := c.result()
			if out != tc.want {
				t.Errorf("result = %q, want %q", out, tc.want)
			}
			low := strings.ToLower(streamed.String())
			for _, part := range []string{secret[:12], secret[12:26], secret[26:]} {
				if strings.Contains(low, strings.ToLower(strings.ReplaceAll(part, "/", ""))) {
					t.Errorf("streamed output %q holds a piece of the secret (%q)", streamed.String(), part)
				}
			}
		})
	}

	// Ordinary lines go out at once; only a line ending in the start of a
	// secret waits for the next one.
	var got []string
	c := newCollector(NewRedactor([]string{secret}), func(_ wire.Stream, d string) { got = append(got, d) }, 1<<20)
	c.write(wire.Stdout, []byte("region eu-west-1\n"))
	if len(got) != 1 {
		t.Errorf("an ordinary line was held back: emitted %q", got)
	}
	c.write(wire.Stdout, []byte("key "+secret[:6]+"\n"))
	if len(got) != 1 {
		t.Errorf("a line ending in the start of the secret went out at once: %q", got)
	}
	c.write(wire.Stdout, []byte("unrelated\n"))
	if len(got) != 2 || got[1] != "key "+secret[:6]+"\nunrelated\n" {
		t.Errorf("after the next line: emitted %q, want the held line with it", got)
	}
}

func TestPullProgress(t *testing.T) {
	var lines []string
	err := pullProgress(strings.NewReader(`{"status":"Pulling from x","id":"latest"}
{"status":"Downloading","id":"abc","progress":"1"}
{"status":"Downloading","id":"abc","progress":"2"}
{"status":"Pull complete","id":"abc"}`), func(s string) { lines = append(lines, s) })
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"latest Pulling from x", "abc Downloading", "abc Pull complete"}; !reflect.DeepEqual(lines, want) {
		t.Errorf("got %q, want %q", lines, want)
	}
	if err := pullProgress(strings.NewReader(`{"error":"pull access denied"}`), func(string) {}); err == nil || err.Error() != "pull access denied" {
		t.Errorf("got %v, want the stream's error", err)
	}
}
