package credentials_test

import (
	"strings"
	"testing"

	"github.com/pifleet/pifleet/internal/credentials"
)

func TestPasswordHash(t *testing.T) {
	// Made by `mosquitto_passwd -c -b pw alice secret` (mosquitto 2.0.11):
	// our check must accept Mosquitto's own hashes.
	const mosq = "$7$101$7IbBqyBlUh813RzW$YNU/+u7ytgMthJQyL19taYq4yLXFR4fGVP9ca2BTFYtZSMRH65Z4sUzyE0fsv8oWP8dw2amqgzYlh92KV9B+Qg=="
	for _, tc := range []struct {
		hash, pw string
		want     bool
		err      bool
	}{
		{mosq, "secret", true, false},
		{mosq, "Secret", false, false},
		{"plain", "plain", false, true},
		{"$7$x$AAAA$AAAA", "x", false, true},
		{"$7$101$!!$AAAA", "x", false, true},
		{"$6$101$AAAA$AAAA", "x", false, true},
	} {
		got, err := credentials.CheckPassword(tc.hash, tc.pw)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("CheckPassword(%.20q, %q): got %v, %v; want %v, error %v", tc.hash, tc.pw, got, err, tc.want, tc.err)
		}
	}
	pw, err := credentials.NewPassword()
	if err != nil || len(pw) != 43 {
		t.Fatalf("NewPassword: %q, %v", pw, err)
	}
	h, err := credentials.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := credentials.CheckPassword(h, pw); !ok || err != nil {
		t.Errorf("round trip: %v, %v", ok, err)
	}
	if strings.Contains(h, pw) {
		t.Errorf("hash contains the password")
	}
}
