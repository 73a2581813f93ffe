package httpapi

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/heraldhq/herald"
)

// batchAnswer is the answer of POST /v1/events/batch, success or problem.
type batchAnswer struct {
	Problem
	Results []struct {
		Index      int
		Status     string
		ID         string
		Seq        int64
		ReceivedAt string
		Problem    *Problem
	}
	Created, Duplicates, Failed int
}

// outcome summarizes the results as "status[:pointers]" per item.
func (a batchAnswer) outcome() []string {
	var out []string
	for i, r := range a.Results {
		s := r.Status
		if r.Index != i {
			s = fmt.Sprintf("index %d at %d", r.Index, i)
		}
		if r.Problem != nil {
			s += ":" + r.Problem.Type[strings.LastIndex(r.Problem.Type, "/")+1:]
			for _, f := range r.Problem.Errors {
				s += " " + f.Pointer
			}
		}
		out = append(out, s)
	}
	return out
}

func batch(events ...string) string {
	return `{"events":[` + strings.Join(events, ",") + `]}`
}

// storedCount returns how many events the clients of account sent were
// stored: the system events they caused are not counted.
func (e *env) storedCount(account string) int {
	e.store.mu.Lock()
	defer e.store.mu.Unlock()
	n := 0
	for _, ev := range e.store.events[account] {
		if ev.Origin == herald.OriginAPI {
			n++
		}
	}
	return n
}

func TestBatchMixed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stored := event(map[string]any{"id": "known"})
	e.do("POST", "/v1/events", e.ingest, stored).wantStatus(t, 201)

	var a batchAnswer
	e.do("POST", "/v1/events/batch", e.ingest, batch(
		event(nil),
		stored,
		event(map[string]any{"category": nil, "colour": "red"}),
		event(map[string]any{"id": "known", "type": "userLoggedOut"}),
		event(map[string]any{"id": "new-1"}),
	)).wantStatus(t, 200).json(t, &a)
	want := []string{"created", "duplicate", "failed:invalid /events/2/category /events/2/colour", "failed:conflict /events/3/id", "created"}
	if got := a.outcome(); !slices.Equal(got, want) {
		t.Errorf("outcome\n got %q\nwant %q", got, want)
	}
	if a.Created != 2 || a.Duplicates != 1 || a.Failed != 2 {
		t.Errorf("counts %d/%d/%d, want 2/1/2", a.Created, a.Duplicates, a.Failed)
	}
	// Each login is followed by the system event of the session it
	// started: known has seq 1, its session's event 2.
	r := a.Results
	if r[0].ID != "evt-0001" || r[0].Seq != 3 || r[0].ReceivedAt != "2026-01-02T15:04:05.123456Z" || r[1].Seq != 1 || r[4].ID != "new-1" || r[4].Seq != 5 {
		t.Errorf("results %+v", r)
	}
	if r[2].ID != "" || r[3].ID != "known" || r[3].Seq != 0 {
		t.Errorf("failed results %+v %+v", r[2], r[3])
	}
	if n := e.storedCount("acme"); n != 3 {
		t.Errorf("%d events stored, want 3", n)
	}
}

func TestBatchAtomic(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.do("POST", "/v1/events", e.ingest, event(map[string]any{"id": "known"})).wantStatus(t, 201)
	conflicting := event(map[string]any{"id": "known", "type": "userLoggedOut"})

	cases := []struct {
		name     string
		events   []string
		want     int
		pointers []string
		outcome  []string
	}{
		{
			"invalid event", []string{event(nil), event(map[string]any{"data": 1}), event(map[string]any{"id": "mine"})},
			400, []string{"/events/1/data"},
			[]string{"failed:aborted", "failed:invalid /events/1/data", "failed:aborted"},
		},
		{
			"invalid and conflicting", []string{event(map[string]any{"type": nil}), conflicting},
			400, []string{"/events/0/type"},
			[]string{"failed:invalid /events/0/type", "failed:aborted"},
		},
		{
			"conflict with a stored event", []string{event(nil), conflicting, event(map[string]any{"id": "mine"})},
			409, []string{"/events/1/id"},
			[]string{"failed:aborted", "failed:conflict /events/1/id", "failed:aborted"},
		},
		{
			"conflict within the batch", []string{event(map[string]any{"id": "twice"}), event(map[string]any{"id": "twice", "type": "other"})},
			409, []string{"/events/1/id"},
			[]string{"failed:aborted", "failed:conflict /events/1/id"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.storedCount("acme")
			var a batchAnswer
			e.do("POST", "/v1/events/batch?atomic=true", e.ingest, batch(c.events...)).wantStatus(t, c.want).json(t, &a)
			if got := pointers(a.Problem); !slices.Equal(got, c.pointers) {
				t.Errorf("pointers %q, want %q (%s)", got, c.pointers, a.Detail)
			}
			if got := a.outcome(); !slices.Equal(got, c.outcome) {
				t.Errorf("outcome\n got %q\nwant %q", got, c.outcome)
			}
			for _, r := range a.Results {
				if r.Problem.Status != c.want && r.Problem.Type == problemTypeBase+"aborted" {
					t.Errorf("aborted item status %d, want the batch's %d", r.Problem.Status, c.want)
				}
			}
			if a.Created != 0 || a.Failed != len(c.events) || !strings.Contains(a.Detail, "nothing was stored") {
				t.Errorf("counts %d/%d/%d, detail %q", a.Created, a.Duplicates, a.Failed, a.Detail)
			}
			if n := e.storedCount("acme"); n != before {
				t.Errorf("%d events stored by a failed atomic batch", n-before)
			}
		})
	}

	t.Run("all valid", func(t *testing.T) {
		var a batchAnswer
		e.do("POST", "/v1/events/batch?atomic=true", e.ingest, batch(event(nil), event(map[string]any{"id": "known"}))).wantStatus(t, 200).json(t, &a)
		if got := a.outcome(); !slices.Equal(got, []string{"created", "duplicate"}) {
			t.Errorf("outcome %q", got)
		}
	})
}

func TestBatchRepeatedIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.do("POST", "/v1/events", e.ingest, event(map[string]any{"id": "stored"})).wantStatus(t, 201)
	var a batchAnswer
	e.do("POST", "/v1/events/batch", e.ingest, batch(
		event(map[string]any{"id": "a"}),
		event(map[string]any{"id": "a"}),
		event(map[string]any{"id": "a", "type": "other"}),
		// The first "stored" conflicts with the stored event; the second
		// matches it, so it is a duplicate of that.
		event(map[string]any{"id": "stored", "type": "other"}),
		event(map[string]any{"id": "stored"}),
	)).wantStatus(t, 200).json(t, &a)
	want := []string{"created", "duplicate", "failed:conflict /events/2/id", "failed:conflict /events/3/id", "duplicate"}
	if got := a.outcome(); !slices.Equal(got, want) {
		t.Errorf("outcome\n got %q\nwant %q", got, want)
	}
	if a.Results[0].Seq != a.Results[1].Seq || a.Results[4].Seq != 1 {
		t.Errorf("repeats' seqs %+v", a.Results)
	}
}

func TestBatchNDJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := event(nil) + "\r\n\n   \n" + `{"category":"authentication","type":` + "\n" + event(map[string]any{"colour": 1}) + "\n" + event(nil)
	var a batchAnswer
	e.do("POST", "/v1/events/batch", e.ingest, body, "Content-Type", "application/x-ndjson; charset=utf-8").wantStatus(t, 200).json(t, &a)
	want := []string{"created", "failed:invalid /events/1", "failed:invalid /events/2/colour", "created"}
	if got := a.outcome(); !slices.Equal(got, want) {
		t.Errorf("outcome\n got %q\nwant %q", got, want)
	}

	p := e.do("POST", "/v1/events/batch", e.ingest, "\n \n", "Content-Type", "application/x-ndjson").wantStatus(t, 400).problem(t)
	if !slices.Equal(pointers(p), []string{""}) {
		t.Errorf("empty NDJSON: %+v", p)
	}
}

func TestBatchLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	many := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = event(nil)
		}
		return out
	}
	e.do("POST", "/v1/events/batch", e.ingest, batch(many(herald.MaxBatchEvents)...)).wantStatus(t, 200)

	p := e.do("POST", "/v1/events/batch", e.ingest, batch(many(herald.MaxBatchEvents+1)...)).wantStatus(t, 413).problem(t)
	if !strings.Contains(p.Detail, "1000 events") {
		t.Errorf("detail %q", p.Detail)
	}
	e.do("POST", "/v1/events/batch", e.ingest, strings.Join(many(herald.MaxBatchEvents+1), "\n"), "Content-Type", "application/x-ndjson").wantStatus(t, 413)

	big := event(map[string]any{"data": map[string]any{"blob": strings.Repeat("x", 200<<10)}})
	p = e.do("POST", "/v1/events/batch", e.ingest, batch(slices.Repeat([]string{big}, 26)...)).wantStatus(t, 413).problem(t)
	if !strings.Contains(p.Detail, "5 MiB") {
		t.Errorf("detail %q", p.Detail)
	}

	// One event over 256 KiB fails that event only.
	huge := event(map[string]any{"data": map[string]any{"blob": strings.Repeat("x", herald.MaxEventBytes)}})
	var a batchAnswer
	e.do("POST", "/v1/events/batch", e.ingest, batch(event(nil), huge)).wantStatus(t, 200).json(t, &a)
	if got := a.outcome(); !slices.Equal(got, []string{"created", "failed:too-large /events/1"}) {
		t.Errorf("outcome %q", got)
	}
}

func TestBatchBodyInvalid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		name     string
		path     string
		body     string
		pointers []string
	}{
		{"an array", "/v1/events/batch", `[` + event(nil) + `]`, []string{""}},
		{"not JSON", "/v1/events/batch", `{"events":[{]}`, []string{""}},
		{"cut short", "/v1/events/batch", `{"events":[` + event(nil), []string{""}},
		{"trailing data", "/v1/events/batch", batch(event(nil)) + `{}`, []string{""}},
		{"events not an array", "/v1/events/batch", `{"events":{}}`, []string{"/events"}},
		{"no events", "/v1/events/batch", `{"events":[]}`, []string{"/events"}},
		{"events missing", "/v1/events/batch", `{}`, []string{"/events"}},
		{"unknown field", "/v1/events/batch", `{"events":[],"atomic":true}`, []string{"/atomic"}},
		{"events twice", "/v1/events/batch", `{"events":[` + event(nil) + `],"events":[]}`, []string{"/events"}},
		{"bad atomic", "/v1/events/batch?atomic=yes", batch(event(nil)), []string{"?atomic"}},
		{"unknown parameter", "/v1/events/batch?dryRun=true", batch(event(nil)), []string{"?dryRun"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := e.do("POST", c.path, e.ingest, c.body).wantStatus(t, 400).problem(t)
			if got := pointers(p); !slices.Equal(got, c.pointers) {
				t.Errorf("pointers %q, want %q (%s)", got, c.pointers, p.Detail)
			}
		})
	}
	if n := e.storedCount("acme"); n != 0 {
		t.Errorf("%d events stored", n)
	}
}
