package bench

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald"
)

// DeliveryOptions configure RunDelivery.
type DeliveryOptions struct {
	Options
	// Events is the number of events to send, each to be delivered once.
	Events int
	// Batch is the events per ingest request.
	Batch int
	// Rate is the offered load in events per second; zero sends as fast
	// as Concurrency workers can.
	Rate float64
	// Receiver is the address the local receiver listens on; the server
	// must be allowed to reach it (herald serve --allow-private-targets
	// for a loopback address).
	Receiver string
	// Wait bounds how long to wait for the last deliveries after the last
	// event was sent.
	Wait time.Duration
	// MaxInFlight is the subscription's bound on requests under way.
	MaxInFlight int
	RunID       string
	// Backlog measures delivery alone: the subscription is paused while
	// the events are stored, then resumed, and the rate is that of
	// draining the backlog; latency then runs from the resume.
	Backlog bool
}

func (o *DeliveryOptions) setDefaults() {
	o.Options.setDefaults()
	if o.Batch == 0 {
		o.Batch = 100
	}
	if o.Receiver == "" {
		o.Receiver = "127.0.0.1:0"
	}
	if o.Wait == 0 {
		o.Wait = time.Minute
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = 64
	}
	if o.RunID == "" {
		o.RunID = strings.ToLower(rand.Text()[:8])
	}
}

func (o *DeliveryOptions) validate() error {
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
	case o.MaxInFlight < 1 || o.MaxInFlight > 256:
		return fmt.Errorf("--max-in-flight: must be from 1 to 256, not %d", o.MaxInFlight)
	}
	return nil
}

// receiver is the partner's endpoint: it verifies each request's
// signature, as a partner would, and notes when each event arrived.
type receiver struct {
	*arrivals
	keys [][]byte
	bad  atomic.Int64
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	now := time.Now().UnixNano()
	id := r.Header.Get("webhook-id")
	if err != nil || !rc.verify(id, r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature"), body) {
		rc.bad.Add(1)
		http.Error(w, "bad signature", http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
	rc.arrived(id, now)
}

// verify checks a Standard Webhooks signature header against the
// subscription's secret.
func (rc *receiver) verify(id, ts, header string, body []byte) bool {
	for _, key := range rc.keys {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + ts + "."))
		mac.Write(body)
		want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		for _, sig := range strings.Fields(header) {
			if hmac.Equal([]byte(sig), []byte(want)) {
				return true
			}
		}
	}
	return false
}

// RunDelivery measures webhook delivery end to end: it starts a receiver,
// subscribes it to the account's events, sends o.Events events, and
// reports deliveries per second and the latency from the start of each
// event's ingest request to its arrival at the receiver.
func RunDelivery(ctx context.Context, o DeliveryOptions) (*Report, error) {
	o.setDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	client, done := o.client()
	defer done()
	auth := "Bearer " + o.Key

	ln, err := net.Listen("tcp", o.Receiver)
	if err != nil {
		return nil, fmt.Errorf("--receiver: %w", err)
	}
	rc := &receiver{arrivals: newArrivals(o.RunID, o.Events)}
	srv := &http.Server{Handler: rc, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	// Subscribe the receiver to this run's events only.
	sub, err := createSubscription(ctx, client, o.endpoint("/v1/subscriptions"), auth, map[string]any{
		"name":        "herald bench delivery " + o.RunID,
		"url":         "http://" + ln.Addr().String() + "/hook",
		"filter":      map[string]any{"origin": herald.OriginAPI},
		"maxInFlight": o.MaxInFlight,
	})
	if err != nil {
		return nil, err
	}
	subURL := o.endpoint("/v1/subscriptions/" + sub.ID)
	defer deleteSubscription(client, subURL, auth)
	if o.Backlog {
		if err := post(ctx, client, subURL+"/pause", auth); err != nil {
			return nil, err
		}
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sub.Secret, herald.SecretPrefix))
	if err != nil {
		return nil, fmt.Errorf("the server's signing secret %q… is not whsec_<base64>", sub.Secret[:min(10, len(sub.Secret))])
	}
	rc.keys = [][]byte{key}

	gen := newGenerator(o.RunID, DefaultCustomers, time.Now().Add(-time.Duration(o.Events)*eventSpacing).UTC().Truncate(time.Millisecond))
	p, stopPace := sendPlan(o.Options, sendOptions{
		name: "delivery", events: o.Events, batch: o.Batch, rate: o.Rate,
		params: map[string]any{
			"url": o.URL, "events": o.Events, "batch": o.Batch, "rate": o.Rate,
			"concurrency": o.Concurrency, "maxInFlight": o.MaxInFlight, "runId": o.RunID, "backlog": o.Backlog,
		},
	}, client, gen, rc.arrivals)
	defer stopPace()
	ingest, err := run(ctx, o.Options, p)
	if err != nil {
		return ingest, err
	}
	if o.Backlog {
		resumed := time.Now().UnixNano()
		for i := range rc.sent {
			rc.sent[i].Store(resumed)
		}
		if err := post(ctx, client, subURL+"/resume", auth); err != nil {
			return ingest, err
		}
	}

	// Wait for the deliveries still under way.
	select {
	case <-rc.done:
	case <-time.After(o.Wait):
	case <-ctx.Done():
	}
	return deliveryReport(ingest, rc, o), nil
}

// deliveryReport turns what the receiver saw into the report: Ops are the
// events delivered, the rate runs from the first ingest request to the
// last arrival, and the latency is ingest-to-receive.
func deliveryReport(ingest *Report, rc *receiver, o DeliveryOptions) *Report {
	var extra string
	if bad := rc.bad.Load(); bad > 0 {
		extra = fmt.Sprintf("; %d requests with a bad signature", bad)
	}
	return arrivalReport(ingest, rc.arrivals, "deliveries", o.Wait, extra)
}

type createdSubscription struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
}

func createSubscription(ctx context.Context, c *http.Client, endpoint, auth string, body map[string]any) (*createdSubscription, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header = http.Header{"Authorization": {auth}, "Content-Type": {"application/json"}}
	var resp bytes.Buffer
	status, _, err := exchange(c, req, &resp)
	if err != nil {
		return nil, fmt.Errorf("create the subscription: %w", err)
	}
	if status != http.StatusCreated {
		return nil, statusError(http.MethodPost, "/v1/subscriptions", status, resp.Bytes())
	}
	var s createdSubscription
	if err := json.Unmarshal(resp.Bytes(), &s); err != nil || s.ID == "" || s.Secret == "" {
		return nil, errors.New("create the subscription: the answer has no id and secret")
	}
	return &s, nil
}

// post makes a POST without a body that must answer 200.
func post(ctx context.Context, c *http.Client, endpoint, auth string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", auth)
	var resp bytes.Buffer
	status, _, err := exchange(c, req, &resp)
	if err == nil && status != http.StatusOK {
		err = statusError(http.MethodPost, strings.TrimPrefix(endpoint, strings.SplitN(endpoint, "/v1/", 2)[0]), status, resp.Bytes())
	}
	return err
}

func deleteSubscription(c *http.Client, endpoint, auth string) {
	req, err := http.NewRequest(http.MethodDelete, endpoint, nil)
	if err != nil {
		return
	}
	req.Header.Set("Authorization", auth)
	var resp bytes.Buffer
	exchange(c, req, &resp)
}
