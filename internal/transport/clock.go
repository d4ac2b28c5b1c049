package transport

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"
)

// SaneYear is the year before which a clock is taken to be unset: a Pi has
// no RTC and boots at 1970 until NTP has answered.
const SaneYear = 2024

// ClockUnset reports whether now looks like an unset clock.
func ClockUnset(now time.Time) bool { return now.Year() < SaneYear }

// ErrClock marks errors caused by a clock outside a certificate's validity.
var ErrClock = errors.New("clock outside certificate validity")

// CheckClock fails when now is outside cert's validity, saying whether the
// clock or the certificate is at fault.
func CheckClock(now time.Time, cert *x509.Certificate, what string) error {
	switch {
	case now.Before(cert.NotBefore) && ClockUnset(now):
		return fmt.Errorf("%w: %s is valid from %s but the system clock says %s: this Pi's clock is not set yet (no RTC; it starts at 1970 until NTP answers) — wait for time sync (timedatectl, systemd-timesyncd) and TLS will work",
			ErrClock, what, cert.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case now.Before(cert.NotBefore):
		return fmt.Errorf("%w: %s is not valid until %s (clock: %s): the certificate was issued in the future or this clock is behind",
			ErrClock, what, cert.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case now.After(cert.NotAfter):
		return fmt.Errorf("%w: %s expired at %s (clock: %s): issue a new one with scripts/provision",
			ErrClock, what, cert.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// Explain adds the likely cause to a connection error: a certificate
// validity failure while the clock is unset is the 1970 problem, not a
// bad certificate. Other errors are returned unchanged.
func Explain(err error, now time.Time) error {
	if err == nil {
		return nil
	}
	var inv x509.CertificateInvalidError
	validity := errors.As(err, &inv) && inv.Reason == x509.Expired ||
		strings.Contains(err.Error(), "certificate has expired or is not yet valid")
	if validity && ClockUnset(now) {
		return fmt.Errorf("%w (the system clock says %s: this Pi's clock is not set yet — no RTC, it starts at 1970 until NTP answers; TLS works once time is synced)", err, now.UTC().Format(time.RFC3339))
	}
	return err
}
