// Package api is the hub's HTTP JSON API: the fleet view for tools and the
// CLI, and POST /api/ask into the shared command engine. A client that
// accepts application/x-ndjson gets a slow command's progress as it runs
// (askstream.go), as `pifleet ask` shows it.
package api
