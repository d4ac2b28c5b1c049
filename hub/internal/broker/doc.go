// Package broker holds what the hub's broker settings need besides the
// embedded engine itself (hub/internal/natsengine): the `pifleet hub`
// flags for its TLS and logins (SecurityFlags), and the same per-device
// policy as config files for an external Mosquitto (MosquittoConfig, for
// `pifleet mosquitto-config`).
package broker
