package exitcode_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/pifleet/pifleet/internal/exitcode"
)

func TestReport(t *testing.T) {
	usage := exitcode.Printed(2, "usage")
	for _, tc := range []struct {
		name    string
		err     error
		code    int
		printed string
	}{
		{"nil", nil, 0, ""},
		{"clean stop", context.Canceled, 0, ""},
		{"clean stop, wrapped", fmt.Errorf("run: %w", context.Canceled), 0, ""},
		{"plain error", errors.New("--broker: bad URL"), 1, "prog: --broker: bad URL\n"},
		{"usage, shown already", usage, 2, ""},
		{"usage, wrapped", fmt.Errorf("doctor: %w", usage), 2, ""},
		{"answer about an error, shown already", exitcode.Printed(1, "the hub could not answer that"), 1, ""},
		{"own code, not shown", &exitcode.Error{Code: 3, Err: errors.New("3 fixes needed")}, 3, "prog: 3 fixes needed\n"},
	} {
		var w bytes.Buffer
		code := exitcode.Report(&w, "prog", tc.err)
		if code != tc.code || w.String() != tc.printed {
			t.Errorf("%s: got exit %d and %q, want exit %d and %q", tc.name, code, w.String(), tc.code, tc.printed)
		}
	}
}

func TestErrorIsAndAs(t *testing.T) {
	usage := exitcode.Printed(2, "usage")
	wrapped := fmt.Errorf("parse: %w", usage)
	if !errors.Is(wrapped, usage) {
		t.Errorf("errors.Is(%v, usage): got false, want true", wrapped)
	}
	inner := errors.New("inner")
	e := &exitcode.Error{Code: 4, Err: inner}
	if !errors.Is(e, inner) || e.Error() != "inner" {
		t.Errorf("Error wraps %v: got Is %v and text %q, want true and %q", inner, errors.Is(e, inner), e.Error(), "inner")
	}
}
