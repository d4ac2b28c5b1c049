package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/pifleet/pifleet/hub/internal/api"
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
	progress := fs.Bool("progress", isTerminal(env.Stderr), "show a cloud command's progress on stderr while it runs, each Pi running or done (default: when stderr is a terminal)")
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
	if *progress {
		r, err = c.askShowing(ctx, text, progressTo(env.Stderr))
	} else {
		err = c.do(ctx, "POST", "/api/ask", map[string]string{"text": text}, &r)
	}
	if err != nil {
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

// askShowing asks the hub for a streamed answer (api.NDJSON) and shows
// each progress line as it comes. A hub that does not stream answers
// with the reply alone.
func (c *hubClient) askShowing(ctx context.Context, text string, show func(line string, last bool)) (chat.Reply, error) {
	resp, err := c.open(ctx, "POST", "/api/ask", map[string]string{"text": text}, "Accept", api.NDJSON)
	if err != nil {
		return chat.Reply{}, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(io.LimitReader(resp.Body, 64<<20))
	if ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); ct != api.NDJSON {
		var r chat.Reply
		if err := dec.Decode(&r); err != nil {
			return r, fmt.Errorf("hub sent something that is not the expected JSON: %w", err)
		}
		return r, nil
	}
	defer show("", true)
	for {
		var ev api.AskEvent
		if err := dec.Decode(&ev); err != nil {
			return chat.Reply{}, fmt.Errorf("the hub's answer from %s broke off: %w", c.shown, err)
		}
		if ev.Reply != nil {
			return *ev.Reply, nil
		}
		show(ev.Progress, false)
	}
}

// progressTo shows progress lines on w: on a terminal one line (cut to
// its width), rewritten in place and cleared at the end; elsewhere a line
// each.
func progressTo(w io.Writer) func(line string, last bool) {
	if isTerminal(w) {
		width := 80
		if cols, _, err := term.GetSize(int(w.(*os.File).Fd())); err == nil && cols > 1 {
			width = cols
		}
		return func(line string, last bool) {
			if last {
				fmt.Fprint(w, "\r\033[K")
				return
			}
			line = chat.CutRunes(line, width-1) // a wrapped line could not be rewritten
			fmt.Fprint(w, "\r\033[K"+line)
		}
	}
	return func(line string, last bool) {
		if !last {
			fmt.Fprintln(w, line)
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
