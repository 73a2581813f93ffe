package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/mock"
)

func TestGeneratorMakesValidUniqueEvents(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	g := newGenerator("run1", 100, now.Add(-time.Second))
	ids := map[string]bool{}
	var last time.Time
	for i := range 400 {
		b := g.appendEvent(nil, i)
		e, err := herald.ParseEvent(b)
		if err != nil {
			t.Fatalf("event %d: %v\n%s", i, err, b)
		}
		if ids[e.ID] {
			t.Fatalf("event %d repeats id %s", i, e.ID)
		}
		ids[e.ID] = true
		if !e.OccurredAt.After(last) || e.OccurredAt.After(now) {
			t.Errorf("event %d occurred at %s, after %s: want ascending times up to now", i, e.OccurredAt, last)
		}
		last = e.OccurredAt
		if again := g.appendEvent(nil, i); !bytes.Equal(again, b) {
			t.Fatalf("event %d differs when made again", i)
		}
	}
}

func TestGeneratorBatch(t *testing.T) {
	t.Parallel()
	g := newGenerator("run1", 100, time.Now())
	var body struct{ Events []json.RawMessage }
	if err := json.Unmarshal(g.appendBatch(nil, 10, 5, false), &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Events) != 5 || !bytes.Equal(body.Events[0], g.appendEvent(nil, 10)) {
		t.Errorf("batch of %d events, first %s; want 5 from event 10", len(body.Events), body.Events[0])
	}
	lines := bytes.Split(bytes.TrimSuffix(g.appendBatch(nil, 10, 5, true), []byte("\n")), []byte("\n"))
	if len(lines) != 5 || !bytes.Equal(lines[4], g.appendEvent(nil, 14)) {
		t.Errorf("NDJSON batch of %d lines, want events 10 to 14", len(lines))
	}
}

// The client must not be the bottleneck: a batch of 100 should take well
// under the ~10 ms a server spends storing it.
func BenchmarkAppendBatch(b *testing.B) {
	g := newGenerator("run1", DefaultCustomers, time.Now())
	var buf []byte
	n := 0
	for b.Loop() {
		buf = g.appendBatch(buf[:0], n, 100, false)
		n += 100
	}
	b.SetBytes(int64(len(buf)))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/event")
}

// TestGeneratorPassesTheBuiltinCatalog checks that the generated events are
// what the built-in types accept, so that a benchmark measures storing
// validated events, not refusing them; and that --unregistered events are
// of no registered type.
func TestGeneratorPassesTheBuiltinCatalog(t *testing.T) {
	t.Parallel()
	cat := catalog.New(
		&mock.EventTypeService{FindEventTypesFn: func(context.Context, string) ([]*herald.EventType, error) { return nil, nil }},
		&mock.SettingsService{FindSettingsFn: func(context.Context, string) (*herald.Settings, error) { return herald.DefaultSettings(), nil }},
		catalog.Options{},
	)
	g := newGenerator("run1", 100, time.Now())
	raw := newGenerator("run1", 100, time.Now())
	raw.typeSuffix = "Raw"
	for i := range 400 {
		e, err := herald.ParseEvent(g.appendEvent(nil, i))
		if err != nil {
			t.Fatal(err)
		}
		if err := cat.Prepare(t.Context(), "acme", e); err != nil {
			t.Fatalf("event %d (%s/%s): %v", i, e.Category, e.Type, err)
		}
		if e.Def == nil {
			t.Fatalf("event %d (%s/%s) is of no registered type", i, e.Category, e.Type)
		}
		if e, err = herald.ParseEvent(raw.appendEvent(nil, i)); err != nil {
			t.Fatal(err)
		}
		if err := cat.Prepare(t.Context(), "acme", e); err != nil || e.Def != nil {
			t.Fatalf("unregistered event %d (%s/%s): def %v, err %v", i, e.Category, e.Type, e.Def, err)
		}
	}
}
