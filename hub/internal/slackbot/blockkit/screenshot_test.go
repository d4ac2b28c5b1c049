package blockkit

import (
	"bytes"
	"cmp"
	"context"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pifleet/pifleet/internal/testenv"
)

// phoneWidth is the CSS width of the screenshot: an iPhone 12–15's.
const phoneWidth = 390

// screenshotPath is the committed screenshot, relative to the repository root.
const screenshotPath = "docs/slack/gallery.png"

// cardReport is what the page says about one drawn message.
type cardReport struct {
	Name        string   `json:"name"`
	ScrollWidth int      `json:"scrollWidth"`
	ClientWidth int      `json:"clientWidth"`
	Right       float64  `json:"right"`
	Blocks      int      `json:"blocks"`
	Files       int      `json:"files"`
	Buttons     []string `json:"buttons"`
	Unsupported int      `json:"unsupported"`
	Text        string   `json:"text"`
	WrappedPre  int      `json:"wrappedPre"`
	// PiLines is, per Pi needing attention (a section that starts with
	// 🔴 or 🟠), how many lines it takes on the phone and how many it has.
	PiLines [][2]int `json:"piLines"`
}

type pageReport struct {
	Cards     []cardReport `json:"cards"`
	PageWidth int          `json:"pageWidth"`
	Scripts   int          `json:"scripts"`
	Foreign   []string     `json:"foreign"`
	EmojiFont bool         `json:"emojiFont"`
}

// measure runs in the page: per card its widths, blocks, buttons and
// visible text; for the page its width and any element the renderer never
// writes (an injected tag).
const measure = `(() => {
  const allowed = new Set(["HTML","HEAD","META","TITLE","STYLE","BODY","HEADER","H1","P","MAIN","SECTION",
    "H2","A","ARTICLE","DIV","SPAN","B","I","S","CODE","PRE","BLOCKQUOTE","UL","OL","LI","TIME","BUTTON",
    "HR","BR","DETAILS","SUMMARY"]);
  const foreign = [...document.querySelectorAll("*")].map(e => e.tagName).filter(t => !allowed.has(t));
  const cards = [...document.querySelectorAll("article.card")].map(c => {
    const lineHeight = pre => parseFloat(getComputedStyle(pre).lineHeight);
    const wrapped = [...c.querySelectorAll("pre")].filter(pre => {
      const lines = pre.textContent.split("\n").length;
      const inner = pre.clientHeight - parseFloat(getComputedStyle(pre).paddingTop) - parseFloat(getComputedStyle(pre).paddingBottom);
      return inner > lines * lineHeight(pre) + 1;
    }).length;
    return {
      name: c.dataset.name,
      scrollWidth: c.scrollWidth,
      clientWidth: c.clientWidth,
      right: c.getBoundingClientRect().right,
      blocks: c.querySelectorAll(".block").length,
      files: c.querySelectorAll(".file").length,
      buttons: [...c.querySelectorAll("button")].map(b => b.innerText),
      unsupported: c.querySelectorAll(".unsupported").length,
      text: c.innerText,
      wrappedPre: wrapped,
      piLines: [...c.querySelectorAll(".b-section > .mrk")].filter(m => /^(🔴|🟠)/u.test(m.textContent))
        .map(m => [Math.round(m.getBoundingClientRect().height / parseFloat(getComputedStyle(m).lineHeight)), m.textContent.split("\n").length]),
    };
  });
  return {
    cards,
    pageWidth: document.documentElement.scrollWidth,
    scripts: document.scripts.length,
    foreign,
    emojiFont: document.fonts.check("16px 'Noto Color Emoji'", "🟢"),
  };
})()`

// TestGalleryScreenshot draws every golden message in Debian's headless
// Chromium at phone width and checks the layout: every message is there
// with all its blocks, files and buttons, nothing is wider than the phone,
// no mrkdwn or date token is left raw, and nothing hostile got in as HTML.
// With -update it writes the full-page screenshot to docs/slack/gallery.png.
func TestGalleryScreenshot(t *testing.T) {
	chromium := testenv.RequireCommand(t, "chromium", "chromium")
	items := goldenItems(t)
	page := filepath.Join(t.TempDir(), "gallery.html")
	if err := os.WriteFile(page, galleryHTML(t), 0o644); err != nil {
		t.Fatal(err)
	}

	var chromiumOut testenv.SyncBuffer
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.WindowSize(phoneWidth, 844),
		chromedp.UserDataDir(t.TempDir()),
		// No network: the page is a file and asks for nothing; any other
		// host name resolves nowhere.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND"),
		chromedp.CombinedOutput(&chromiumOut),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium's sandbox refuses root
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	defer cancelBrowser()

	if err := chromedp.Do(bctx,
		chromedp.EmulateViewport(phoneWidth, 844),
		chromedp.Navigate("file://"+page),
		chromedp.WaitReady(chromedp.CSS("main")),
	); err != nil {
		t.Fatalf("load the gallery in %s: %v\nchromium said:\n%s", chromium, err, &chromiumOut)
	}
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`document.fonts.ready.then(() => true)`, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatalf("wait for the fonts: %v", err)
	}
	rep, err := chromedp.Run(bctx, chromedp.Evaluate[pageReport](measure))
	if err != nil {
		t.Fatalf("measure the gallery: %v", err)
	}
	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			p := filepath.Join(os.TempDir(), "pifleet-gallery.png")
			if err := os.WriteFile(p, shot, 0o644); err == nil {
				t.Logf("the failing page's screenshot: %s", p)
			}
		}
	})
	checkReport(t, items, rep)

	if updating() {
		if !rep.EmojiFont {
			t.Fatalf("no colour emoji font: install the Debian package %q before writing %s (scripts/install-test-deps.sh does this)", "fonts-noto-color-emoji", screenshotPath)
		}
		small, err := paletted(shot)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(testenv.ModuleRoot(t), screenshotPath)
		if err := os.WriteFile(out, small, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", out, len(small))
	}
}

