package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dustin/go-humanize"
)

// Defaults for zero Options fields.
const (
	DefaultURL              = "http://127.0.0.1:8080"
	DefaultConcurrency      = 8
	DefaultTimeout          = 30 * time.Second
	DefaultProgressInterval = 2 * time.Second
)

// Options are what every benchmark shares; each one's flags of the same
// name set them.
type Options struct {
	// URL is the server's base URL, such as http://127.0.0.1:8080.
	URL string
	// Key is the API key, sent as "Authorization: Bearer <key>".
	Key string
	// Concurrency is the number of workers, each with one request in
	// flight at a time.
	Concurrency int
	// Timeout bounds one request; a request that takes longer fails.
	Timeout time.Duration
	// MaxErrorRate is the fraction of the planned work (events for ingest,
	// requests for query) allowed to fail before the run stops with an
	// error. Zero allows no failure at all.
	MaxErrorRate float64
	// Client sends the requests. Nil means one made for the run, keeping
	// a warm connection per worker.
	Client *http.Client
	// Progress, if set, receives a progress line every ProgressInterval.
	Progress io.Writer
	// ProgressInterval defaults to DefaultProgressInterval.
	ProgressInterval time.Duration
	// Terminal makes the progress line rewrite itself in place instead of
	// adding a line each time; set it when Progress is a terminal.
	Terminal bool
}

func (o *Options) setDefaults() {
	if o.URL == "" {
		o.URL = DefaultURL
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.ProgressInterval == 0 {
		o.ProgressInterval = DefaultProgressInterval
	}
}

// validate reports the first bad option, named as its flag is, since that
// is what a user of `herald bench` has to change.
func (o *Options) validate() error {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--url: %q is not an http(s) URL (use one such as %s)", o.URL, DefaultURL)
	}
	if o.Key == "" {
		return errors.New("--key: no API key (pass --key or set HERALD_KEY)")
	}
	if o.Concurrency < 1 {
		return fmt.Errorf("--concurrency: must be at least 1, not %d", o.Concurrency)
	}
	if o.Timeout < 0 {
		return fmt.Errorf("--timeout: must be positive, not %s", o.Timeout)
	}
	if o.MaxErrorRate < 0 || o.MaxErrorRate > 1 || math.IsNaN(o.MaxErrorRate) {
		return fmt.Errorf("--max-error-rate: must be a fraction from 0 to 1, not %g", o.MaxErrorRate)
	}
	return nil
}

// endpoint joins the base URL and a path.
func (o *Options) endpoint(path string) string {
	return strings.TrimRight(o.URL, "/") + path
}

// client returns the client to use and a function to call when done with
// it.
func (o *Options) client() (*http.Client, func()) {
	if o.Client != nil {
		return o.Client, func() {}
	}
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		// Every worker keeps its connection between requests; a new TCP
		// handshake per request would measure the kernel, not Herald.
		MaxIdleConns:        2 * o.Concurrency,
		MaxIdleConnsPerHost: 2 * o.Concurrency,
		IdleConnTimeout:     90 * time.Second,
		// Herald's responses are small; compressing them costs both sides
		// CPU that a 2-core benchmark machine does not have to spare.
		DisableCompression: true,
	}
	return &http.Client{Transport: tr, Timeout: o.Timeout}, tr.CloseIdleConnections
}

// outcome is what one request of a run came to.
type outcome struct {
	// label indexes plan.labels: the kind of request, for the breakdown.
	label int
	// answered means a 2xx response: latency holds the time it took.
	answered bool
	latency  time.Duration
	// ops are the units of work done (events stored, requests answered),
	// failed those that failed, dups the events the server already had.
	ops, failed, dups int
	// err says what failed, when anything did.
	err error
	// fatal stops the run at once: no later request can succeed.
	fatal bool
}

// plan describes one benchmark run for the shared driver.
type plan struct {
	name string
	unit string // what ops count: "events", "requests"
	// requests is the number of requests to make, units the planned ops:
	// the denominator of the error budget and of progress.
	requests int
	units    int
	// labels name the kinds of request, for the per-kind breakdown.
	labels []string
	params map[string]any
	// newWorker returns the function worker w calls for each request
	// number; it may keep state between calls, as only w calls it.
	newWorker func(w int) func(ctx context.Context, req int) outcome
}

// tally holds the running totals, read by the progress line while the
// workers add to them.
type tally struct {
	ops, dups        atomic.Int64
	requests, failed atomic.Int64 // failed is in units, like ops
	failedRequests   atomic.Int64

	mu    sync.Mutex
	first error
}

func (t *tally) add(out outcome) {
	t.requests.Add(1)
	t.ops.Add(int64(out.ops))
	t.dups.Add(int64(out.dups))
	if out.failed > 0 {
		t.failed.Add(int64(out.failed))
	}
	if !out.answered {
		t.failedRequests.Add(1)
	}
	if out.err != nil {
		t.mu.Lock()
		if t.first == nil {
			t.first = out.err
		}
		t.mu.Unlock()
	}
}

func (t *tally) firstError() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.first
}

// errAborted is the cancellation cause when the run stops itself.
type errAborted struct{ err error }

