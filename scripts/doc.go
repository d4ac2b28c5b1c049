// Package scripts holds pifleet's shell tooling — build-deb.sh (nfpm .deb
// packages), deploy.sh (install on Pis over ssh), provision (a Pi's
// identity) and build-tool-image.sh (the aws tool image from Debian
// packages, no registry) — and the Go tests that run them against real
// parts: dpkg into a throwaway root, an sshd on loopback, openssl and
// mosquitto_passwd, the Docker Engine.
package scripts
