package broker_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/broker"
)

// connectPacket is an MQTT 3.1.1 CONNECT (clean session) for id.
func connectPacket(id string) []byte {
	body := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, byte(len(id))}, id...)
	return append([]byte{0x10, byte(len(body))}, body...)
}

// A closing broker answers or closes every connection it accepts: none
// is left hanging until the client's connect timeout (paho's is 30 s,
// the agent's 10 s). Clients reconnect the moment their connection
// drops, while the broker is still closing; mochi disconnected its
// clients before it stopped listening and took, and never served nor
// closed, the connections that came in between. Here 50 clients
// reconnect as soon as the broker drops them, 20 times over (one time in
// three, one of them hit that window).
func TestCloseLeavesNoConnectionHanging(t *testing.T) {
	for range 20 {
		closeWithClientsReconnecting(t)
	}
}

func closeWithClientsReconnecting(t *testing.T) {
	b, err := broker.Start(broker.Options{Listen: "127.0.0.1:0", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(b.URL(), "mqtt://")
	var wg sync.WaitGroup
	var mu sync.Mutex
	var hung []string
	ready := make(chan struct{}, 50)
	for i := range 50 {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("c%d", i)
			conn.Write(connectPacket(id))
			buf := make([]byte, 4)
			if _, err := io.ReadFull(conn, buf); err != nil || buf[0] != 0x20 {
				t.Errorf("%s: no CONNACK: %v %x", id, err, buf)
			}
			ready <- struct{}{}
			io.Copy(io.Discard, conn) // until the broker drops it
			conn.Close()
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return // refused: the broker is gone, as it should be
			}
			defer conn.Close()
			conn.Write(connectPacket(id))
			conn.SetReadDeadline(time.Now().Add(3 * time.Second))
			if _, err := io.ReadFull(conn, buf); errors.Is(err, os.ErrDeadlineExceeded) {
				mu.Lock()
				hung = append(hung, id)
				mu.Unlock()
			}
		}()
	}
	for range 50 {
		<-ready
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if len(hung) > 0 {
		t.Fatalf("%d connections made while the broker closed got no answer and were not closed: %v", len(hung), hung)
	}
}
