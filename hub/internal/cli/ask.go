package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/internal/exitcode"
	"github.com/pifleet/pifleet/internal/flagenv"
	"github.com/pifleet/pifleet/internal/shellwords"
)

func init() {
	register("ask", "ask the hub, as in Slack: pifleet ask fleet | where ID | health ID | help", runAsk)
}

func runAsk(ctx context.Context, env Env, args []string) error {
	fs := flagenv.NewFlagSet("pifleet ask", "usage: pifleet ask [--hub URL] TEXT (e.g. pifleet ask fleet; pifleet ask help lists the questions)", "")
	var hub string
	addHubFlags(fs, &hub)
	if err := flagenv.Parse(fs, args, env); err != nil {
		return usageErr(err)
	}
	text := askText(fs.Args())
	if strings.TrimSpace(text) == "" {
		fmt.Fprintln(env.Stderr, "usage: pifleet ask TEXT (e.g. pifleet ask fleet)")
		return ErrUsage
	}
	c, err := newHubClient(env, fs, hub)
	if err != nil {
		return err
	}
	var r chat.Reply
	if err := c.do(ctx, "POST", "/api/ask", map[string]string{"text": text}, &r); err != nil {
		return err
	}
	fmt.Fprint(env.Stdout, r.Text)
	if !strings.HasSuffix(r.Text, "\n") {
		fmt.Fprintln(env.Stdout)
	}
	if r.Problem {
		return errAnswerProblem
	}
	return nil
}

// errAnswerProblem makes `pifleet ask` exit 1 when the hub's answer, shown
// already, is about an error (unknown id or command), for scripts.
var errAnswerProblem = exitcode.Printed(1, "the hub could not answer that")

// askText turns the command line into the engine's text. One argument is
// taken as the whole text (pifleet ask "where pi1"); several are the words
// the shell already split, so each word that needs it is quoted again and
// "s3://a b" stays one word.
func askText(args []string) string {
	if len(args) == 1 {
		return args[0]
	}
	return shellwords.Join(args)
}
