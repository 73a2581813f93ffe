package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/heraldhq/herald"
)

// StreamOptions configure RunStream.
type StreamOptions struct {
	Options
	// Events is the number of events to send, each to be received once.
	Events int
	// Batch is the events per ingest request.
	Batch int
	// Rate is the offered load in events per second; zero sends as fast
	// as Concurrency workers can.
	Rate float64
	// Wait bounds how long to wait for the last events after the last
	// was sent.
	Wait  time.Duration
	RunID string
}

func (o *StreamOptions) setDefaults() {
	o.Options.setDefaults()
	if o.Batch == 0 {
		o.Batch = 100
	}
	if o.Wait == 0 {
		o.Wait = time.Minute
	}
	if o.RunID == "" {
		o.RunID = strings.ToLower(rand.Text()[:8])
	}
}

func (o *StreamOptions) validate() error {
	if err := o.Options.validate(); err != nil {
		return err
	}
	switch {
	case o.Events < 1:
		return fmt.Errorf("--events: must be at least 1, not %d", o.Events)
	case o.Batch < 1 || o.Batch > herald.MaxBatchEvents:
		return fmt.Errorf("--batch: must be from 1 to %d, not %d", herald.MaxBatchEvents, o.Batch)
	case o.Rate < 0:
		return fmt.Errorf("--rate: must not be negative")
	case o.Wait < 0:
		return fmt.Errorf("--wait: must not be negative")
	case len(o.RunID) > 32 || !herald.ValidID(o.RunID):
		return fmt.Errorf("--run-id: %q must be 1 to 32 letters, digits or . _ : ~ -", o.RunID)
	}
	return nil
}

// RunStream measures the live stream end to end: it opens GET
// /v1/events/stream for the account's client events from now on, sends
// o.Events events in batches, and reports the events per second received
// on the stream and the latency from the start of each event's ingest
// request to its arrival on the stream.
func RunStream(ctx context.Context, o StreamOptions) (*Report, error) {
	o.setDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	client, done := o.client()
	defer done()
	a := newArrivals(o.RunID, o.Events)

	// The stream's own client: the same connections, but no timeout, which
	// would cut the stream off.
	streamClient := &http.Client{Transport: client.Transport}
	sctx, hangUp := context.WithCancel(ctx)
	defer hangUp()
	body, err := openStream(sctx, streamClient, o.endpoint("/v1/events/stream?origin="+herald.OriginAPI), o.Key)
	if err != nil {
		return nil, err
	}
	readDone := make(chan error, 1)
	go func() { readDone <- readStream(body, a) }()
	// Hang up, then wait for the reader, whatever way the run ends.
	defer func() {
		hangUp()
		<-readDone
	}()

	gen := newGenerator(o.RunID, DefaultCustomers, time.Now().Add(-time.Duration(o.Events)*eventSpacing).UTC().Truncate(time.Millisecond))
	p, stopPace := sendPlan(o.Options, sendOptions{
		name: "stream", events: o.Events, batch: o.Batch, rate: o.Rate,
		params: map[string]any{
			"url": o.URL, "events": o.Events, "batch": o.Batch, "rate": o.Rate,
			"concurrency": o.Concurrency, "runId": o.RunID,
		},
	}, client, gen, a)
	defer stopPace()
	ingest, err := run(ctx, o.Options, p)
	if err != nil {
		return ingest, err
	}

	// Wait for the events still on their way.
	var extra string
	wait := time.NewTimer(o.Wait)
	defer wait.Stop()
	select {
	case <-a.done:
	case <-wait.C:
	case <-ctx.Done():
	case err := <-readDone:
		// The server ended the stream (it shut down) or it broke.
		readDone <- err // for the deferred wait
		extra = "; the stream ended early"
		if err != nil {
			extra = "; the stream failed: " + err.Error()
		}
	}
	return arrivalReport(ingest, a, "events", o.Wait, extra), nil
}

// openStream connects to the stream and returns its body once the server
// answered 200.
func openStream(ctx context.Context, c *http.Client, endpoint, key string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return nil, err
	}
	req.Header = http.Header{"Authorization": {"Bearer " + key}, "Accept": {"text/event-stream"}}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("open the stream: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, statusError(http.MethodGet, "/v1/events/stream", resp.StatusCode, b)
	}
	return resp.Body, nil
}

// readStream reads the stream until it ends, noting when each event of the
// run arrived. It picks the event id out of each data line without
// decoding the event, so that the client keeps up with the server. It
// returns nil when the stream ends cleanly or the run hangs up.
func readStream(body io.ReadCloser, a *arrivals) error {
	defer body.Close()
	r := bufio.NewReaderSize(body, 256<<10)
	needle := []byte(`"id":"` + a.prefix)
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: an event body larger than
			// any this benchmark sends. Skip the rest of it.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = r.ReadSlice('\n')
			}
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
		now := time.Now().UnixNano()
		if !bytes.HasPrefix(line, []byte("data:")) {
			continue
		}
		i := bytes.Index(line, needle)
		if i < 0 {
			continue
		}
		n, ok := 0, false
		for _, c := range line[i+len(needle):] {
			if c < '0' || c > '9' {
				ok = c == '"'
				break
			}
			n = n*10 + int(c-'0')
			if n >= len(a.received) {
				break
			}
		}
		if ok && n < len(a.received) {
			a.arrivedN(n, now)
		}
	}
}
