package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

// Tool describes a cloud CLI by configuration alone. The hub uses the
// classification fields; the agent also uses Image, Entrypoint and the
// credential fields.
type Tool struct {
	// Image is the local Docker image that has the CLI; it is never pulled
	// on every run.
	Image string `json:"image"`
	// ImageID pins Image to one image ("sha256:…", as `docker image
	// inspect --format '{{.Id}}'` prints it): the agent refuses to run
	// the tool when the tag names another image. Empty: the agent takes
	// the image the tag names at its first run and refuses a later change
	// unless AllowImageChange (someone else on the Docker Engine re-tagged
	// it, and the tool gets the credentials).
	ImageID          string `json:"image_id,omitempty"`
	AllowImageChange bool   `json:"allow_image_change,omitempty"`
	// Entrypoint is the program and leading arguments run in the image
	// (argv is appended; no shell).
	Entrypoint []string `json:"entrypoint"`
	// Env names the variables of the Pi's credential env file that the
	// container may see; others in the file are not passed.
	Env []string `json:"env,omitempty"`
	// SetEnv is fixed environment for the container (e.g. AWS_PAGER="").
	SetEnv map[string]string `json:"set_env,omitempty"`
	// EnvFile is a KEY=VALUE file on the Pi, read at each run, that holds
	// credentials (agent only; never sent over MQTT).
	EnvFile string `json:"env_file,omitempty"`
	// CredDir is a directory on the Pi mounted read-only at CredMount in
	// the container (e.g. an ~/.aws profile dir; agent only).
	CredDir   string `json:"cred_dir,omitempty"`
	CredMount string `json:"cred_mount,omitempty"`
	// VerbWords is how many leading positional words form the verb
	// ("ec2 describe-instances" is 2 for aws).
	VerbWords int `json:"verb_words"`
	// GlobalFlags are the flags allowed before the verb is complete, with
	// whether each takes a value. Any other flag there is refused.
	GlobalFlags map[string]bool `json:"global_flags,omitempty"`
	// Read are verb patterns that only read: space-separated words, each a
	// glob where '*' matches any run of characters ("* describe-*",
	// "s3 ls"). A pattern shorter than the verb matches its prefix.
	Read []string `json:"read"`
	// Deny are verb patterns refused whatever the role.
	Deny []string `json:"deny"`
	// DenyFlags are flags refused anywhere in the argv.
	DenyFlags []string `json:"deny_flags,omitempty"`
	// DenyValuePrefixes refuse any argument (or --flag=value) starting with
	// one of them (file:// reads files inside the container).
	DenyValuePrefixes []string `json:"deny_value_prefixes,omitempty"`
	// LocalPathVerbs are verbs whose positional arguments must all be
	// remote (RemotePrefix) or "-": a local path is refused.
	LocalPathVerbs []string `json:"local_path_verbs,omitempty"`
	RemotePrefix   string   `json:"remote_prefix,omitempty"`
	// EndpointFlag, when set, is allowed only with a URL whose host is in
	// EndpointHosts.
	EndpointFlag  string   `json:"endpoint_flag,omitempty"`
	EndpointHosts []string `json:"endpoint_hosts,omitempty"`
	// NoArgs are argv shapes allowed without a verb ("--version").
	NoArgs []string `json:"no_args,omitempty"`
}

// Config is the policy file (JSON). Zero fields take defaults.
type Config struct {
	// Tools by name (the chat verb: "aws"). The built-in "aws" is always
	// present; a file entry for "aws" overrides only the fields it sets.
	Tools map[string]Tool `json:"tools"`
	// Aliases expand a first word: "instances": "ec2 describe-instances"
	// (per tool: "aws.instances" or just "instances" for every tool).
	Aliases map[string]string `json:"aliases"`
	// Roles name verb patterns (as in Tool.Read, prefixed with the tool:
	// "aws ec2 start-instances", "aws ec2 *") that a role may run although
	// they mutate.
	Roles map[string][]string `json:"roles"`
	// Users maps a chat user id to the roles they hold (hub only).
	Users map[string][]string `json:"users"`
	// MaxArgs and MaxArgLen bound a command's argv.
	MaxArgs   int `json:"max_args"`
	MaxArgLen int `json:"max_arg_len"`
}

