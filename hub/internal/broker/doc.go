// Package broker runs the hub's embedded MQTT broker (mochi-mqtt v2). It is
// the default for small fleets and for `make run`; larger fleets point the
// hub and agents at an external broker (Mosquitto, EMQX, NATS) instead, and
// nothing in the hub depends on the broker being embedded.
package broker
