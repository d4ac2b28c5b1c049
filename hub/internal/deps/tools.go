//go:build tools

// Package deps pins the project's chosen libraries in go.mod while the code
// that uses them is being written. Delete an import once real code imports it.
package deps

import (
	_ "github.com/coreos/go-systemd/v22/daemon"
	_ "github.com/coreos/go-systemd/v22/dbus"
	_ "github.com/creack/pty"
	_ "github.com/docker/docker/api/types/container"
	_ "github.com/docker/docker/client"
	_ "github.com/docker/docker/pkg/stdcopy"
	_ "github.com/eclipse/paho.mqtt.golang"
	_ "github.com/mochi-mqtt/server/v2"
	_ "github.com/mochi-mqtt/server/v2/hooks/auth"
	_ "github.com/mochi-mqtt/server/v2/listeners"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/slack-go/slack"
	_ "github.com/slack-go/slack/slacktest"
	_ "github.com/slack-go/slack/socketmode"
	_ "github.com/vishvananda/netlink"
	_ "github.com/vishvananda/netns"
	_ "go.bug.st/serial"
	_ "go.bug.st/serial/enumerator"
	_ "go.etcd.io/bbolt"
	_ "golang.org/x/sys/unix"
	_ "golang.org/x/term"
	_ "periph.io/x/conn/v3/gpio/gpiotest"
	_ "periph.io/x/conn/v3/physic"
	_ "periph.io/x/host/v3"
	_ "periph.io/x/host/v3/rpi"
)
