package dispatch

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

func loadState(path string) ([]record, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read dispatch state: %w", err)
	}
	var recs []record
	if err := json.Unmarshal(b, &recs); err != nil {
		return nil, fmt.Errorf("parse dispatch state %s: %w", path, err)
	}
	return recs, nil
}

// saveLocked writes the commands in flight (atomically: temp file and
// rename). Called with d.mu held; a failure is logged, not fatal: the
// retained finals still arrive, only without their request.
func (d *Dispatcher) saveLocked() {
	if d.o.StateFile == "" {
		return
	}
	recs := make([]record, 0, len(d.inflight))
	for _, f := range d.inflight {
		recs = append(recs, f.rec)
	}
	b, _ := json.Marshal(recs)
	tmp := d.o.StateFile + ".tmp"
	err := os.MkdirAll(filepath.Dir(d.o.StateFile), 0o700)
	if err == nil {
		err = os.WriteFile(tmp, b, 0o600)
	}
	if err == nil {
		err = os.Rename(tmp, d.o.StateFile)
	}
	if err != nil {
		d.log.Warn("save dispatch state", "err", err)
	}
}
