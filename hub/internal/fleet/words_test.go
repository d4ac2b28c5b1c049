package fleet

import (
	"slices"
	"testing"
)

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 10000: "10,000", 9874: "9,874", 1234567: "1,234,567", -1500: "-1,500"} {
		if got := Thousands(n); got != want {
			t.Errorf("Thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestNaturalCompare(t *testing.T) {
	got := []string{"room-10", "room-4", "room-11", "room-0", "pi-10", "pi-9", "pi-09", "pi-1", "pi", "room-2b", "room-2a", "a100", "a20x"}
	slices.SortFunc(got, NaturalCompare)
	want := []string{"a20x", "a100", "pi", "pi-1", "pi-09", "pi-9", "pi-10", "room-0", "room-2a", "room-2b", "room-4", "room-10", "room-11"}
	if !slices.Equal(got, want) {
		t.Errorf("natural order = %q, want %q", got, want)
	}
	for _, p := range [][2]string{{"x", "x"}, {"pi-01", "pi-1"}, {"", "a"}, {"9", "10"}} {
		if NaturalCompare(p[0], p[1]) != -NaturalCompare(p[1], p[0]) {
			t.Errorf("NaturalCompare(%q, %q) is not antisymmetric", p[0], p[1])
		}
	}
}

func FuzzNaturalCompare(f *testing.F) {
	f.Add("room-10", "room-4")
	f.Add("pi-01", "pi-1")
	f.Fuzz(func(t *testing.T, a, b string) {
		ab, ba := NaturalCompare(a, b), NaturalCompare(b, a)
		if ab != -ba {
			t.Fatalf("NaturalCompare(%q, %q) = %d but (%q, %q) = %d", a, b, ab, b, a, ba)
		}
		if (ab == 0) != (a == b) {
			t.Fatalf("NaturalCompare(%q, %q) = %d", a, b, ab)
		}
	})
}
