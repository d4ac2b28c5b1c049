package enrol

// The join exchange on the wire: the Pi POSTs a JoinRequest as JSON to
// JoinPath on the hub's enrolment listener (HTTPS, checked against the
// token's pin) and gets a JoinAnswer, or an HTTP error with
// {"error": "one line"}.

// JoinPath is the enrolment listener's one endpoint.
const JoinPath = "/enrol/v1/join"

// DefaultPort is the enrolment listener's default port.
const DefaultPort = 8443

// JoinVersion is the version of JoinRequest and JoinAnswer.
//
// History: 1 (2026-12): first version.
const JoinVersion = 1

// JoinRequest is what a Pi sends.
type JoinRequest struct {
	V     int    `json:"v"`
	Token string `json:"token"`
	// ID is the id the Pi asks for (its host name, or --id); the token's
	// fixed id, when add-pi gave one, wins.
	ID string `json:"id,omitempty"`
}

// JoinAnswer is the Pi's identity and what it needs to trust the hub.
// Exactly one of Password or CertPEM/KeyPEM is set.
type JoinAnswer struct {
	V  int    `json:"v"`
	ID string `json:"id"`
	// MQTTPort is the broker's TLS port on the host the Pi joined through.
	MQTTPort int `json:"mqtt_port"`
	// ServerName is the name in the broker's certificate the Pi checks
	// (the hub's certificate carries it whatever address it is reached by).
	ServerName string   `json:"server_name,omitempty"`
	CAPEM      string   `json:"ca_pem"`
	HubKey     string   `json:"hub_key"` // the command-signing public key, base64
	Labels     []string `json:"labels,omitempty"`
	Password   string   `json:"password,omitempty"`
	CertPEM    string   `json:"cert_pem,omitempty"`
	KeyPEM     string   `json:"key_pem,omitempty"`
}

// ErrorAnswer is the body of a refused join.
type ErrorAnswer struct {
	Error string `json:"error"`
}
