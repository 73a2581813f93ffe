package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// DefaultPageSize is the limit of the paging queries.
const DefaultPageSize = 100

// QueryOptions configure RunQuery.
type QueryOptions struct {
	Options
	// Requests is the number of queries to make.
	Requests int
	// PageSize is the limit of the queries that page through the log;
	// zero means DefaultPageSize.
	PageSize int
	// Seed makes the choice of filter values repeatable; zero means a
	// random one.
	Seed uint64
}

func (o *QueryOptions) setDefaults() {
	o.Options.setDefaults()
	if o.PageSize == 0 {
		o.PageSize = DefaultPageSize
	}
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().UnixNano())
	}
}

func (o *QueryOptions) validate() error {
	if err := o.Options.validate(); err != nil {
		return err
	}
	switch {
	case o.Requests < 1:
		return fmt.Errorf("--requests: must be at least 1, not %d", o.Requests)
	case o.PageSize < 1 || o.PageSize > maxQueryLimit:
		return fmt.Errorf("--page-size: must be from 1 to %d (the server's largest limit), not %d", maxQueryLimit, o.PageSize)
	}
	return nil
}

// maxQueryLimit is the server's largest page.
const maxQueryLimit = 1000

// Kinds of query, made in turn. Each selects the kind of slice a reader of
// a bank's events asks for.
const (
	queryType      = iota // one event type, from the start of the log
	queryCustomer         // one customer's events
	queryLifecycle        // one transaction's lifecycle
	queryTypeFrom         // one type, from a random point of the log
	queryPage             // paging through everything by afterSeq
)

var queryNames = []string{
	queryType:      "type",
	queryCustomer:  "coreCustomerId",
	queryLifecycle: "eventLifecycleId",
	queryTypeFrom:  "type+afterSeq",
	queryPage:      "afterSeq paging",
}

// RunQuery makes o.Requests filtered GET /v1/events requests and reports
// their latency, overall and per kind of filter.
//
// It first surveys the stored events (a few dozen requests, not measured):
// the range of seq, and samples of the types, customers and lifecycles
// that exist, so that each query selects real events rather than none.
func RunQuery(ctx context.Context, o QueryOptions) (*Report, error) {
	o.setDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	client, done := o.client()
	defer done()

	auth := "Bearer " + o.Key
	base := o.endpoint("/v1/events") + "?"
	s, err := survey(ctx, client, base, auth)
	if err != nil {
		return nil, err
	}

	var kinds []int
	for k := range queryNames {
		if (k == queryCustomer && len(s.customers) == 0) || (k == queryLifecycle && len(s.lifecycles) == 0) {
			continue // the stored events have none to filter by
		}
		kinds = append(kinds, k)
	}
	labels := make([]string, len(kinds))
	for i, k := range kinds {
		labels[i] = queryNames[k]
	}
	pageLimit := "&limit=" + strconv.Itoa(o.PageSize)

	p := plan{
		name:     "query",
		unit:     "requests",
		requests: o.Requests,
		units:    o.Requests,
		labels:   labels,
		params: map[string]any{
			"url": o.URL, "concurrency": o.Concurrency, "requests": o.Requests, "pageSize": o.PageSize,
			"storedSeq": s.maxSeq, "sampledTypes": len(s.types), "sampledCustomers": len(s.customers),
			"sampledLifecycles": len(s.lifecycles),
		},
		newWorker: func(w int) func(context.Context, int) outcome {
			rng := rand.New(rand.NewPCG(o.Seed, uint64(w)))
			pick := func(vs []string) string { return url.QueryEscape(vs[rng.IntN(len(vs))]) }
			randomSeq := func() int64 { return s.firstSeq - 1 + rng.Int64N(s.maxSeq-s.firstSeq+1) }
			var (
				resp  bytes.Buffer
				after int64 = -1 // where this worker's paging goes on; -1: start anew
			)
			return func(ctx context.Context, req int) outcome {
				label := req % len(kinds)
				var q string
				switch kinds[label] {
				case queryType:
					q = "type=" + pick(s.types)
				case queryCustomer:
					q = "coreCustomerId=" + pick(s.customers)
				case queryLifecycle:
					q = "eventLifecycleId=" + pick(s.lifecycles)
				case queryTypeFrom:
					q = "type=" + pick(s.types) + "&afterSeq=" + strconv.FormatInt(randomSeq(), 10) + pageLimit
				case queryPage:
					if after < 0 {
						after = randomSeq()
					}
					q = "afterSeq=" + strconv.FormatInt(after, 10) + pageLimit
				}
				hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, base+q, nil)
				if err != nil {
					return outcome{label: label, failed: 1, err: err, fatal: true}
				}
				hreq.Header = http.Header{"Authorization": {auth}, "Accept": {"application/json"}}
				status, latency, err := exchange(client, hreq, &resp)
				switch {
				case err != nil:
					return outcome{label: label, failed: 1, err: err}
				case status != http.StatusOK:
					return outcome{label: label, failed: 1, err: statusError(http.MethodGet, "/v1/events?"+q, status, resp.Bytes()), fatal: fatalStatus(status)}
				}
				if kinds[label] == queryPage {
					var pg page
					if err := json.Unmarshal(resp.Bytes(), &pg); err != nil {
						return outcome{label: label, answered: true, latency: latency, failed: 1, err: fmt.Errorf("GET /v1/events?%s: decode response: %w", q, err)}
					}
					after = -1
					if n := len(pg.Events); n > 0 && pg.HasMore {
						after = pg.Events[n-1].Seq
					}
				}
				return outcome{label: label, answered: true, latency: latency, ops: 1}
			}
		},
	}
	return run(ctx, o.Options, p)
}

