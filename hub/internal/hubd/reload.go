package hubd

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/pifleet/pifleet/internal/credentials"
)

// credentialSetter is an engine whose logins can be swapped while it runs:
// the fleet server's embedded nats engine.
type credentialSetter interface {
	SetCredentials(*credentials.File) error
	Refused() int64
}

// reloadCredentialsOnHUP re-reads the credentials file on SIGHUP
// (`systemctl reload pifleet-hub`), so newly provisioned Pis can log in
// without a hub restart. A bad file is logged and the old one kept.
func reloadCredentialsOnHUP(ctx context.Context, log *slog.Logger, path string, hook credentialSetter) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			c, err := credentials.Load(path)
			if err == nil {
				err = hook.SetCredentials(c)
			}
			if err != nil {
				log.Error("credentials not reloaded; keeping the old ones", "file", path, "err", err)
				continue
			}
			log.Info("credentials reloaded", "file", path, "refused_logins_so_far", hook.Refused())
		}
	}
}
