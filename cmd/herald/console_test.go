package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// These tests walk the web console (issue 9) in a real browser, Debian's
// chromium driven headless by chromedp, against the real binary. They
// find things by the data-testid attributes the console promises.

// consoleStep bounds each wait of the browser: a page that does not show
// what it must within it has failed.
const consoleStep = 15 * time.Second

// screenshotsDir is where HERALD_UPDATE_SCREENSHOTS=1 writes the pictures
// README shows, from this package's folder.
const screenshotsDir = "../../docs/screenshots"

// browser is one headless chromium tab on a Herald server.
type browser struct {
	t   *testing.T
	ctx context.Context
	url string

	mu       sync.Mutex
	messages []chromedp.ConsoleMessage // what the page wrote to its console

	shots bool // write screenshots
}

// newBrowser starts chromium with a 1280×800 window. Chromium missing is
// a failure, not a skip: CI installs it (.ci/run), and so must a
// developer who runs these tests.
func newBrowser(t *testing.T, url string) *browser {
	t.Helper()
	path := chromiumPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 800),
	)
	if os.Geteuid() == 0 {
		// Chromium refuses to start its sandbox as root (CI's containers).
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	b := &browser{t: t, ctx: ctx, url: url, shots: os.Getenv("HERALD_UPDATE_SCREENSHOTS") == "1"}

	// The first Run starts the browser; it must not carry a timeout, which
	// would end the browser with it.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		cancelCtx()
		cancelAlloc()
		t.Fatalf("start chromium (%s): %v", path, err)
	}
	listening := make(chan struct{})
	go func() {
		defer close(listening)
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.messages = append(b.messages, m)
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
		<-listening
	})
	return b
}

// chromiumPath finds chromium on PATH, or fails the test saying how to
// install it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("the console tests need Debian's chromium on PATH: install it with "+
			"`apt-get install chromium` (.ci/run does so when it is missing): %v", err)
	}
	return path
}

func testid(id string) string { return fmt.Sprintf(`[data-testid=%q]`, id) }

// js quotes s as a JavaScript string.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// step runs actions with the step's deadline, failing the test with what
// the page shows when they fail.
func (b *browser) step(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, consoleStep)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail(what, err)
	}
}

// waitFor waits until the JavaScript expression is true in the page.
func (b *browser) waitFor(what, expr string) {
	b.t.Helper()
	b.step(what, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(consoleStep)))
}

// evaluate returns the value of a JavaScript expression in the page.
func evaluate[T any](b *browser, what, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, consoleStep)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.fail(what, err)
	}
	return v
}

// visible is the expression that is true when an element matches sel and
// takes room on the page.
func visible(sel string) string {
	return fmt.Sprintf(`(() => { const e = document.querySelector(%s); return !!e && e.getClientRects().length > 0 })()`, js(sel))
}

// loaded is true once the page shows no loading state.
const loaded = `!document.querySelector('[data-testid="loading"]')`

// goTo changes the page's route as a link would.
func (b *browser) goTo(hash string) {
	b.t.Helper()
	b.step("go to "+hash, chromedp.Evaluate[chromedp.Void]("location.hash = "+js(hash)))
}

// clickLink clicks the link to target inside the first element matching
// container (a row), or the element itself when it holds no such link.
func (b *browser) clickLink(container, target string) {
	b.t.Helper()
	link := fmt.Sprintf(`%s a[href*=%q]`, container, target)
	has := evaluate[bool](b, "find "+link, fmt.Sprintf(`!!document.querySelector(%s)`, js(link)))
	if !has {
		link = container
	}
	b.step("click "+link, chromedp.Click(chromedp.CSS(link)))
}

