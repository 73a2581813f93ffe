package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/heraldhq/herald"
)

// DefaultCustomers is the size of the customer pool events are spread
// over.
const DefaultCustomers = 10000

// IngestOptions configure RunIngest.
type IngestOptions struct {
	Options
	// Events is the number of events to send.
	Events int
	// Batch is the number of events a request carries: 1 sends each alone
	// to POST /v1/events, more sends them to POST /v1/events/batch.
	Batch int
	// NDJSON sends batches as application/x-ndjson rather than
	// {"events":[…]}.
	NDJSON bool
	// Customers is the size of the pool coreCustomerId is drawn from;
	// zero means DefaultCustomers.
	Customers int
	// RunID goes into every event id (bench-<run>-<n>). Zero means a
	// random one, so that a rerun sends new events, not duplicates.
	RunID string
	// Start is the occurredAt of the first event; the others follow a
	// millisecond apart. Zero means the run's events end about now.
	//
	// The same RunID and Start send the same events again: that measures
	// the duplicate path. (The same RunID alone would send the same ids
	// with other times, which the server refuses as conflicts.)
	Start time.Time
	// Unregistered sends the events under type names the server does not
	// know (userLoggedInRaw, …), which it stores without validation: run
	// with and without to measure what validation costs.
	Unregistered bool
}

func (o *IngestOptions) setDefaults() {
	o.Options.setDefaults()
	if o.Batch == 0 {
		o.Batch = 1
	}
	if o.Customers == 0 {
		o.Customers = DefaultCustomers
	}
	if o.RunID == "" {
		o.RunID = strings.ToLower(rand.Text()[:8])
	}
	if o.Start.IsZero() {
		o.Start = time.Now().Add(-time.Duration(o.Events) * eventSpacing)
	}
	o.Start = o.Start.UTC().Truncate(time.Millisecond)
}

func (o *IngestOptions) validate() error {
	if err := o.Options.validate(); err != nil {
		return err
	}
	switch {
	case o.Events < 1:
		return fmt.Errorf("--events: must be at least 1, not %d", o.Events)
	case o.Batch < 1 || o.Batch > herald.MaxBatchEvents:
		return fmt.Errorf("--batch: must be from 1 to %d (the server's limit per batch), not %d", herald.MaxBatchEvents, o.Batch)
	case o.Customers < 1:
		return fmt.Errorf("--customers: must be at least 1, not %d", o.Customers)
	case len(o.RunID) > 32 || !herald.ValidID(o.RunID):
		return fmt.Errorf("--run-id: %q must be 1 to 32 letters, digits or . _ : ~ -", o.RunID)
	}
	return nil
}

// RunIngest sends o.Events generated banking events and reports events/s
// and the latency of each request. Failed requests are not retried: a
// benchmark measures what the server does, and a retry would hide it.
func RunIngest(ctx context.Context, o IngestOptions) (*Report, error) {
	o.setDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	client, done := o.client()
	defer done()

	gen := newGenerator(o.RunID, o.Customers, o.Start)
	if o.Unregistered {
		gen.typeSuffix = "Raw"
	}
	single := o.Batch == 1
	path, ctype, label, format := "/v1/events/batch", "application/json", "batch", "json"
	switch {
	case single:
		path, label, format = "/v1/events", "single", "json"
	case o.NDJSON:
		ctype, format = "application/x-ndjson", "ndjson"
	}
	endpoint, auth := o.endpoint(path), "Bearer "+o.Key

	p := plan{
		name:     "ingest",
		unit:     "events",
		requests: (o.Events + o.Batch - 1) / o.Batch,
		units:    o.Events,
		labels:   []string{label},
		params: map[string]any{
			"url": o.URL, "concurrency": o.Concurrency, "events": o.Events, "batch": o.Batch,
			"format": format, "customers": o.Customers, "runId": o.RunID,
			"start": o.Start.Format(time.RFC3339Nano), "unregistered": o.Unregistered,
		},
		newWorker: func(int) func(context.Context, int) outcome {
			var resp bytes.Buffer
			size := 1024
			return func(ctx context.Context, req int) outcome {
				first := req * o.Batch
				n := min(o.Batch, o.Events-first)
				// A fresh body each time: the transport may still hold the
				// last one after answering (RoundTrip closes bodies
				// asynchronously), so reusing it could corrupt a request.
				body := make([]byte, 0, size)
				if single {
					body = gen.appendEvent(body, first)
				} else {
					body = gen.appendBatch(body, first, n, o.NDJSON)
				}
				size = len(body) + len(body)/8

				hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
				if err != nil {
					return outcome{failed: n, err: err, fatal: true}
				}
				hreq.Header = http.Header{
					"Authorization": {auth},
					"Content-Type":  {ctype},
					"Accept":        {"application/json"},
				}
				status, latency, err := exchange(client, hreq, &resp)
				switch {
				case err != nil:
					return outcome{failed: n, err: err}
				case status/100 != 2:
					return outcome{failed: n, err: statusError(http.MethodPost, path, status, resp.Bytes()), fatal: fatalStatus(status)}
				}
				out := outcome{answered: true, latency: latency}
				if single {
					// 201 stored, 200 already held (the same id and content).
					out.ops = 1
					if status == http.StatusOK {
						out.dups = 1
					}
					return out
				}
				return batchOutcome(out, n, resp.Bytes())
			}
		},
	}
	return run(ctx, o.Options, p)
}

// batchOutcome reads a batch response's counts into out.
func batchOutcome(out outcome, n int, body []byte) outcome {
	var r struct {
		Created, Duplicates, Failed int
	}
	if err := json.Unmarshal(body, &r); err != nil {
		out.failed = n
		out.err = fmt.Errorf("POST /v1/events/batch: decode response: %w", err)
		return out
	}
	out.ops = r.Created + r.Duplicates
	out.dups = r.Duplicates
	// Whatever the server did not say it stored has failed, whether it
	// counted it in "failed" or not.
	out.failed = max(n-out.ops, 0)
	if out.failed > 0 {
		out.err = fmt.Errorf("POST /v1/events/batch: %d of %d events failed; first: %s", out.failed, n, firstFailedItem(body))
	}
	return out
}

// firstFailedItem describes the first result of a batch response that has
// no seq (neither created nor duplicate): its problem's detail when it has
// one, else the result itself.
func firstFailedItem(body []byte) string {
	var r struct {
		Results []json.RawMessage `json:"results"`
	}
	if json.Unmarshal(body, &r) != nil {
		return "(results unreadable)"
	}
	for i, raw := range r.Results {
		var item struct {
			Seq     *int64 `json:"seq"`
			Index   *int   `json:"index"`
			Detail  string `json:"detail"`
			Problem struct {
				Detail string `json:"detail"`
			} `json:"problem"`
		}
		if json.Unmarshal(raw, &item) != nil || item.Seq != nil {
			continue
		}
		if item.Index != nil {
			i = *item.Index
		}
		switch {
		case item.Problem.Detail != "":
			return fmt.Sprintf("item %d: %s", i, item.Problem.Detail)
		case item.Detail != "":
			return fmt.Sprintf("item %d: %s", i, item.Detail)
		case len(raw) > 300:
			return fmt.Sprintf("item %d: %s…", i, raw[:300])
		default:
			return fmt.Sprintf("item %d: %s", i, raw)
		}
	}
	return "(no failed result in the response)"
}
