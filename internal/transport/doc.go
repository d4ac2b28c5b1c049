// Package transport turns pifleet's connection settings — broker URL
// (mqtt:// or mqtts://), CA file, client certificate and key, username and
// password file, server name — into paho client options, with errors that
// say what to fix. The hub and the agent both use it, so both ends speak
// TLS the same way: server certificates are verified by default, plaintext
// is refused for anything but loopback unless asked for, and a clock stuck
// at 1970 (a Pi without RTC before NTP) is named as the cause instead of a
// bare "certificate not yet valid".
//
// Subpackage pki makes the small CA and certificates that
// scripts/provision hands out; the credentials file and its password
// hashes are package credentials.
package transport