// fail ends the test with what the page shows and wrote to its console.
func (b *browser) fail(what string, err error) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
	defer cancel()
	state, stateErr := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({
		location: location.href,
		error: (document.querySelector('[data-testid="error"]') || {}).textContent || null,
		text: document.body ? document.body.innerText.slice(0, 1500) : null})`))
	if stateErr != nil {
		state = "(page state unavailable: " + stateErr.Error() + ")"
	}
	b.t.Fatalf("%s: %v\npage: %s\nconsole:\n%s", what, err, state, b.consoleText())
}

func (b *browser) consoleText() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var lines []string
	for _, m := range b.messages {
		lines = append(lines, "  "+m.String())
	}
	return strings.Join(lines, "\n")
}

// checkConsole fails the test for an exception the page did not catch or
// a resource the Content-Security-Policy refused: the console must run
// under its own policy without tripping it.
func (b *browser) checkConsole() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.messages {
		if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
			b.t.Errorf("the page's console: %s", m)
		}
	}
}

// screenshot writes the viewport to docs/screenshots/<name>.png when the
// test runs with HERALD_UPDATE_SCREENSHOTS=1, once the page has loaded.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	if !b.shots {
		return
	}
	// A toast of an earlier step (Retry's) must not sit on the picture.
	b.waitFor(name+" page loaded for its screenshot", loaded+` && !document.querySelector(".toast")`)
	ctx, cancel := context.WithTimeout(b.ctx, consoleStep)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.fail("screenshot "+name, err)
	}
	if err := os.MkdirAll(screenshotsDir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(screenshotsDir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// rowIDs returns the data-id of every row matching the test id.
func (b *browser) rowIDs(id string) []string {
	b.t.Helper()
	return evaluate[[]string](b, "read the "+id+" rows",
		fmt.Sprintf(`[...document.querySelectorAll(%s)].map(e => e.dataset.id || "")`, js(testid(id))))
}

// setField gives a filter field a value the way a user does: typing into
// an input, choosing in a select.
func (b *browser) setField(id, value string) {
	b.t.Helper()
	sel := testid(id)
	b.waitFor("the "+id+" field", visible(sel))
	tag := evaluate[string](b, "read "+id, fmt.Sprintf(`document.querySelector(%s).tagName`, js(sel)))
	if tag == "SELECT" {
		b.step("choose "+value+" in "+id, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
			`(() => { const e = document.querySelector(%s); e.value = %s; e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true})) })()`,
			js(sel), js(value))))
		return
	}
	b.step("type "+value+" in "+id, chromedp.Clear(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), value))
}

// phoneLayout is what the phone test measures of the events page.
type phoneLayout struct {
	Rows        int     `json:"rows"`
	RowsInView  int     `json:"rowsInView"`
	ScrollWidth float64 `json:"scrollWidth"`
	Width       float64 `json:"width"`
}

// TestConsole signs in to the console and walks it as an operator does:
// find an event by filter, follow it to its lifecycle, retry a dead
// webhook, check the audit chain, and read the events on a phone.
func TestConsole(t *testing.T) {
	t.Parallel()
	chromiumPath(t) // before anything starts
	hooks := newReceiver(t)
	s := startServer(t, t.TempDir(), randomKey(), "--allow-private-targets")

	// The console is served beside the API, under its own policy.
	resp, err := http.Get(s.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("GET /: %d %q CSP %q, want the console's page under its policy",
			resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Security-Policy"))
	}

	// What the workflows and work pages list (first, so that the
	// events come on top of their system events).
	s.mustDo("POST", "/v1/workflows", []byte(`{"name":"notify-risk","steps":[{"name":"call-risk","kind":"webhook","url":"`+hooks.URL+`/risk"}]}`), 201)
	s.createWork("/v1/exports", `{"name":"nightly","filter":{"origin":"api"},
		"export":{"mode":"batch","cron":"0 2 * * *","destination":{"type":"files","dir":"nightly","format":"parquet"}}}`)

	// Four kinds of events: a login attempted then succeeded (one
	// lifecycle), a transfer, and what a webhook receiver refuses.
	hooks.setAnswer(func(hook, int) (int, string) { return http.StatusBadRequest, `{"error":"unknown field"}` })
	sub := s.subscribe(fmt.Sprintf(`{"url":%q,"filter":{"types":["consoleDead"]}}`, hooks.URL))
	s.ingest(`{"id":"login-attempt-1","category":"authentication","type":"login","eventStatus":"attempted","coreCustomerId":"cust-42",
		"data":{"external_login_id":"lg-1","ip_address":"203.0.113.7","login_method":"password"}}`)
	login := s.ingest(`{"id":"login-ok-1","category":"authentication","type":"login","eventStatus":"succeeded","coreCustomerId":"cust-42",
		"data":{"external_login_id":"lg-1","ip_address":"203.0.113.7","login_method":"otp"}}`)
	s.ingest(`{"id":"transfer-1","category":"transfers","type":"singleTransferCreated","coreCustomerId":"cust-42","data":{"amount":"250.00","currency":"EUR"}}`)
	dead := s.ingest(`{"id":"dead-1","category":"tests","type":"consoleDead"}`)

	b := newBrowser(t, s.URL)
	defer func() {
		b.t = t
		b.checkConsole()
	}()

	signedIn := t.Run("sign in", func(t *testing.T) {
		b.t = t
		b.step("open the console", chromedp.Navigate(s.URL+"/"))
		b.waitFor("the sign-in form", visible(testid("signin")))
		// A wrong key is refused with the problem's detail.
		b.step("sign in with a wrong key",
			chromedp.SendKeys(chromedp.CSS(testid("signin-key")), "hk_wrong_key"),
			chromedp.Click(chromedp.CSS(testid("signin-submit"))))
		b.waitFor("the refusal of a wrong key", visible(testid("error"))+` && `+visible(testid("signin")))
		b.step("sign in with the key",
			chromedp.Clear(chromedp.CSS(testid("signin-key"))),
			chromedp.SendKeys(chromedp.CSS(testid("signin-key")), s.Key),
			chromedp.Click(chromedp.CSS(testid("signin-submit"))))
		b.waitFor("the navigation after signing in", visible(testid("nav-events"))+` && !(`+visible(testid("signin"))+`)`)
		if evaluate[bool](b, "read localStorage", `Object.keys(localStorage).some(k => (localStorage.getItem(k) || "").includes(`+js(s.Key)+`))`) {
			t.Error("the key is in localStorage; it must be kept in sessionStorage only")
		}
	})
	if !signedIn {
		return
	}

	t.Run("filter events by type", func(t *testing.T) {
		b.t = t
		b.step("open the events", chromedp.Click(chromedp.CSS(testid("nav-events"))))
		b.waitFor("the event rows", visible(testid("event-row")))
		b.waitFor("every event listed", `document.querySelectorAll('[data-testid="event-row"][data-id="dead-1"], [data-testid="event-row"][data-id="transfer-1"]').length === 2`)
		b.screenshot("events")
		b.setField("filter-type", "singleTransferCreated")
		b.step("apply the filter", chromedp.Click(chromedp.CSS(testid("filter-apply"))))
		b.waitFor("only the transfer listed", `(() => { const rows = [...document.querySelectorAll('[data-testid="event-row"]')];
			return rows.length === 1 && rows[0].dataset.id === "transfer-1" })()`)
		if hash := evaluate[string](b, "read the route", `location.hash`); !strings.Contains(hash, "type=singleTransferCreated") {
			t.Errorf("route %q does not carry the filter type=singleTransferCreated", hash)
		}
	})

	t.Run("event to lifecycle", func(t *testing.T) {
		b.t = t
		b.setField("filter-type", "login")
		b.step("apply the filter", chromedp.Click(chromedp.CSS(testid("filter-apply"))))
		b.waitFor("the two logins listed", `(() => { const ids = [...document.querySelectorAll('[data-testid="event-row"]')].map(e => e.dataset.id).sort();
			return ids.length === 2 && ids[0] === "login-attempt-1" && ids[1] === "login-ok-1" })()`)
		b.clickLink(testid("event-row")+`[data-id="login-ok-1"]`, "login-ok-1")
		b.waitFor("the event's JSON", fmt.Sprintf(`%s && document.querySelector('[data-testid="event-json"]').textContent.includes('"login-ok-1"')`, visible(testid("event-json"))))
		if hash := evaluate[string](b, "read the route", `location.hash`); !strings.HasPrefix(hash, "#/events/login-ok-1") {
			t.Errorf("event page route %q, want #/events/login-ok-1", hash)
		}
		hrefs := evaluate[map[string]string](b, "read the event's links", `Object.fromEntries(["link-lifecycle", "link-profile", "link-session"].map(id => {
			const e = document.querySelector('[data-testid="' + id + '"]');
			return [id, e ? e.getAttribute("href") || "" : ""] }))`)
		want := map[string]string{"link-lifecycle": "#/lifecycles/lg-1", "link-profile": "#/profiles/cust-42"}
		if login.SessionID != "" {
			want["link-session"] = "#/sessions/" + login.SessionID
		}
		for id, w := range want {
			if !strings.HasSuffix(hrefs[id], w) {
				t.Errorf("%s links to %q, want %s", id, hrefs[id], w)
			}
		}
		b.screenshot("event")
		b.step("follow the lifecycle link", chromedp.Click(chromedp.CSS(testid("link-lifecycle"))))
		b.waitFor("the lifecycle's timeline", visible(testid("lifecycle-timeline")))
		b.waitFor("both logins on the timeline", `document.querySelectorAll('[data-testid="lifecycle-timeline"] [data-testid="timeline-item"]').length === 2`)
		items := evaluate[[]string](b, "read the timeline", `[...document.querySelectorAll('[data-testid="timeline-item"]')].map(e => e.textContent)`)
		if !strings.Contains(items[0]+items[1], "attempted") || !strings.Contains(items[0]+items[1], "succeeded") {
			t.Errorf("timeline %q, want the statuses attempted and succeeded", items)
		}
		b.screenshot("lifecycle")
	})

	t.Run("retry a dead delivery", func(t *testing.T) {
		b.t = t
		s := s.withT(t)
		poll(t, consoleStep, "the refused event is a dead message", func() bool { return len(s.messages(sub.ID, "state=dead")) == 1 })
		b.step("open the subscriptions", chromedp.Click(chromedp.CSS(testid("nav-subscriptions"))))
		b.waitFor("the subscription listed", visible(testid("subscription-row")))
		b.clickLink(testid("subscription-row"), sub.ID)
		retry := testid("retry-" + dead.ID)
		b.waitFor("the dead message with its Retry button", visible(testid("dead-row"))+" && "+visible(retry))
		b.waitFor("the refused attempt", visible(testid("attempt-row")))
		b.screenshot("subscription")
		hooks.setAnswer(nil) // fixed: 200
		b.step("press Retry", chromedp.Click(chromedp.CSS(retry)))
		poll(t, consoleStep, "the receiver gets the retried event", func() bool { return hooks.count(dead.ID) == 2 })
		poll(t, consoleStep, "no message left", func() bool { return len(s.messages(sub.ID, "")) == 0 })
	})

	t.Run("audit chain verified", func(t *testing.T) {
		b.t = t
		b.step("open the audit", chromedp.Click(chromedp.CSS(testid("nav-audit"))))
		b.waitFor("the chain's state", visible(testid("audit-state"))+` && /verified|broken/i.test(document.querySelector('[data-testid="audit-state"]').textContent)`)
		if state := evaluate[string](b, "read the chain's state", `document.querySelector('[data-testid="audit-state"]').textContent`); !strings.Contains(strings.ToLower(state), "verified") || strings.Contains(strings.ToLower(state), "broken") {
			t.Errorf("audit state %q, want verified", state)
		}
		b.screenshot("audit")
	})

	t.Run("other pages", func(t *testing.T) {
		b.t = t
		// The lists find a lifecycle and a profile without knowing an id.
		b.step("open nav-lifecycles", chromedp.Click(chromedp.CSS(testid("nav-lifecycles"))))
		lgRow := testid("lifecycle-row") + `[data-id="lg-1"]`
		b.waitFor("the lg-1 lifecycle listed", loaded+` && `+visible(lgRow))
		if row := evaluate[string](b, "read the lg-1 row", `document.querySelector(`+js(lgRow)+`).textContent`); !strings.Contains(row, "succeeded") || !strings.Contains(row, "cust-42") {
			t.Errorf("lifecycle row %q, want its status succeeded and its entity cust-42", row)
		}
		if hrefs := evaluate[[]string](b, "read the lg-1 row's links", `[...document.querySelectorAll(`+js(lgRow+" a")+`)].map(a => a.getAttribute("href"))`); !slices.Contains(hrefs, "#/lifecycles/lg-1") || !slices.Contains(hrefs, "#/profiles/cust-42") {
			t.Errorf("lifecycle row links %q, want #/lifecycles/lg-1 and #/profiles/cust-42", hrefs)
		}
		b.screenshot("lifecycles")
		// lg-1 has ended: the open ones are none, and the route says so.
		b.setField("filter-terminal", "no")
		b.step("apply the filter", chromedp.Click(chromedp.CSS(testid("filter-apply"))))
		b.waitFor("no open lifecycle", loaded+` && `+visible(testid("empty"))+` && !document.querySelector(`+js(testid("lifecycle-row"))+`)`)
		if hash := evaluate[string](b, "read the route", `location.hash`); !strings.Contains(hash, "terminal=no") {
			t.Errorf("route %q does not carry the filter terminal=no", hash)
		}
		b.step("open nav-profiles", chromedp.Click(chromedp.CSS(testid("nav-profiles"))))
		custRow := testid("profile-row") + `[data-id="cust-42"]`
		b.waitFor("the cust-42 profile listed", loaded+` && `+visible(custRow))
		if hrefs := evaluate[[]string](b, "read the cust-42 row's links", `[...document.querySelectorAll(`+js(custRow+" a")+`)].map(a => a.getAttribute("href"))`); !slices.Contains(hrefs, "#/profiles/cust-42") {
			t.Errorf("profile row links %q, want #/profiles/cust-42", hrefs)
		}
		b.screenshot("profiles")
		for _, p := range []struct{ nav, hash, shows, shot string }{
			{"", "#/profiles/cust-42", "login_method", "profile"},
			{"nav-workflows", "", "notify-risk", "workflows"},
			{"nav-work", "", "nightly", "work"},
		} {
			if p.nav != "" {
				b.step("open "+p.nav, chromedp.Click(chromedp.CSS(testid(p.nav))))
			} else {
				b.goTo(p.hash)
			}
			b.waitFor(p.shot+" page shows "+p.shows, loaded+` && document.querySelector('main').textContent.includes(`+js(p.shows)+`)`)
			b.screenshot(p.shot)
		}
	})

	t.Run("keyboard only", func(t *testing.T) {
		b.t = t
		b.goTo("#/events")
		b.waitFor("the events page", loaded+` && `+visible(testid("event-row")))
		// A fresh load starts keyboard navigation at the top of the page.
		b.step("load the page afresh", chromedp.Reload())
		b.waitFor("the events page, reloaded", loaded+` && `+visible(testid("event-row")))
		// A page puts the focus at its start, after the navigation: go
		// back with Shift+Tab until the audit link has it, reachable
		// without a mouse.
		reached := false
		for range 40 {
			b.step("press Shift+Tab", chromedp.KeyEvent("\t", chromedp.KeyModifiers(chromedp.ModifierShift)))
			if evaluate[bool](b, "which element has the focus", `document.activeElement === document.querySelector('[data-testid="nav-audit"]')`) {
				reached = true
				break
			}
		}
		if !reached {
			t.Fatal("40 presses of Shift+Tab did not reach the audit link")
		}
		if outline := evaluate[string](b, "the focus ring", `getComputedStyle(document.activeElement).outlineStyle`); outline == "none" {
			t.Errorf("the focused link shows no outline: focus must be visible")
		}
		b.step("press Enter", chromedp.KeyEvent("\r"))
		b.waitFor("the audit page, opened from the keyboard", visible(testid("audit-state")))
	})

	t.Run("events on a phone", func(t *testing.T) {
		b.t = t
		b.step("a 390 px wide screen", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
		b.goTo("#/events")
		b.waitFor("the event rows on a phone", visible(testid("event-row")+`[data-id="transfer-1"]`))
		layout := evaluate[phoneLayout](b, "measure the page", `(() => {
			const rows = [...document.querySelectorAll('[data-testid="event-row"]')];
			return {rows: rows.length,
				rowsInView: rows.filter(r => { const x = r.getBoundingClientRect(); return x.width > 0 && x.left >= 0 && x.left < innerWidth }).length,
				scrollWidth: document.documentElement.scrollWidth, width: innerWidth} })()`)
		if layout.Rows < 4 || layout.RowsInView != layout.Rows {
			t.Errorf("on a phone %d of %d event rows are in view, want all of at least 4", layout.RowsInView, layout.Rows)
		}
		if layout.ScrollWidth > layout.Width+1 {
			t.Errorf("on a phone the page is %v px wide in a %v px screen: it must not scroll sideways", layout.ScrollWidth, layout.Width)
		}
		if b.shots {
			b.step("scroll to the rows", chromedp.Evaluate[chromedp.Void](`(() => {
				const row = document.querySelector('[data-testid="event-row"]');
				(row.closest("section") || row.closest("table") || row).scrollIntoView({block: "start"}) })()`))
		}
		b.screenshot("events-phone")
	})
}
