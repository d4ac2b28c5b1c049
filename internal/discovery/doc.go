// Package discovery finds a pifleet hub on the local network without a host
// name: the hub advertises itself with multicast DNS and DNS-SD (RFC 6762,
// RFC 6763) as an instance of _pifleet._tcp.local, and a Pi browses for it.
// Discovery only finds; trust still comes from the CA pin in the enrolment
// token, so a hostile answer can at worst point a Pi at a host that then
// fails the pin check.
//
// The service's SRV record carries the enrolment port; its TXT record
// carries v=1 (the record format), enrol=PORT, mqtt=PORT and pin=PREFIX,
// the first 16 hex digits of the SHA-256 pin of the fleet CA certificate,
// so a Pi holding a token picks the right hub when several answer. The
// prefix is public: FindPin drops other fleets' instances as they answer
// (so a flood of them cannot fill its list), listens two seconds past the
// first match, and returns every match, for join to try each in turn.
//
// The wire format comes from github.com/miekg/dns; the multicast sockets
// are this package's own (socket.go): UDP 5353 bound with SO_REUSEADDR and
// SO_REUSEPORT so the hub and the agent run beside avahi-daemon, which holds
// 5353 on Raspberry Pi OS, the group joined on every chosen interface,
// answers sent by multicast out of the interface the question came in on
// (a unicast answer to port 5353 may land in avahi's socket instead of the
// asker's), with only that interface's addresses. The advertiser announces
// itself at start and says goodbye (TTL 0) when stopped.
//
// Only neighbours are heard (RFC 6762 §11): a packet whose source is
// neither IPv6 link-local nor inside a prefix of the interface it came in
// on is dropped unread, so a hub on a public address tells nobody beyond
// its links its names, addresses or ports. A question costs bounded work:
// the header is checked and at most 16 questions and 32 known answers are
// parsed, each record is multicast on an interface at most once a second
// whichever question asked for it, and that limit (and the 20 a second
// for one-shot askers) comes before the known answers are compared.
//
// Everything received is checked before use (parse.go): bounded packet and
// record counts, ports 1..65535, the TXT version, a well-formed pin prefix,
// instance names of printable UTF-8; anything else is ignored.
package discovery
