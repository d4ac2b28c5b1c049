// Package api is the hub's HTTP JSON API: the fleet view for tools and the
// CLI, and POST /api/ask into the shared command engine.
package api
