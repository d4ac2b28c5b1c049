package e2e

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/pifleet/pifleet/internal/testenv"
)

func binPifleet(t testing.TB) string { return testenv.Binary(t, "./hub", "pifleet") }
func binAgent(t testing.TB) string   { return testenv.Binary(t, "./agent", "pifleet-agent") }

func httpGetJSON(url string, out any) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return resp.StatusCode, json.NewDecoder(resp.Body).Decode(out)
}
