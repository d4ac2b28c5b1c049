// Package credentials is the hub's credentials file
// (/etc/pifleet/credentials.json, written by scripts/provision): who may
// log in to the broker, as hashes only. It holds the password hash both
// brokers understand (Mosquitto's PBKDF2-SHA512 "$7$" format), so the
// embedded broker and a Mosquitto password_file share one file.
package credentials
