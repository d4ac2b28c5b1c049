package console

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// BootDirs are the places of config.txt and cmdline.txt, newest first:
// Bookworm and later mount the boot partition on /boot/firmware (and leave
// a stub /boot/config.txt that says so); older releases on /boot.
var BootDirs = []string{"/boot/firmware", "/boot"}

// ConfigLine is one setting of config.txt that applies to this board.
type ConfigLine struct {
	File  string // path on the Pi (without root)
	No    int    // 1-based line number
	Text  string // the line as written, trimmed
	Key   string
	Value string
}

// BootConfig is the part of config.txt that applies to this board: lines in
// [all] (or no section) and in model sections matching the board. Lines in
// other conditional sections ([gpio…], [EDID=…], [HDMI:…], …) are kept in
// Conditional because the firmware may or may not apply them.
type BootConfig struct {
	Path        string // config.txt path on the Pi (without root)
	Dir         string // boot directory on the Pi (without root)
	Lines       []ConfigLine
	Conditional []ConfigLine
}

// Last returns the last applying line for key (the firmware lets a later
// value win), or false.
func (c *BootConfig) Last(key string) (ConfigLine, bool) {
	for i := len(c.Lines) - 1; i >= 0; i-- {
		if c.Lines[i].Key == key {
			return c.Lines[i], true
		}
	}
	return ConfigLine{}, false
}

// Overlays returns every applying dtoverlay line (they accumulate).
func (c *BootConfig) Overlays() []ConfigLine {
	var out []ConfigLine
	for _, l := range c.Lines {
		if l.Key == "dtoverlay" && l.Value != "" {
			out = append(out, l)
		}
	}
	return out
}

// overlayName is the overlay of a dtoverlay value: "miniuart-bt,krnbt=on" → "miniuart-bt".
func overlayName(v string) string {
	if i := strings.IndexAny(v, ",:"); i >= 0 {
		v = v[:i]
	}
	return strings.TrimSpace(v)
}

// FindBootDir returns the first of BootDirs below root that holds
// config.txt, or an error naming where it looked. On Bookworm /boot holds
// a stub config.txt as well, so /boot/firmware is tried first.
func FindBootDir(root string) (string, error) {
	for _, d := range BootDirs {
		if _, err := os.Stat(filepath.Join(root, d, "config.txt")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("config.txt not found in %s: %w", strings.Join(BootDirs, " or "), os.ErrNotExist)
}

// ReadBootConfig parses dir/config.txt below root for a board whose
// /proc/device-tree/model is model ("" means a Pi 3 is assumed), following
// include directives.
func ReadBootConfig(root, dir, model string) (*BootConfig, error) {
	c := &BootConfig{Dir: dir, Path: filepath.Join(dir, "config.txt")}
	st := &filterState{tags: modelTags(model)}
	if err := c.parse(root, c.Path, st, 0); err != nil {
		return nil, err
	}
	return c, nil
}

type filterState struct {
	tags        map[string]bool
	model       string // current model filter, "" = all
	none        bool   // [none]
	conditional bool   // a non-model filter is in effect
}

func (s *filterState) applies() bool {
	return !s.none && (s.model == "" || s.tags[s.model])
}

func (s *filterState) section(f string) {
	switch {
	case f == "all":
		*s = filterState{tags: s.tags}
	case f == "none":
		s.none = true
	case knownModelFilters[f]:
		s.model = f
	default:
		s.conditional = true
	}
}

var knownModelFilters = map[string]bool{
	"pi1": true, "pi2": true, "pi3": true, "pi3+": true, "pi4": true, "pi5": true,
	"pi0": true, "pi0w": true, "pi02": true, "pi400": true, "pi500": true,
	"cm1": true, "cm3": true, "cm3+": true, "cm4": true, "cm4s": true, "cm5": true,
}

// modelTags maps /proc/device-tree/model to the config.txt model filters
// that match it (a Pi 3 B+ also reads [pi3] sections).
func modelTags(model string) map[string]bool {
	m := strings.ToLower(model)
	t := map[string]bool{}
	switch {
	case m == "":
		t["pi3"] = true // pifleet's fleet is Pi 3s; assume one when unknown
	case strings.Contains(m, "compute module 4"):
		t["cm4"], t["pi4"] = true, true
	case strings.Contains(m, "compute module 5"):
		t["cm5"], t["pi5"] = true, true
	case strings.Contains(m, "compute module 3 plus"):
		t["cm3+"], t["cm3"], t["pi3"], t["pi3+"] = true, true, true, true
	case strings.Contains(m, "compute module 3"):
		t["cm3"], t["pi3"] = true, true
	case strings.Contains(m, "raspberry pi 400"):
		t["pi400"], t["pi4"] = true, true
	case strings.Contains(m, "raspberry pi 500"):
		t["pi500"], t["pi5"] = true, true
	case strings.Contains(m, "raspberry pi 3") && strings.Contains(m, "plus"):
		t["pi3"], t["pi3+"] = true, true
	case strings.Contains(m, "raspberry pi 3"):
		t["pi3"] = true
	case strings.Contains(m, "raspberry pi 4"):
		t["pi4"] = true
	case strings.Contains(m, "raspberry pi 5"):
		t["pi5"] = true
	case strings.Contains(m, "raspberry pi 2"):
		t["pi2"] = true
	case strings.Contains(m, "zero 2"):
		t["pi02"], t["pi0"] = true, true
	case strings.Contains(m, "zero w"):
		t["pi0w"], t["pi0"] = true, true
	case strings.Contains(m, "zero"):
		t["pi0"] = true
	default:
		t["pi1"] = true
	}
	return t
}

// ReadModel returns /proc/device-tree/model below root ("" when absent).
func ReadModel(root string) string {
	s, _ := readDTString(filepath.Join(root, "proc/device-tree/model"))
	return s
}

const maxIncludeDepth = 4

func (c *BootConfig) parse(root, file string, st *filterState, depth int) error {
	b, err := os.ReadFile(filepath.Join(root, file))
	if err != nil {
		if depth > 0 && errors.Is(err, os.ErrNotExist) {
			return nil // the firmware ignores a missing include
		}
		return fmt.Errorf("read %s: %w", file, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for no := 1; sc.Scan(); no++ {
		text := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = strings.TrimSpace(text[:i])
		}
		if text == "" {
			continue
		}
		if strings.HasPrefix(text, "[") && strings.HasSuffix(text, "]") {
			st.section(strings.ToLower(strings.TrimSpace(text[1 : len(text)-1])))
			continue
		}
		if inc, ok := strings.CutPrefix(text, "include "); ok {
			if depth < maxIncludeDepth && st.applies() && !st.conditional {
				if err := c.parse(root, filepath.Join(c.Dir, strings.TrimSpace(inc)), st, depth+1); err != nil {
					return err
				}
			}
			continue
		}
		key, value, _ := strings.Cut(text, "=")
		l := ConfigLine{File: file, No: no, Text: text, Key: strings.TrimSpace(key), Value: strings.TrimSpace(value)}
		switch {
		case !st.applies():
		case st.conditional:
			c.Conditional = append(c.Conditional, l)
		default:
			c.Lines = append(c.Lines, l)
		}
	}
	return sc.Err()
}
