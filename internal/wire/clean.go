package wire

import (
	"reflect"
	"strings"
	"unicode"
)

// Strings in a device's status are the device's words: a person reads
// them on a terminal (`pifleet devices`) or in Slack. Clean replaces what
// must not reach either — control characters (a terminal escape sequence
// in an SSID, a newline in a host name), bidirectional overrides (text
// that reads backwards) and the private use areas (the hub's own inline
// marks in its chat answers) — with U+FFFD, so a Pi, or a stranger's Wi-Fi
// name, can neither drive the operator's terminal nor forge formatting.
func Clean(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return strings.Map(cleanRune, s)
		}
	}
	return s // printable ASCII: the common case, no allocation
}

func cleanRune(r rune) rune {
	switch {
	case unicode.IsControl(r),
		r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, // bidirectional embeddings, overrides, isolates
		r >= 0xe000 && r <= 0xf8ff, r >= 0xf0000: // private use areas (and beyond)
		return unicode.ReplacementChar
	}
	return r
}

// cleanStrings applies Clean to every exported string reachable from v
// (struct fields, slices, map keys and values, pointers), so a field
// added to Status later is covered too.
func cleanStrings(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		if v.CanSet() {
			if c := Clean(v.String()); c != v.String() {
				v.SetString(c)
			}
		}
	case reflect.Pointer:
		if !v.IsNil() {
			cleanStrings(v.Elem())
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				cleanStrings(v.Field(i))
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			cleanStrings(v.Index(i))
		}
	case reflect.Map:
		if v.IsNil() || !v.CanSet() {
			return
		}
		if v.Type().Key().Kind() == reflect.String && v.Type().Elem().Kind() == reflect.String {
			clean := true // the usual map, Health.Probes: rebuild only when needed
			for it := v.MapRange(); it.Next() && clean; {
				clean = Clean(it.Key().String()) == it.Key().String() && Clean(it.Value().String()) == it.Value().String()
			}
			if clean {
				return
			}
		}
		m := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			k := reflect.New(v.Type().Key()).Elem()
			k.Set(it.Key())
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(it.Value())
			cleanStrings(k)
			cleanStrings(e)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	}
}
