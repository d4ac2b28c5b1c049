package policy

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pifleet/pifleet/internal/shellwords"
)

func testPolicy(t *testing.T) *Policy {
	t.Helper()
	p, err := New(Config{
		Roles: map[string][]string{
			"ops":   {"aws ec2 start-instances", "aws ec2 stop-instances", "aws s3 cp"},
			"admin": {"aws *"},
		},
		Users: map[string][]string{"U1": {"ops"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheck(t *testing.T) {
	p := testPolicy(t)
	tests := []struct {
		cmd   string
		roles []string
		class Class
		err   error
		verb  string
	}{
		{"ec2 describe-instances", nil, Read, nil, "ec2 describe-instances"},
		{"--region eu-west-1 ec2 describe-instances --output json", nil, Read, nil, "ec2 describe-instances"},
		{"--region=eu-west-1 ec2 describe-instances", nil, Read, nil, "ec2 describe-instances"},
		{"ec2 describe-instances --filters Name=tag:x,Values=1", nil, Read, nil, "ec2 describe-instances"},
		{"s3 ls", nil, Read, nil, "s3 ls"},
		{"s3 ls s3://bucket/x/", nil, Read, nil, "s3 ls"},
		{"sts get-caller-identity", nil, Read, nil, "sts get-caller-identity"},
		{"lambda list-functions", nil, Read, nil, "lambda list-functions"},
		{"s3api head-object --bucket b --key k", nil, Read, nil, "s3api head-object"},
		{"--version", nil, Read, nil, ""},
		{"help", nil, Read, nil, "help"},
		{"EC2 Describe-Instances", nil, Read, nil, "ec2 describe-instances"},
		{"instances", nil, Read, nil, "ec2 describe-instances"},
		{"instances --region us-east-1", nil, Read, nil, "ec2 describe-instances"},
		{"ec2 describe-instances --endpoint-url http://127.0.0.1:4566", nil, Read, nil, "ec2 describe-instances"},
		{"--endpoint-url=http://localhost:4566 ec2 describe-instances", nil, Read, nil, "ec2 describe-instances"},
		// literal metacharacters are just arguments
		{"ec2 describe-instances --query '; rm -rf /'", nil, Read, nil, "ec2 describe-instances"},

		// mutating
		{"ec2 start-instances --instance-ids i-1", nil, Mutating, ErrNeedsRole, "ec2 start-instances"},
		{"ec2 start-instances --instance-ids i-1", []string{"ops"}, Mutating, nil, "ec2 start-instances"},
		{"ec2 terminate-instances --instance-ids i-1", []string{"ops"}, Mutating, ErrNeedsRole, "ec2 terminate-instances"},
		{"ec2 terminate-instances --instance-ids i-1", []string{"ops", "admin"}, Mutating, nil, "ec2 terminate-instances"},
		{"s3 cp s3://a/b s3://c/d", []string{"ops"}, Mutating, nil, "s3 cp"},
		{"s3 rm s3://a/b", nil, Mutating, ErrNeedsRole, "s3 rm"},

		// always denied, even for admin
		{"iam list-users", []string{"admin"}, Denied, ErrDenied, "iam list-users"},
		{"IAM list-users", []string{"admin"}, Denied, ErrDenied, "iam list-users"},
		{"iam", []string{"admin"}, Denied, ErrDenied, "iam"},
		{"kms decrypt --ciphertext-blob x", []string{"admin"}, Denied, ErrDenied, "kms decrypt"},
		{"secretsmanager get-secret-value --secret-id x", []string{"admin"}, Denied, ErrDenied, "secretsmanager get-secret-value"},
		{"sso get-role-credentials", []string{"admin"}, Denied, ErrDenied, "sso get-role-credentials"},
		{"sts assume-role --role-arn x", []string{"admin"}, Denied, ErrDenied, "sts assume-role"},
		{"sts assume-role-with-web-identity", []string{"admin"}, Denied, ErrDenied, "sts assume-role-with-web-identity"},
		{"sts get-session-token", []string{"admin"}, Denied, ErrDenied, "sts get-session-token"},
		{"ec2 get-password-data --instance-id i-1", []string{"admin"}, Denied, ErrDenied, "ec2 get-password-data"},
		{"ecr get-authorization-token", []string{"admin"}, Denied, ErrDenied, "ecr get-authorization-token"},
		{"ecr get-login-password", []string{"admin"}, Denied, ErrDenied, "ecr get-login-password"},
		{"configure get aws_secret_access_key", []string{"admin"}, Denied, ErrDenied, "configure get"},
		{"s3 cp s3://a/b /tmp/x", []string{"admin"}, Denied, ErrDenied, "s3 cp"},
		{"s3 cp ./creds s3://a/b", []string{"admin"}, Denied, ErrDenied, "s3 cp"},
		{"s3 sync s3://a .", []string{"admin"}, Denied, ErrDenied, "s3 sync"},
		{"s3 mv --recursive s3://a local", []string{"admin"}, Denied, ErrDenied, "s3 mv"},
		{"ec2 describe-instances --profile admin", nil, Denied, ErrDenied, "ec2 describe-instances"},
		{"ec2 describe-instances --prof admin", nil, Denied, ErrDenied, "ec2 describe-instances"},
		{"ec2 describe-instances --debug", nil, Denied, ErrDenied, "ec2 describe-instances"},
		{"ssm get-parameters --names x --with-decryption", []string{"admin"}, Denied, ErrDenied, "ssm get-parameters"},
		{"ec2 run-instances --user-data file:///aws/credentials", []string{"admin"}, Denied, ErrDenied, "ec2 run-instances"},
		{"ec2 describe-instances --cli-input-json=fileb:///x", nil, Denied, ErrDenied, "ec2 describe-instances"},
		{"ec2 describe-instances --filters=file:///x", nil, Denied, ErrDenied, "ec2 describe-instances"},
		{"ec2 describe-instances --endpoint-url https://evil.example", nil, Denied, ErrDenied, "ec2 describe-instances"},
		{"ec2 describe-instances --endpoint-url http://127.0.0.1.evil.example", nil, Denied, ErrDenied, "ec2 describe-instances"},
		{"ec2 describe-instances --endpoint", nil, Denied, ErrDenied, "ec2 describe-instances"},
		// unknown flags before the verb could hide the real service
		{"--output iam list-users", nil, Denied, ErrDenied, "list-users"}, // iam is --output's value
		{"--bogus iam ec2 describe-instances", nil, Denied, ErrDenied, ""},
		{"ec2", nil, Denied, ErrDenied, "ec2"},
		{"", nil, Denied, ErrDenied, ""},
	}
	for _, tt := range tests {
		argv, err := shellwords.Split(tt.cmd)
		if err != nil {
			t.Fatal(err)
		}
		d, err := p.Check("aws", argv, tt.roles)
		if d.Class != tt.class || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("Check(%q, roles %v) = class %q, err %v; want class %q, err %v", tt.cmd, tt.roles, d.Class, err, tt.class, tt.err)
		}
		if d.Verb != tt.verb {
			t.Errorf("Check(%q).Verb = %q, want %q", tt.cmd, d.Verb, tt.verb)
		}
		if tt.class == Mutating && tt.err == nil && d.Role == "" {
			t.Errorf("Check(%q, roles %v).Role empty for an allowed mutating command", tt.cmd, tt.roles)
		}
	}
}

func TestCheckExpandsAlias(t *testing.T) {
	p := testPolicy(t)
	d, err := p.Check("aws", []string{"instances", "--region", "eu-west-1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ec2", "describe-instances", "--region", "eu-west-1"}
	if !reflect.DeepEqual(d.Argv, want) {
		t.Errorf("Argv = %q, want %q", d.Argv, want)
	}
}

func TestCheckUnknownTool(t *testing.T) {
	_, err := testPolicy(t).Check("gcloud", []string{"compute", "instances", "list"}, nil)
	if !errors.Is(err, ErrUnknownTool) {
		t.Errorf("got %v, want ErrUnknownTool", err)
	}
}

func TestLoadConfiguredTool(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "policy.json")
	conf := `{
  "tools": {
    "gcloud": {"image": "local/gcloud:1", "verb_words": 3,
               "global_flags": {"--project": true},
               "read": ["* * list", "* * describe"], "deny": ["iam", "secrets", "auth"],
               "env": ["CLOUDSDK_CORE_PROJECT"]},
    "aws": {"image": "local/aws:2", "deny": ["ec2 describe-regions"]}
  },
  "aliases": {"vms": "compute instances list", "aws.instances": "ec2 describe-instances"},
  "roles": {"ops": ["gcloud compute instances start"]},
  "users": {"U9": ["ops"]}
}`
	if err := os.WriteFile(f, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	tool, _ := p.Tool("aws")
	if tool.Image != "local/aws:2" || !reflect.DeepEqual(tool.Entrypoint, []string{"aws"}) {
		t.Errorf("aws tool = image %q entrypoint %q, want local/aws:2 [aws]", tool.Image, tool.Entrypoint)
	}
	if _, err := p.Check("aws", []string{"iam", "list-users"}, nil); !errors.Is(err, ErrDenied) {
		t.Errorf("aws iam after override: got %v, want built-in denial kept", err)
	}
	if _, err := p.Check("aws", []string{"ec2", "describe-regions"}, nil); !errors.Is(err, ErrDenied) {
		t.Errorf("aws ec2 describe-regions: got %v, want denied by the file", err)
	}
	for _, tt := range []struct {
		argv  string
		roles []string
		err   error
	}{
		{"vms", nil, nil},
		{"--project p compute instances list", nil, nil},
		{"compute instances start x", nil, ErrNeedsRole},
		{"compute instances start x", p.RolesOf("U9"), nil},
		{"auth print-access-token", []string{"ops"}, ErrDenied},
		{"instances", nil, ErrDenied}, // the aws-only alias does not apply
	} {
		argv, _ := shellwords.Split(tt.argv)
		_, err := p.Check("gcloud", argv, tt.roles)
		if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("gcloud %s (roles %v): got %v, want %v", tt.argv, tt.roles, err, tt.err)
		}
	}
	if got := p.ToolNames(); !reflect.DeepEqual(got, []string{"aws", "gcloud"}) {
		t.Errorf("ToolNames = %v", got)
	}
}

func TestLoadRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	for name, conf := range map[string]string{
		"unknown field": `{"tols": {}}`,
		"bad role tool": `{"roles": {"r": ["gcloud x"]}}`,
		"unknown role":  `{"users": {"U1": ["nope"]}}`,
		"no image":      `{"tools": {"az": {}}}`,
		"not json":      `{`,
	} {
		f := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		os.WriteFile(f, []byte(conf), 0o600)
		if _, err := Load(f); err == nil {
			t.Errorf("%s: Load succeeded, want an error", name)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file: Load succeeded")
	}
}

// FuzzCheck: any argv gets a decision and never a panic; an allowed
// decision is never for a verb the deny list names.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"ec2 describe-instances", "--region x iam list-users", "s3 cp s3://a ./b", "--prof x", "instances --endpoint-url http://[::1]:1"} {
		f.Add(s)
	}
	p, _ := New(Config{Roles: map[string][]string{"admin": {"aws *"}}})
	f.Fuzz(func(t *testing.T, s string) {
		argv, err := shellwords.Split(s)
		if err != nil {
			return
		}
		d, err := p.Check("aws", argv, []string{"admin"})
		if err == nil && (strings.HasPrefix(d.Verb, "iam") || strings.HasPrefix(d.Verb, "kms") || strings.HasPrefix(d.Verb, "secretsmanager")) {
			t.Errorf("Check(%q) allowed %q", argv, d.Verb)
		}
	})
}
