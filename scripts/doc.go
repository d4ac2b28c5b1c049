// Package scripts holds pifleet's shell tooling — build-deb.sh (nfpm .deb
// packages), deploy.sh (install on Pis over ssh) and provision (a Pi's
// identity) — and the Go tests that run them against real parts: dpkg into
// a throwaway root, an sshd on loopback, openssl and mosquitto_passwd.
package scripts
