// Package natsengine runs the hub's embedded broker as a nats-server
// (v2.15) with MQTT and JetStream: Pis speak MQTT to it, the hub may also
// use NATS on a loopback port, and retained states and sessions live in a
// JetStream store under the state directory. Logins come from the
// credentials file ("$7$" passwords or fleet-CA client certificates) and
// each identity gets the fleet's topic policy (the one `pifleet
// mosquitto-config` writes for Mosquitto) as NATS subject permissions.
package natsengine