func (e errAborted) Error() string { return e.err.Error() }
func (e errAborted) Unwrap() error { return e.err }

// run makes p.requests requests with o.Concurrency workers and reports.
// The report is returned even with an error, covering the work done.
func run(ctx context.Context, o Options, p plan) (*Report, error) {
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	budget := int64(math.Floor(o.MaxErrorRate * float64(p.units)))
	var (
		t    tally
		next atomic.Int64
		wg   sync.WaitGroup
	)
	// Each worker keeps its own latencies, per label, so recording one
	// takes no lock; they are merged once the workers are done.
	lat := make([][][]time.Duration, o.Concurrency)
	perWorker := p.requests/(o.Concurrency*len(p.labels)) + 1

	start := time.Now()
	stopProgress := startProgress(o, p, &t, start)
	for w := range o.Concurrency {
		do := p.newWorker(w)
		rec := make([][]time.Duration, len(p.labels))
		for i := range rec {
			rec[i] = make([]time.Duration, 0, perWorker)
		}
		wg.Go(func() {
			defer func() { lat[w] = rec }()
			for ctx.Err() == nil {
				req := int(next.Add(1) - 1)
				if req >= p.requests {
					return
				}
				out := do(ctx, req)
				if ctx.Err() != nil && !out.answered {
					// Cut short by the end of the run: neither a success
					// nor the server's failure.
					return
				}
				t.add(out)
				if out.answered {
					rec[out.label] = append(rec[out.label], out.latency)
				}
				switch {
				case out.fatal:
					cancel(errAborted{out.err})
				case out.failed > 0 && t.failed.Load() > budget:
					cancel(errAborted{fmt.Errorf("%s of %s %s failed, over the %g%% allowed by --max-error-rate; first failure: %w",
						humanize.Comma(t.failed.Load()), humanize.Comma(int64(p.units)), p.unit, 100*o.MaxErrorRate, t.firstError())})
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopProgress()

	rep := newReport(p, &t, start, elapsed, lat)
	if parent.Err() != nil {
		rep.Interrupted = true
		return rep, fmt.Errorf("%s interrupted after %s of %s %s: %w",
			p.name, humanize.Comma(rep.Ops), humanize.Comma(int64(p.units)), p.unit, parent.Err())
	}
	var ab errAborted
	if err := context.Cause(ctx); errors.As(err, &ab) {
		rep.Interrupted = true
		return rep, fmt.Errorf("%s stopped: %w", p.name, ab.err)
	}
	return rep, nil
}

// startProgress prints a progress line every o.ProgressInterval until the
// returned function is called; that function waits for the last line.
func startProgress(o Options, p plan, t *tally, start time.Time) (stop func()) {
	if o.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(o.ProgressInterval)
		defer tick.Stop()
		lastOps, lastAt := int64(0), start
		printed := false
		for {
			select {
			case <-done:
				if o.Terminal && printed {
					fmt.Fprintln(o.Progress)
				}
				return
			case now := <-tick.C:
				ops := t.ops.Load()
				rate := float64(ops-lastOps) / now.Sub(lastAt).Seconds()
				lastOps, lastAt = ops, now
				line := fmt.Sprintf("%s %5s  %s/%s %s  %s %s/s  %s failed",
					p.name, now.Sub(start).Truncate(time.Second),
					humanize.Comma(ops), humanize.Comma(int64(p.units)), p.unit,
					humanize.Comma(int64(rate)), p.unit, humanize.Comma(t.failed.Load()))
				if o.Terminal {
					fmt.Fprintf(o.Progress, "\r\033[K%s", line)
				} else {
					fmt.Fprintln(o.Progress, line)
				}
				printed = true
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// statusError describes a non-2xx response by its problem detail (RFC
// 9457) when it has one.
func statusError(method, path string, status int, body []byte) error {
	var p struct {
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &p) == nil && (p.Detail != "" || p.Title != "") {
		msg = p.Detail
		if msg == "" {
			msg = p.Title
		}
	}
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	err := fmt.Errorf("%s %s: HTTP %d: %s", method, path, status, msg)
	switch status {
	case http.StatusUnauthorized:
		err = fmt.Errorf("%w (check --key or HERALD_KEY)", err)
	case http.StatusForbidden:
		err = fmt.Errorf("%w (the key lacks the scope this benchmark needs)", err)
	}
	return err
}

// fatalStatus reports whether every further request would fail the same
// way.
func fatalStatus(status int) bool {
	return status == http.StatusUnauthorized || status == http.StatusForbidden
}

// exchange sends req and reads the whole response into buf, timing both.
// A non-nil error means no response was read.
func exchange(c *http.Client, req *http.Request, buf *bytes.Buffer) (status int, latency time.Duration, err error) {
	buf.Reset()
	t0 := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	_, err = buf.ReadFrom(resp.Body)
	latency = time.Since(t0)
	if err != nil {
		return 0, 0, fmt.Errorf("%s %s: read response: %w", req.Method, req.URL.Path, err)
	}
	return resp.StatusCode, latency, nil
}

// sortedLabels returns the keys of m in order, for stable output.
func sortedLabels[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
