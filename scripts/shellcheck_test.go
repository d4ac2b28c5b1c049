package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pifleet/pifleet/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if debDir != "" {
		os.RemoveAll(debDir)
	}
	os.Exit(code)
}

// TestShellcheck lints the scripts and the maintainer scripts as rendered
// into the packages (POSIX sh: dash runs them on a Pi).
func TestShellcheck(t *testing.T) {
	sc := testenv.RequireCommand(t, "shellcheck", "shellcheck")
	debs(t) // renders the maintainer scripts
	files := []string{"build-deb.sh", "build-test-images.sh", "build-tool-image.sh", "deploy.sh", "provision"}
	for _, pkg := range []string{"agent", "hub"} {
		for _, s := range []string{"postinst", "prerm", "postrm"} {
			files = append(files, filepath.Join(debDir, "build", "amd64", pkg, s))
		}
	}
	out, err := exec.Command(sc, append([]string{"-s", "sh", "-S", "warning"}, files...)...).CombinedOutput()
	if err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
	// The developer scripts are bash.
	bash := []string{"bench-agent.sh", "flood-agent.sh", "fuzz.sh", "install-test-deps.sh", "run-local.sh", "wait-dpkg-lock.sh", "../.ci/run"}
	out, err = exec.Command(sc, append([]string{"-s", "bash", "-S", "warning"}, bash...)...).CombinedOutput()
	if err != nil {
		t.Errorf("shellcheck (bash scripts): %v\n%s", err, out)
	}
}
