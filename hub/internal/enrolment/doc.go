// Package enrolment is the hub's side of `pifleet add-pi` →
// `pifleet-agent join`: the fleet's own CA and broker certificate in the
// state directory (FleetPKI), the join tokens, stored hashed (Store), and
// the Enroller, which answers joins on an HTTPS listener and serves the
// operator's add, pending and remove requests on the HTTP API. A join adds
// the Pi to the credentials file and swaps the broker's logins live; a
// remove takes the login out, closes the Pi's session at once and forgets
// it in the view. The token format and the Pi's files are internal/enrol.
package enrolment
