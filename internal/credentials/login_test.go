package credentials_test

import (
	"strings"
	"testing"

	"github.com/pifleet/pifleet/internal/credentials"
)

// TestLogin is the rule the embedded engine applies (its policy suite
// runs it against a real broker): a verified certificate's CN first, else
// username and password.
func TestLogin(t *testing.T) {
	h, err := credentials.HashPassword("pi-a-password")
	if err != nil {
		t.Fatal(err)
	}
	f := &credentials.File{Version: credentials.Version,
		Hubs:    []credentials.Entry{{ID: "hub"}},
		Devices: []credentials.Entry{{ID: "pi-a", PasswordHash: h}, {ID: "pi-c"}}}
	for _, tc := range []struct {
		user, pw, cn string
		id           string
		hub          bool
		err          string
	}{
		{"pi-a", "pi-a-password", "", "pi-a", false, ""},
		{"pi-a", "wrong", "", "", false, "wrong password"},
		{"pi-zz", "pi-a-password", "", "", false, "unknown username"},
		{"pi-c", "", "", "", false, "must use its client certificate"},
		{"", "", "pi-c", "pi-c", false, ""},
		{"pi-c", "", "pi-c", "pi-c", false, ""},
		{"pi-a", "", "pi-c", "", false, "does not match certificate CN"},
		{"", "", "pi-x", "", false, "not in the credentials file"},
		{"", "", "hub", "hub", true, ""},
	} {
		id, hub, err := f.Login(tc.user, tc.pw, tc.cn)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Login(%q, %q, cn %q) = %q, %v; want an error with %q", tc.user, tc.pw, tc.cn, id, err, tc.err)
			}
			continue
		}
		if err != nil || id != tc.id || hub != tc.hub {
			t.Errorf("Login(%q, %q, cn %q) = %q hub=%v %v; want %q hub=%v", tc.user, tc.pw, tc.cn, id, hub, err, tc.id, tc.hub)
		}
	}
}

func TestCredentialsValidate(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`{"version":1,"hubs":[{"id":"hub"}],"devices":[{"id":"hub"}]}`, "appears twice"},
		{`{"version":1,"devices":[{"id":"a/b"}]}`, "invalid id"},
		{`{"version":1,"devices":[{"id":"pi","password_hash":"plain"}]}`, "not a $7$"},
		{`{"version":2}`, "version 2"},
		{`{"version":1,"extra":1}`, "unknown field"},
		{`{"version":1,"devices":[{"id":"pi"}]}`, ""},
	} {
		_, err := credentials.Parse([]byte(tc.json))
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: got %v, want %q", tc.json, err, tc.want)
		}
	}
}

func TestRemove(t *testing.T) {
	f := &credentials.File{Version: credentials.Version, Hubs: []credentials.Entry{{ID: "hub"}},
		Devices: []credentials.Entry{{ID: "pi-a"}, {ID: "pi-b"}, {ID: "pi-c"}}}
	if !f.Remove("pi-b") {
		t.Fatal("Remove(pi-b) = false")
	}
	if f.Remove("pi-b") || f.Remove("hub") {
		t.Error("Remove of a gone device or of the hub reported true")
	}
	if _, _, ok := f.Find("pi-b"); ok || len(f.Devices) != 2 || f.Devices[0].ID != "pi-a" || f.Devices[1].ID != "pi-c" {
		t.Errorf("after Remove(pi-b): %+v", f.Devices)
	}
	if _, _, ok := f.Find("hub"); !ok {
		t.Error("the hub's entry went")
	}
}
