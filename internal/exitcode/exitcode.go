// Package exitcode is how pifleet and pifleet-agent end: a command returns
// an error, and main hands it to Report, which prints it (once) and says
// with which status to exit. An Error carries a status other than 1, or
// says that its message was shown already. Standard library only.
package exitcode

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Error ends the program with Code. When Printed is set, the command has
// shown the problem already (a usage line, an answer that is about an
// error) and main prints nothing more.
type Error struct {
	Code    int
	Printed bool
	Err     error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Printed returns an Error with code whose message (what) has been shown
// already.
func Printed(code int, what string) *Error {
	return &Error{Code: code, Printed: true, Err: errors.New(what)}
}

// Report prints err to w as one "prog: message" line unless it was shown
// already, and returns the exit status: 0 for nil and for a cancelled
// context (SIGINT, SIGTERM: a clean stop), an Error's Code, else 1.
func Report(w io.Writer, prog string, err error) int {
	if err == nil || errors.Is(err, context.Canceled) {
		return 0
	}
	code, printed := 1, false
	var e *Error
	if errors.As(err, &e) {
		code, printed = e.Code, e.Printed
	}
	if !printed {
		fmt.Fprintf(w, "%s: %v\n", prog, err)
	}
	return code
}
