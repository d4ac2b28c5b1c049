package console

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pifleet/pifleet/internal/testenv/golden"
	"github.com/pifleet/pifleet/internal/wire"
)

var testInfo = BannerInfo{
	Hostname: "pi3-kitchen",
	Addresses: []wire.Address{
		{Address: "127.0.0.1", Prefix: 8, Family: wire.IPv4, Interface: "lo", Loopback: true},
		{Address: "fe80::ba27:ebff:fe12:3456", Prefix: 64, Family: wire.IPv6, Interface: "eth0", LinkLocal: true},
		{Address: "2001:db8::10", Prefix: 64, Family: wire.IPv6, Interface: "eth0"},
		{Address: "198.51.100.7", Prefix: 24, Family: wire.IPv4, Interface: "wlan0", Primary: true},
		{Address: "192.0.2.10", Prefix: 24, Family: wire.IPv4, Interface: "eth0"},
	},
	HubConnected: true,
	Problems:     []wire.Problem{wire.ProblemUnderVoltage, wire.ProblemClockUnsynced},
}

func TestRenderBannerGolden(t *testing.T) {
	for name, info := range map[string]BannerInfo{
		"banner.golden":         testInfo,
		"banner-offline.golden": {Hostname: "pi3-shed"},
	} {
		golden.Check(t, filepath.Join("testdata", name), RenderBanner(info))
	}
}

func TestRenderBannerSanitizes(t *testing.T) {
	got := string(RenderBanner(BannerInfo{
		Hostname:  "evil\\4\x1b[2Jhost",
		Addresses: []wire.Address{{Address: "not-an-ip", Prefix: 24, Interface: "eth0"}, {Address: "192.0.2.1", Prefix: 24, Interface: "e\\th\n0"}},
		Problems:  []wire.Problem{"bad\\x"},
	}))
	for _, bad := range []string{"\\", "\x1b", "not-an-ip"} {
		if strings.Contains(got, bad) {
			t.Errorf("banner contains %q:\n%s", bad, got)
		}
	}
	if !strings.Contains(got, "ip     eth0     192.0.2.1/24\n") {
		t.Errorf("got\n%s\nwant the address under the sanitized interface eth0", got)
	}
}

func TestBannerUpdate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "issue.d", "pifleet.issue")
	reloads := 0
	b := &Banner{Path: p, Reload: func(context.Context) error { reloads++; return nil }}
	ctx := context.Background()

	steps := []struct {
		info    BannerInfo
		changed bool
		reloads int
	}{
		{testInfo, true, 1},
		{testInfo, false, 1},
		{BannerInfo{Hostname: "pi3-kitchen", Addresses: testInfo.Addresses}, true, 2},
		{BannerInfo{Hostname: "pi3-kitchen", Addresses: testInfo.Addresses}, false, 2},
	}
	for i, s := range steps {
		changed, err := b.Update(ctx, s.info)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if changed != s.changed || reloads != s.reloads {
			t.Errorf("step %d: got changed=%v reloads=%d, want %v %d", i, changed, reloads, s.changed, s.reloads)
		}
		got, _ := os.ReadFile(p)
		if string(got) != string(RenderBanner(s.info)) {
			t.Errorf("step %d: file holds\n%s", i, got)
		}
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("got mode %v (%v), want 0644", st.Mode(), err)
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Errorf("got %d files in the issue directory, want only the banner (no temp files)", len(ents))
	}

	// A new agent process finds its predecessor's identical banner: no
	// write, no reload.
	b2 := &Banner{Path: p, Reload: func(context.Context) error { reloads++; return nil }}
	before, _ := os.Stat(p)
	changed, err := b2.Update(ctx, steps[3].info)
	after, _ := os.Stat(p)
	if changed || err != nil || reloads != 2 || !before.ModTime().Equal(after.ModTime()) || !os.SameFile(before, after) {
		t.Errorf("restart with same banner: got changed=%v err=%v reloads=%d, want no write", changed, err, reloads)
	}
}

func TestBannerReloadError(t *testing.T) {
	b := &Banner{Path: filepath.Join(t.TempDir(), "p.issue"), Reload: func(context.Context) error { return errors.New("boom") }}
	changed, err := b.Update(context.Background(), testInfo)
	if !changed || err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("got changed=%v err=%v, want changed and the reload error", changed, err)
	}
}

func TestBannerUnwritable(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "file", "")
	b := &Banner{Path: filepath.Join(dir, "file", "p.issue"), Reload: func(context.Context) error { return nil }}
	if _, err := b.Update(context.Background(), testInfo); err == nil {
		t.Error("got no error writing below a regular file, want one")
	}
}

func TestBannerRemove(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pifleet.issue")
	reloads := 0
	b := &Banner{Path: p, Reload: func(context.Context) error { reloads++; return nil }}
	ctx := context.Background()
	b.Update(ctx, testInfo)
	if err := b.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) || reloads != 2 {
		t.Errorf("got stat err %v, %d reloads; want the file gone and a reload", err, reloads)
	}
	if err := b.Remove(ctx); err != nil || reloads != 2 {
		t.Errorf("second Remove: got %v, %d reloads; want nil and no reload", err, reloads)
	}
	if changed, _ := b.Update(ctx, testInfo); !changed {
		t.Error("Update after Remove: got unchanged, want the banner written again")
	}
}
