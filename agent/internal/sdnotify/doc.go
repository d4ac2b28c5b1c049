// Package sdnotify tells systemd how the agent is doing: READY=1 once it
// is connected (or after a bounded wait), a one-line STATUS=, WATCHDOG=1
// pings only while the agent's loops are alive, and STOPPING=1 on shutdown.
//
// Notifier is the small interface the daemon uses; Systemd implements it
// with github.com/coreos/go-systemd/v22/daemon (a no-op when NOTIFY_SOCKET
// is unset, e.g. when run by hand), and sdnotifytest.Recorder is the fake
// for tests of code that notifies.
package sdnotify
