// Package enrolment is the hub's side of `pifleet add-pi` →
// `pifleet-agent join`: the fleet's own CA and broker certificate in the
// state directory (FleetPKI), the join tokens, stored hashed (Store), and
// the Enroller, which answers joins on an HTTPS listener and serves the
// operator's add, pending, revoke and remove requests on the HTTP API. A
// join adds the Pi to the credentials file (a certificate login pinned to
// the issued certificate's SHA-256) and swaps the broker's logins live; a
// Pi whose answer was lost may join again with the same single-use token
// and id for RetryWindow, until it shows up in the view. A remove takes
// the login out, closes the Pi's session at once and forgets it in the
// view; a join of that id waits for the end (409). The token format and
// the Pi's files are internal/enrol.
package enrolment
