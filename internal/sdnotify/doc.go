// Package sdnotify tells systemd how pifleet-agent and the pifleet hub are
// doing: READY=1 once started (the agent: once connected, or after a
// bounded wait), a one-line STATUS=, WATCHDOG=1 pings only while the
// program's loops are alive (RunWatchdog, one loop for both programs), and
// STOPPING=1 on shutdown. Agent ties it to the agent's status reports.
//
// Notifier is the small interface both programs use; Systemd implements it
// with github.com/coreos/go-systemd/v22/daemon (a no-op when NOTIFY_SOCKET
// is unset, e.g. when run by hand), and sdnotifytest.Recorder is the fake
// for tests of code that notifies.
package sdnotify
