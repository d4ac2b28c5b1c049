// Package chat is the command engine: text in, Reply out. Slack, the HTTP
// API (POST /api/ask) and the CLI (pifleet ask) all go through it, so they
// answer alike and an adapter adds no logic of its own.
package chat
