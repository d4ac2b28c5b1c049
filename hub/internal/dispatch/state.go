package dispatch

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// loadState reads the commands in flight. A file that does not parse is
// moved aside to path+".corrupt" (the next save would overwrite it) and
// reported as an error; the hub starts without it.
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
		err = fmt.Errorf("parse dispatch state %s: %w", path, err)
		if merr := os.Rename(path, path+".corrupt"); merr != nil {
			return nil, fmt.Errorf("%w (and it could not be moved aside: %v)", err, merr)
		}
		return nil, fmt.Errorf("%w; moved it to %s", err, path+".corrupt")
	}
	return recs, nil
}

// saveLocked writes the commands in flight. Called with d.mu held; a
// failure is logged, not fatal: the retained finals still arrive, only
// without their request.
func (d *Dispatcher) saveLocked() {
	if d.o.StateFile == "" {
		return
	}
	recs := make([]record, 0, len(d.inflight))
	for _, f := range d.inflight {
		recs = append(recs, f.rec)
	}
	b, _ := json.Marshal(recs)
	if err := writeFileAtomic(d.o.StateFile, b, 0o600); err != nil {
		d.log.Warn("save dispatch state: the commands in flight are not remembered across a restart until it works again (their results would arrive without who asked)", "err", err)
	}
}

// writeFileAtomic replaces path with b so that a crash or a power cut at
// any moment leaves the old file or the new one, whole: a temp file in
// the same dir, written and fsynced, renamed over path, then the dir
// fsynced (the rename is on disk). On failure the temp file is removed
// (a full disk keeps nothing half-written) and path is untouched.
func writeFileAtomic(path string, b []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	df, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer df.Close()
	if err := df.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
