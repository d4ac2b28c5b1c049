package enrol

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// PinLen is the size of a pin: a SHA-256.
const PinLen = sha256.Size

// Pin is the SHA-256 of the fleet CA certificate's DER: what a Pi trusts
// the hub by, before it has the CA.
type Pin [PinLen]byte

// PinOf returns the pin of a certificate (its DER bytes).
func PinOf(der []byte) Pin { return sha256.Sum256(der) }

// String is the pin in hex.
func (p Pin) String() string { return hex.EncodeToString(p[:]) }

// ErrPinMismatch is a hub whose certificate chain does not hold the
// pinned CA: another machine on the address, or another fleet's hub.
var ErrPinMismatch = errors.New("the hub's certificate is not from the fleet CA this token was made for")

// ErrClock is the right hub seen through a clock that is far off.
var ErrClock = errors.New("this machine's clock")

// VerifyPinned checks a TLS peer's chain against a pin: one certificate
// the peer sent must be a CA whose DER hashes to pin, and the leaf must be
// a server certificate that CA signed. There is no trust on first use and
// no system root involved. The host name is not checked: the pinned CA is
// the fleet's own, and the Pi may know the hub by any name or address.
func VerifyPinned(pin Pin, peers []*x509.Certificate) error {
	if len(peers) == 0 {
		return ErrPinMismatch
	}
	var ca *x509.Certificate
	for _, c := range peers {
		if PinOf(c.Raw) == pin {
			ca = c
			break
		}
	}
	if ca == nil || !ca.IsCA {
		return fmt.Errorf("%w (pin %.16s…)", ErrPinMismatch, pin)
	}
	if peers[0].IsCA {
		return fmt.Errorf("%w: it presented a CA certificate, not a server certificate", ErrPinMismatch)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := peers[0].Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			// The right hub, but this machine's clock is off (a Pi has no
			// real-time clock): say so rather than blame the hub.
			return fmt.Errorf("%w (%s) is outside the hub certificate's validity: set the clock (timedatectl) and try again", ErrClock, time.Now().UTC().Format(time.RFC3339))
		}
		return fmt.Errorf("%w: %v", ErrPinMismatch, err)
	}
	return nil
}

// PinnedTLS is a client TLS configuration that trusts exactly the hubs
// whose chain passes VerifyPinned.
func PinnedTLS(pin Pin) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by the pin check below
		VerifyConnection: func(cs tls.ConnectionState) error {
			return VerifyPinned(pin, cs.PeerCertificates)
		},
	}
}
