// Package runner runs one cloud-CLI command in a container through the
// Docker Engine API and streams its output.
//
// The argv goes to the tool's entrypoint as the container's Cmd: there is
// never a shell. The image must already be on the Pi (it is pulled only
// when Options.AllowPull is set, never on every run). Every container is
// hardened: non-root user, all capabilities dropped, no-new-privileges,
// read-only root with a tmpfs /tmp, memory/pids/CPU limits, no logging
// driver (nothing is written to the SD card), a configurable network mode,
// and a timeout that kills it. The runner removes the container itself on
// every path (and Sweep removes leftovers of a crashed agent, found by
// label), so none is left behind.
//
// An engine that goes away mid-command (its socket closed, the daemon
// restarting) ends the command at once with "docker engine unreachable
// (wait)": the result is not held back while the engine is gone. The
// container, which may still be running, is removed (killed) in the
// background once the engine answers again, trying every second at
// first and at most every 30 s later; Sweep removes it at the next start
// if the agent stops first.
//
// Docker gives the tmpfs at /tmp the mode of the image's own /tmp, so a
// tool image needs a world-writable sticky /tmp (Alpine and Debian have
// one; agent/Dockerfile.awscli and scripts/build-tool-image.sh make sure).
//
// Credentials come only from the Pi: the tool's env file (only the
// variables the tool allows are passed) or its credential directory,
// mounted read-only. Output is redacted line by line before it leaves the
// runner: AWS access key ids, secrets and session tokens after their
// labels, STS session tokens, and every value of the env file.
//
// The engine is the Engine interface (*client.Client from NewClient, the
// agent's one Docker client construction); enginetest beside it is a
// scripted fake, so the runner's own logic is tested without Docker.
package runner