// page is what the benchmark reads of a GET /v1/events response.
type page struct {
	Events []struct {
		Seq              int64  `json:"seq"`
		Type             string `json:"type"`
		CoreCustomerID   string `json:"coreCustomerId"`
		EventLifecycleID string `json:"eventLifecycleId"`
	} `json:"events"`
	HasMore bool `json:"hasMore"`
}

// stored describes the events a query benchmark runs against.
type stored struct {
	firstSeq, maxSeq             int64
	types, customers, lifecycles []string
}

// Survey limits: samples spread over the log, and values kept of each kind.
const (
	surveyPages     = 10
	surveyPageSize  = 200
	surveyMaxValues = 5000
	surveyMaxProbes = 200
	surveyFirstSpan = 1024
)

// survey finds the range of seq and samples filter values from the events
// stored. Seq ascends but may have gaps, so the greatest one is found by
// asking for one event after a guess: there is one exactly when the guess
// is below the greatest seq.
func survey(ctx context.Context, c *http.Client, base, auth string) (*stored, error) {
	probes := 0
	get := func(q string) (*page, error) {
		probes++
		if probes > surveyMaxProbes {
			return nil, errors.New("survey of stored events: too many requests")
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+q, nil)
		if err != nil {
			return nil, err
		}
		req.Header = http.Header{"Authorization": {auth}, "Accept": {"application/json"}}
		var buf bytes.Buffer
		status, _, err := exchange(c, req, &buf)
		if err != nil {
			return nil, fmt.Errorf("survey of stored events: %w", err)
		}
		if status != http.StatusOK {
			return nil, fmt.Errorf("survey of stored events: %w", statusError(http.MethodGet, "/v1/events?"+q, status, buf.Bytes()))
		}
		var pg page
		if err := json.Unmarshal(buf.Bytes(), &pg); err != nil {
			return nil, fmt.Errorf("survey of stored events: GET /v1/events?%s: decode response: %w", q, err)
		}
		return &pg, nil
	}
	// after returns the first seq above x, or false.
	after := func(x int64) (int64, bool, error) {
		pg, err := get("afterSeq=" + strconv.FormatInt(x, 10) + "&limit=1")
		if err != nil || len(pg.Events) == 0 {
			return 0, false, err
		}
		return pg.Events[0].Seq, true, nil
	}

	first, ok, err := after(0)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errors.New("the server holds no events for this key's account: load some first, with herald bench ingest")
	}
	// lo is a stored seq and none is above hi: gallop up, then bisect.
	lo, hi := first, int64(-1)
	for span := int64(surveyFirstSpan); hi < 0; span *= 2 {
		seq, ok, err := after(lo + span)
		if err != nil {
			return nil, err
		}
		if ok {
			lo = seq
		} else {
			hi = lo + span
		}
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		seq, ok, err := after(mid)
		if err != nil {
			return nil, err
		}
		if ok {
			lo = seq
		} else {
			hi = mid
		}
	}
	s := &stored{firstSeq: first, maxSeq: lo}

	seenType, seenCustomer, seenLifecycle := map[string]bool{}, map[string]bool{}, map[string]bool{}
	keep := func(list *[]string, seen map[string]bool, v string) {
		if v != "" && len(*list) < surveyMaxValues && !seen[v] {
			seen[v] = true
			*list = append(*list, v)
		}
	}
	span := s.maxSeq - s.firstSeq + 1
	for i := range int64(surveyPages) {
		from := s.firstSeq - 1 + i*span/surveyPages
		pg, err := get("afterSeq=" + strconv.FormatInt(from, 10) + "&limit=" + strconv.Itoa(surveyPageSize))
		if err != nil {
			return nil, err
		}
		for _, e := range pg.Events {
			keep(&s.types, seenType, e.Type)
			keep(&s.customers, seenCustomer, e.CoreCustomerID)
			keep(&s.lifecycles, seenLifecycle, e.EventLifecycleID)
		}
	}
	return s, nil
}
