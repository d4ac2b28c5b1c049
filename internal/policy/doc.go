// Package policy decides which cloud-CLI commands a Pi may run. The hub
// checks a command before it signs and sends it, and the agent checks it
// again before it runs it, so both import this package from the root
// internal/.
//
// The pieces:
//
//   - Commands arrive as words, split by internal/shellwords (which also
//     splits alias expansions here): nothing is ever interpreted, so
//     "; rm -rf /" is three literal words.
//   - Tool describes a CLI by configuration alone: image, entrypoint, the
//     credential environment it may see, how many leading words form its
//     verb, its global flags, and its read/deny patterns.
//   - Config holds the tools, aliases ("instances" → "ec2
//     describe-instances"), roles (which mutating verbs a role may run) and
//     users (which roles a chat user holds).
//   - Policy.Check classifies a command as read-only, mutating (allowed only
//     for a role that grants it; the hub asks the person to confirm) or
//     denied, with the reason.
//
// Denied always, whatever the role (for aws): the iam, kms,
// secretsmanager, sso*, configure services; sts except get-caller-identity;
// verbs that hand out credentials or passwords (ec2 get-password-data, ecr
// get-authorization-token, ecr get-login-password, eks get-token, rds
// generate-db-auth-token, …); s3 cp/mv/sync with a local path; the flags
// --profile (the Pi decides which credentials it uses), --debug (botocore
// logs request headers, including the session token), --no-verify-ssl,
// --ca-bundle, --with-decryption, --cli-input-json/--cli-input-yaml; any
// argument that reads a local file (file://, fileb://); and --endpoint-url
// unless its host is in the tool's EndpointHosts (loopback by default, for
// local emulators). Unknown flags before the verb are refused, because the
// policy could not tell whether they take a value and would misread the
// verb.
package policy
