package scripts

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

// TestRunLocal runs the README's main command (make run = make build +
// scripts/run-local.sh) with the real binaries: the hub with its embedded
// broker and an agent for this machine come up, the machine is online in
// the fleet view, and Ctrl-C (SIGINT) stops both. The default ports are
// held by this test when it can take them (otherwise something else holds
// them already, e.g. a system mosquitto on 1883): the script must move to
// free ones and say so.
func TestRunLocal(t *testing.T) {
	hub := testenv.Binary(t, "./hub", "pifleet")
	testenv.Binary(t, "./agent", "pifleet-agent") // the same directory
	for _, port := range []string{"1883", "8080"} {
		if ln, err := net.Listen("tcp", "127.0.0.1:"+port); err == nil {
			t.Cleanup(func() { ln.Close() })
		}
	}
	state := t.TempDir()
	out := &testenv.SyncBuffer{}
	cmd := exec.Command("./run-local.sh")
	// None of the developer's own PIFLEET_* settings (Slack tokens, …).
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PIFLEET_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PIFLEET_BIN="+filepath.Dir(hub), "PIFLEET_STATE="+state)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // whatever is left
		if t.Failed() {
			t.Logf("run-local output:\n%s", out)
		}
	})

	var api string
	testenv.Eventually(t, 60*time.Second, func() string {
		m := regexp.MustCompile(`fleet view \(JSON\):\s+(http://\S+)`).FindStringSubmatch(out.String())
		if m == nil {
			return "run-local has not said it is running"
		}
		api = m[1]
		return ""
	})
	if !strings.Contains(out.String(), "1883 is taken") || !strings.Contains(out.String(), "8080 is taken") {
		t.Errorf("run-local did not say it moved off the taken default ports:\n%s", out)
	}
	if strings.Contains(api, ":8080/") {
		t.Errorf("API at %s, on a taken port", api)
	}
	host, _ := os.Hostname()
	testenv.Eventually(t, 60*time.Second, func() string {
		resp, err := http.Get(api)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		var devs []struct {
			ID     string `json:"id"`
			Online bool   `json:"online"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&devs); err != nil {
			return err.Error()
		}
		for _, d := range devs {
			if d.Online && d.ID == wire.SanitizeID(host) {
				return ""
			}
		}
		return fmt.Sprintf("this machine (%s) is not online in %s: %+v", host, api, devs)
	})

	// Ctrl-C: the script stops the hub and the agent and exits.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("run-local did not stop on SIGINT")
	}
	testenv.Eventually(t, 30*time.Second, func() string {
		if _, err := http.Get(api); err == nil {
			return "the hub still answers after Ctrl-C"
		}
		return ""
	})
}
