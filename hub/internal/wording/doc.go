// Package wording is how the hub writes numbers and names for people, in
// one place for every front end (the chat engine, the alert policy, the
// fleet view's ordering): 10,000 with its thousands separator, "1 device"
// and "2 devices", and pi-4 before pi-10.
package wording
