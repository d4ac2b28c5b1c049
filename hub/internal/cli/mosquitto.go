package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pifleet/pifleet/hub/internal/broker"
	"github.com/pifleet/pifleet/internal/credentials"
	"github.com/pifleet/pifleet/internal/flagenv"
)

func init() {
	register("mosquitto-config", "write Mosquitto password, ACL and config files from the hub's credentials", runMosquittoConfig)
}

// runMosquittoConfig renders the same per-device policy the embedded broker
// enforces (a device publishes only below its own topics, reads only its
// own commands; only the hub sends commands) for an external Mosquitto.
func runMosquittoConfig(_ context.Context, env Env, args []string) error {
	fs := flagenv.NewFlagSet("pifleet mosquitto-config", "", "")
	var creds, out string
	var p broker.MosquittoPaths
	fs.StringVar(&creds, "credentials", "/etc/pifleet/credentials.json", "the hub's credentials file (from scripts/provision)")
	fs.StringVar(&out, "out", "", "directory to write pifleet.passwd, pifleet.acl and pifleet.conf into (empty: print ACL and config)")
	fs.StringVar(&p.Listener, "listener", "8883", `the TLS listener, "PORT [ADDRESS]"`)
	fs.StringVar(&p.CAFile, "ca-file", "", "CA file named in the config (default /etc/pifleet/ca.pem)")
	fs.StringVar(&p.CertFile, "cert-file", "", "broker certificate named in the config (default /etc/pifleet/broker.pem)")
	fs.StringVar(&p.KeyFile, "key-file", "", "broker key named in the config (default /etc/pifleet/broker.key)")
	if err := flagenv.Parse(fs, args, env); err != nil {
		return usageErr(err)
	}
	c, err := credentials.Load(creds)
	if err != nil {
		return err
	}
	if out != "" {
		p.PasswordFile = filepath.Join(out, "pifleet.passwd")
		p.ACLFile = filepath.Join(out, "pifleet.acl")
	}
	files, err := broker.MosquittoConfig(c, p)
	if err != nil {
		return err
	}
	if out == "" {
		fmt.Fprintf(env.Stdout, "# pifleet.acl\n%s\n# pifleet.conf\n%s", files.ACL, files.Conf)
		fmt.Fprintln(env.Stderr, "password hashes are written only with --out (mode 0600)")
		return nil
	}
	for _, f := range []struct {
		name, content string
		mode          os.FileMode
	}{{"pifleet.passwd", files.Passwords, 0o600}, {"pifleet.acl", files.ACL, 0o644}, {"pifleet.conf", files.Conf, 0o644}} {
		path := filepath.Join(out, f.name)
		if err := os.WriteFile(path, []byte(f.content), f.mode); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		fmt.Fprintln(env.Stdout, "wrote", path)
	}
	return nil
}
