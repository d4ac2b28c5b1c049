package natsengine_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/natsengine"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/transport"
	"github.com/pifleet/pifleet/internal/transport/pki"
)

// Cluster settings that would carry the fleet in the clear, or that
// cannot form a cluster, are refused at Start.
func TestClusterOptionsRefused(t *testing.T) {
	f := newFleetPKI(t)
	routes := []string{"nats://192.0.2.1:6222", "nats://192.0.2.2:6222", "nats://192.0.2.3:6222"}
	for name, c := range map[string]natsengine.Options{
		"off loopback without TLS": {Credentials: f.creds, AllowPlaintext: true,
			Cluster: &natsengine.Cluster{Listen: "0.0.0.0:6222", Routes: routes}},
		"off loopback without logins": {TLS: f.tls(),
			Cluster: &natsengine.Cluster{Listen: "0.0.0.0:6222", Routes: routes}},
		"one route":     {Cluster: &natsengine.Cluster{Listen: "127.0.0.1:6222", Routes: []string{"nats://127.0.0.1:6222"}}},
		"no listener":   {Cluster: &natsengine.Cluster{Routes: routes}},
		"route not URL": {Cluster: &natsengine.Cluster{Listen: "127.0.0.1:6222", Routes: []string{"127.0.0.1:6222", "127.0.0.1:6223"}}},
	} {
		c.MQTTListen, c.NATSListen = "127.0.0.1:0", "127.0.0.1:0"
		if e, err := natsengine.Start(t.Context(), c); err == nil {
			e.Close()
			t.Errorf("%s: started, want an error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// Nodes prove themselves to each other with broker certificates of the
// fleet CA (mutual TLS): three such nodes form a cluster (JetStream has a
// leader: Start returns), and a fourth whose certificate comes from
// another CA is refused by them. (A new cluster needs every listed node
// once; after that a majority keeps it going.)
func TestClusterRoutesMutualTLS(t *testing.T) {
	f := newFleetPKI(t)
	ports := []int{testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)}
	var routes []string
	for _, p := range ports[:3] {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	logs := make([]*testenv.SyncBuffer, 4)
	opts := func(i int, tls *transport.ServerFiles) natsengine.Options {
		logs[i] = &testenv.SyncBuffer{}
		return natsengine.Options{MQTTListen: "127.0.0.1:0", NATSListen: "127.0.0.1:0", ServerName: fmt.Sprintf("n%d", i+1),
			TLS: tls, Credentials: f.creds, Logger: slog.New(slog.NewTextHandler(logs[i], nil)),
			Cluster: &natsengine.Cluster{Listen: fmt.Sprintf("127.0.0.1:%d", ports[i]), Routes: routes}}
	}
	var wg sync.WaitGroup
	engines := make([]*natsengine.Engine, 3)
	errs := make([]error, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			engines[i], errs[i] = natsengine.Start(ctx, opts(i, f.tls()))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v\n%s", i+1, err, logs[i])
		}
		t.Cleanup(func() { engines[i].Close() })
	}

	// A stranger: a broker certificate from another CA.
	other, _, err := pki.NewCA("another CA", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, k, err := other.Issue(pki.Server, "intruder", []string{"127.0.0.1"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	stranger := &transport.ServerFiles{CertFile: f.write(t, "x.pem", c), KeyFile: f.write(t, "x.key", k), ClientCAFile: f.ca} // it trusts the fleet: the fleet must refuse it
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	o := opts(3, stranger)
	o.Cluster.Routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[3]))
	if e, err := natsengine.Start(ctx, o); err == nil {
		e.Close()
		t.Fatal("a node with another CA's certificate joined the cluster")
	}
	testenv.Eventually(t, 10*time.Second, func() string {
		// Refused in the handshake: the stranger's certificate is not
		// the fleet's (it cannot even offer one the fleet CA signed).
		if fleet := logs[0].String() + logs[1].String() + logs[2].String(); !strings.Contains(fleet, "TLS route handshake error") {
			return "the fleet's nodes did not log refusing the stranger's route"
		}
		return ""
	})
}