// maxPiLines is how many lines at phone width a Pi needing attention may
// take in a fleet answer.
const maxPiLines = 2

// rawMarkers is what mrkdwn that was not drawn looks like in the visible text.
var rawMarkers = []string{"<!date", "<@", "<#", "<http", "```", "&lt;b", "*312", "_Pis"}

func checkReport(t *testing.T, items []Item, rep pageReport) {
	t.Helper()
	if len(rep.Cards) != len(items) {
		t.Fatalf("%d messages drawn, %d golden files", len(rep.Cards), len(items))
	}
	if rep.PageWidth > phoneWidth {
		t.Errorf("the page is %d px wide, wider than the phone (%d px)", rep.PageWidth, phoneWidth)
	}
	if rep.Scripts != 0 || len(rep.Foreign) != 0 {
		t.Errorf("the page has %d scripts and elements the renderer never writes: %v (escaping failed)", rep.Scripts, rep.Foreign)
	}
	for i, c := range rep.Cards {
		m := items[i].Message
		if c.Name != items[i].Name {
			t.Errorf("card %d is %q, want %q", i, c.Name, items[i].Name)
			continue
		}
		if c.ScrollWidth > c.ClientWidth || c.Right > phoneWidth {
			t.Errorf("%s: wider than the phone: scrollWidth %d > clientWidth %d, right edge at %.0f px", c.Name, c.ScrollWidth, c.ClientWidth, c.Right)
		}
		wantBlocks := max(len(m.Blocks), 1)
		if c.Blocks != wantBlocks {
			t.Errorf("%s: %d blocks drawn, the message has %d", c.Name, c.Blocks, wantBlocks)
		}
		if c.Files != len(m.Files) {
			t.Errorf("%s: %d files drawn, the message has %d", c.Name, c.Files, len(m.Files))
		}
		if want := buttonTexts(m); strings.Join(c.Buttons, "|") != strings.Join(want, "|") {
			t.Errorf("%s: buttons %q drawn, the message has %q", c.Name, c.Buttons, want)
		}
		if c.Unsupported != 0 {
			t.Errorf("%s: %d parts not drawn (blockkit does not know them)", c.Name, c.Unsupported)
		}
		for _, mk := range rawMarkers {
			if strings.Contains(c.Text, mk) {
				t.Errorf("%s: raw mrkdwn %q in the visible text:\n%s", c.Name, mk, c.Text)
			}
		}
		for _, w := range strings.Fields(c.Text) {
			if len(w) > 2 && strings.HasPrefix(w, ":") && strings.HasSuffix(w, ":") && strings.Trim(w, ":abcdefghijklmnopqrstuvwxyz_") == "" {
				t.Errorf("%s: emoji shortcode %s left as text (add it to blockkit's emoji table)", c.Name, w)
			}
		}
		// A Pi needing attention is at most two lines in a fleet answer
		// (the dot, id and address; then what is wrong), and neither
		// wraps on the phone.
		if strings.Contains(c.Name, "fleet") {
			for j, n := range c.PiLines {
				if n[0] > n[1] || n[0] > maxPiLines {
					t.Errorf("%s: Pi needing attention #%d: %d lines of text take %d lines at %d px, want at most %d and no wrapping", c.Name, j+1, n[1], n[0], phoneWidth, maxPiLines)
				}
			}
		}
		if c.WrappedPre > 0 {
			t.Logf("%s: %d preformatted block(s) wrap their lines at phone width", c.Name, c.WrappedPre)
		}
	}
}

// buttonTexts lists the message's button labels, from the JSON.
func buttonTexts(m Message) []string {
	var out []string
	add := func(e Element) {
		if e.Type == "button" && e.Text.Object != nil {
			out = append(out, e.Text.Object.Text)
		}
	}
	for _, b := range m.Blocks {
		if b.Accessory != nil {
			add(*b.Accessory)
		}
		for _, e := range b.Elements {
			add(e)
		}
	}
	return out
}

// paletted re-encodes a screenshot with its 256 most used colours (a text
// page has a few thousand, most of them anti-aliasing): the committed PNG
// is a quarter of Chromium's, and looks the same.
func paletted(shot []byte) ([]byte, error) {
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		return nil, err
	}
	b := img.Bounds()
	rgba := image.NewRGBA(b)
	draw.Draw(rgba, b, img, b.Min, draw.Src)
	at := func(x, y int) color.RGBA {
		o := rgba.PixOffset(x, y)
		return color.RGBA{rgba.Pix[o], rgba.Pix[o+1], rgba.Pix[o+2], rgba.Pix[o+3]}
	}
	count := map[color.RGBA]int{}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			count[at(x, y)]++
		}
	}
	colours := slices.Collect(maps.Keys(count))
	slices.SortFunc(colours, func(a, c color.RGBA) int {
		if d := count[c] - count[a]; d != 0 {
			return d
		}
		return cmp.Compare(uint32(a.R)<<16|uint32(a.G)<<8|uint32(a.B), uint32(c.R)<<16|uint32(c.G)<<8|uint32(c.B))
	})
	pal := make(color.Palette, min(256, len(colours)))
	for i := range pal {
		pal[i] = colours[i]
	}
	out := image.NewPaletted(b, pal)
	index := map[color.RGBA]uint8{}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := at(x, y)
			i, ok := index[c]
			if !ok {
				i = uint8(pal.Index(c))
				index[c] = i
			}
			out.SetColorIndex(x, y, i)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, out); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
