package dispatch

import (
	"strings"
	"testing"

	"github.com/pifleet/pifleet/internal/wire"
)

func TestRenderLate(t *testing.T) {
	short := Result{ID: "c1", Device: "pi1", Tool: "aws", Argv: []string{"s3", "ls"}, Output: "a\nb\n",
		Final: wire.Final{Outcome: wire.OutcomeExited, DurationMS: 3200}}
	r := RenderLate(short, 0)
	if want := "⏳ Late result from pi1 for `aws s3 ls`: ✅ exit 0 in 3.2s\n  a\n  b\n"; r.Text != want || r.Problem || len(r.Files) != 0 {
		t.Errorf("short: %+v, want text %q, no problem, no file", r, want)
	}
	if len(r.Sections) != 1 || r.Sections[0].Text != "⏳ Late result from *pi1* for `aws s3 ls`: ✅ exit 0 in 3.2s\n```\na\nb\n```" {
		t.Errorf("short sections: %+v", r.Sections)
	}
	long := short
	long.Output = strings.Repeat("row\n", 7)
	long.Final.ExitCode = 1
	r = RenderLate(long, 0)
	if !r.Problem || len(r.Files) != 1 || r.Files[0].Name != "pi1-s3-ls.txt" || r.Files[0].Content != long.Output ||
		strings.Count(r.Sections[0].Text, "row") != DefaultFirstLines {
		t.Errorf("long: %+v, want a problem, %d lines inline and the whole output as pi1-s3-ls.txt", r, DefaultFirstLines)
	}
	// The final of a command the hub no longer knows (no state file).
	unknown := RenderLate(Result{ID: "c9", Device: "pi1", Output: "x\n", Final: wire.Final{Outcome: wire.OutcomeExited}}, 2)
	if !strings.HasPrefix(unknown.Text, "⏳ Late result from pi1 for `command c9`: ✅ exit 0") {
		t.Errorf("unknown command: %q", unknown.Text)
	}
}

// Output files are named after the Pi and the command's first words.
func TestOutputFileName(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want string
	}{
		{[]string{"ec2", "describe-instances", "--region", "eu-west-1"}, "pi-kitchen-ec2-describe-instances.txt"},
		{[]string{"s3", "cp", "s3://bucket/key", "-"}, "pi-kitchen-s3-cp-s3bucketkey.txt"},
		{[]string{"--version"}, "pi-kitchen-aws.txt"},
		{nil, "pi-kitchen-aws.txt"},
		{[]string{"../../etc", "passwd"}, "pi-kitchen-etc-passwd.txt"},
	} {
		if got := outputFileName("pi-kitchen", "aws", tc.argv); got != tc.want {
			t.Errorf("outputFileName(%q) = %q, want %q", tc.argv, got, tc.want)
		}
	}
}
