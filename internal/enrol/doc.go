// Package enrol is what the hub and a Pi share about enrolment
// (`pifleet add-pi` → `pifleet-agent join HOST:PORT TOKEN`): the join
// token, the pin check of the hub's certificate, the join request and
// answer on the wire, and the files a Pi gets — which scripts/provision
// packs into a tar for offline provisioning and the join writes in place.
// Standard library and pifleet's leaf packages only.
package enrol
