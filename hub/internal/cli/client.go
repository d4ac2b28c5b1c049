package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// hubClient talks to a hub's HTTP API.
type hubClient struct {
	base  string
	shown string // base without a password, for messages
	token string
	http  *http.Client
}

func addHubFlags(fs *flag.FlagSet, hub *string) {
	fs.StringVar(hub, "hub", "http://127.0.0.1:8080", "the hub's HTTP API: a URL, or host:port for http:// (env PIFLEET_HUB; token from PIFLEET_HUB_TOKEN)")
}

func newHubClient(env Env, fs *flag.FlagSet, hub string) (*hubClient, error) {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "hub" })
	if !set && env.Getenv != nil && env.Getenv("PIFLEET_HUB") != "" {
		hub = env.Getenv("PIFLEET_HUB")
	}
	if !strings.Contains(hub, "://") {
		hub = "http://" + hub // host:port, as --http-listen is written
	}
	u, err := url.Parse(hub)
	if err != nil {
		// Neither the value nor url's error (which quotes it): it may hold
		// a password.
		return nil, errors.New("--hub is not a URL: want a URL such as http://127.0.0.1:8080")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--hub %q: want a URL such as http://127.0.0.1:8080", u.Redacted())
	}
	c := &hubClient{base: strings.TrimRight(hub, "/"), shown: strings.TrimRight(u.Redacted(), "/"),
		http: &http.Client{Timeout: 3 * time.Minute}} // cloud commands take up to ~2 min
	if env.Getenv != nil {
		c.token = env.Getenv("PIFLEET_HUB_TOKEN")
	}
	return c, nil
}

// do sends a request and decodes a JSON answer into out. API errors come
// back as one clear line.
func (c *hubClient) do(ctx context.Context, method, path string, body, out any) error {
	_, err := c.send(ctx, method, path, body, out)
	return err
}

// send is do that also returns the answer's header (paging cursors).
func (c *hubClient) send(ctx context.Context, method, path string, body, out any) (http.Header, error) {
	resp, err := c.open(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read answer from %s: %w", c.shown, err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("hub sent something that is not the expected JSON: %w", err)
	}
	return resp.Header, nil
}

// open sends a request (with the header pairs given) and returns the
// answer, whose body the caller closes, when it is 200 OK; any other
// answer is one clear error.
func (c *hubClient) open(ctx context.Context, method, path string, body any, header ...string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the hub at %s (is `pifleet hub` running?): %w", c.shown, err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var e struct{ Error string }
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return nil, fmt.Errorf("%s", e.Error)
	}
	return nil, fmt.Errorf("hub answered %s", resp.Status)
}
