package export

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldhq/herald"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// base is when the test events occurred: microseconds, as stored.
var base = time.Date(2025, 3, 14, 9, 26, 53, 589793000, time.UTC)

// testEvents returns n events as a store returns them: envelope decoded,
// Body the stored JSON (herald.MarshalEvent), seqs ascending with gaps
// (other jobs' events in between). Among them: a redacted event without
// data, a flagged one, a system event with a chain hash.
func testEvents(t *testing.T, account string, n int) []*herald.Event {
	t.Helper()
	events := make([]*herald.Event, n)
	for i := range n {
		e := &herald.Event{
			ID:               fmt.Sprintf("evt_%03d", i),
			Seq:              int64(10 + 3*i),
			Category:         "payments",
			Type:             "transferSent",
			OccurredAt:       base.Add(time.Duration(i) * time.Minute),
			ReceivedAt:       base.Add(time.Duration(i)*time.Minute + 1500*time.Microsecond),
			AgentID:          "agent-7",
			AgentType:        "customer",
			CoreCustomerID:   fmt.Sprintf("cust-%d", i%3),
			CustomerSerialID: "serial-1",
			Host:             "10.1.2.3",
			PrimaryID:        fmt.Sprintf("tx-%d", i),
			SessionID:        "sess-1",
			EventStatus:      "succeeded",
			EventLifecycleID: fmt.Sprintf("lc-%d", i),
			Data:             json.RawMessage(fmt.Sprintf(`{"amount":%d.5,"currency":"EUR","note":"a, \"quoted\"\nline <b>"}`, i)),
			Origin:           herald.OriginAPI,
			AccountID:        account,
		}
		switch i % 4 {
		case 1:
			// Erased profile: envelope kept, data and host gone.
			e.Redacted, e.Data, e.Host = true, nil, ""
		case 2:
			e.Flags = []string{herald.FlagSessionUnknown}
			e.AgentID, e.AgentType, e.SessionID = "", "", ""
		case 3:
			e.Category, e.Type, e.Origin = "work", "synced", herald.OriginSystem
			e.ChainHash = fmt.Sprintf("%064x", i)
		}
		body, err := herald.MarshalEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		e.Body = body
		events[i] = e
	}
	return events
}

func testWork(id, account string, d herald.Destination) *herald.Work {
	w := &herald.Work{
		ID:        id,
		AccountID: account,
		Kind:      herald.WorkExport,
		Secret:    herald.NewSigningSecret(),
		Export:    &herald.ExportConfig{Mode: herald.ExportBatch, Every: herald.Duration(time.Hour), Destination: d},
	}
	w.SetDefaults()
	return w
}

// decodeDetail returns a Write's detail.
func decodeDetail(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("detail %s: %v", raw, err)
	}
	return m
}