// DefaultAWS is the built-in aws tool.
func DefaultAWS() Tool {
	return Tool{
		Image:      "pifleet/awscli:latest",
		Entrypoint: []string{"aws"},
		Env: []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
			"AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"},
		SetEnv:    map[string]string{"AWS_PAGER": "", "HOME": "/tmp", "AWS_EC2_METADATA_DISABLED": "true"},
		CredMount: "/aws",
		VerbWords: 2,
		GlobalFlags: map[string]bool{
			"--region": true, "--output": true, "--query": true, "--endpoint-url": true,
			"--color": true, "--cli-read-timeout": true, "--cli-connect-timeout": true,
			"--cli-binary-format": true, "--no-paginate": false, "--no-sign-request": false,
			"--no-cli-pager": false, "--no-cli-auto-prompt": false, "--version": false,
		},
		Read: []string{
			"* describe-*", "* list-*", "* get-*", "* head-*", "* batch-get-*",
			"s3 ls", "sts get-caller-identity", "logs tail", "logs filter-log-events",
			"dynamodb query", "dynamodb scan", "ec2 search-*", "* help", "help",
		},
		Deny: []string{
			"iam", "kms", "secretsmanager", "sso", "sso-oidc", "sso-admin", "identitystore",
			"configure", "login", "history",
			"sts assume-role*", "sts get-session-token", "sts get-federation-token",
			"sts decode-authorization-message",
			"ec2 get-password-data", "ecr get-authorization-token", "ecr get-login*",
			"ecr-public get-authorization-token", "ecr-public get-login-password",
			"codeartifact get-authorization-token", "eks get-token", "rds generate-db-auth-token",
			"cognito-identity get-credentials-for-identity", "cognito-identity get-open-id-token*",
			"lightsail get-instance-access-details", "lightsail download-default-key-pair",
			"ssm get-parameter*", "ssm start-session", "ec2-instance-connect",
			"s3 presign",
		},
		DenyFlags: []string{"--profile", "--debug", "--no-verify-ssl", "--ca-bundle",
			"--with-decryption", "--cli-input-json", "--cli-input-yaml", "--generate-cli-skeleton"},
		DenyValuePrefixes: []string{"file://", "fileb://"},
		LocalPathVerbs:    []string{"s3 cp", "s3 mv", "s3 sync"},
		RemotePrefix:      "s3://",
		EndpointFlag:      "--endpoint-url",
		EndpointHosts:     []string{"127.0.0.1", "localhost", "::1"},
		NoArgs:            []string{"--version"},
	}
}

// DefaultAliases are the built-in aliases (they replace the seed's
// keyword intents).
var DefaultAliases = map[string]string{
	"instances": "ec2 describe-instances",
	"whoami":    "sts get-caller-identity",
	"buckets":   "s3 ls",
	"regions":   "ec2 describe-regions",
}

func (c *Config) ensureDefaults() {
	if c.Tools == nil {
		c.Tools = map[string]Tool{}
	}
	c.Tools["aws"] = merge(DefaultAWS(), c.Tools["aws"])
	for name, t := range c.Tools {
		if t.VerbWords == 0 {
			t.VerbWords = 2
		}
		if len(t.Entrypoint) == 0 {
			t.Entrypoint = []string{name}
		}
		c.Tools[name] = t
	}
	if c.Aliases == nil {
		c.Aliases = map[string]string{}
		for k, v := range DefaultAliases {
			c.Aliases[k] = v
		}
	}
	if c.MaxArgs == 0 {
		c.MaxArgs = 64
	}
	if c.MaxArgLen == 0 {
		c.MaxArgLen = 4096
	}
}

// merge overlays the fields o sets onto d. Lists replace, they do not
// append, so a file can narrow the defaults.
func merge(d, o Tool) Tool {
	if o.Image != "" {
		d.Image = o.Image
	}
	if o.Entrypoint != nil {
		d.Entrypoint = o.Entrypoint
	}
	if o.Env != nil {
		d.Env = o.Env
	}
	for k, v := range o.SetEnv {
		d.SetEnv[k] = v
	}
	if o.EnvFile != "" {
		d.EnvFile = o.EnvFile
	}
	if o.CredDir != "" {
		d.CredDir = o.CredDir
	}
	if o.CredMount != "" {
		d.CredMount = o.CredMount
	}
	if o.VerbWords != 0 {
		d.VerbWords = o.VerbWords
	}
	if o.GlobalFlags != nil {
		d.GlobalFlags = o.GlobalFlags
	}
	if o.Read != nil {
		d.Read = o.Read
	}
	if o.Deny != nil {
		d.Deny = append(d.Deny, o.Deny...) // the built-in denials stay
	}
	if o.DenyFlags != nil {
		d.DenyFlags = append(d.DenyFlags, o.DenyFlags...)
	}
	if o.EndpointHosts != nil {
		d.EndpointHosts = o.EndpointHosts
	}
	return d
}

// Load reads a JSON policy file over the defaults. An empty path gives
// the defaults.
func Load(path string) (*Policy, error) {
	var c Config
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read policy %s: %w", path, err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return nil, fmt.Errorf("parse policy %s: %w", path, err)
		}
	}
	return New(c)
}

// New validates c (filling defaults) and returns its Policy.
func New(c Config) (*Policy, error) {
	c.ensureDefaults()
	for name, t := range c.Tools {
		if t.Image == "" {
			return nil, fmt.Errorf("policy: tool %q: no image", name)
		}
	}
	for role, pats := range c.Roles {
		for _, p := range pats {
			tool, _, _ := strings.Cut(p, " ")
			if _, ok := c.Tools[tool]; !ok {
				return nil, fmt.Errorf("policy: role %q: pattern %q: unknown tool %q (patterns start with the tool name)", role, p, tool)
			}
		}
	}
	for user, roles := range c.Users {
		for _, r := range roles {
			if _, ok := c.Roles[r]; !ok {
				return nil, fmt.Errorf("policy: user %q: unknown role %q", user, r)
			}
		}
	}
	return &Policy{c: c}, nil
}

// ToolNames returns the configured tool names, sorted.
func (p *Policy) ToolNames() []string {
	var out []string
	for n := range p.c.Tools {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Tool returns the named tool.
func (p *Policy) Tool(name string) (Tool, bool) {
	t, ok := p.c.Tools[name]
	return t, ok
}

// RolesOf returns the roles a chat user holds.
func (p *Policy) RolesOf(user string) []string { return p.c.Users[user] }
