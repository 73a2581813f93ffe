package herald_test

import (
	"testing"

	"github.com/heraldhq/herald"
)

// benchEvent is the size and shape of a typical banking event.
var benchEvent = []byte(`{"id":"bench-abc-123","category":"transfers","type":"singleTransferCreated","occurredAt":"2026-11-23T10:00:00.123Z","agentId":"agent-17","agentType":"customer","coreCustomerId":"cust-4711","host":"web-3.example","primaryId":"tr-99","secondaryId":"acct-1","sessionId":"sess-42","eventStatus":"pending","eventLifecycleId":"tr-99","data":{"amount":"125.50","currency":"USD","sourceAccount":"acct-1","targetAccount":"acct-2","memo":"rent for november","schedule":{"kind":"once","date":"2026-11-24"},"tags":["rent","monthly"]}}`)

func BenchmarkParseEvent(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := herald.ParseEvent(benchEvent); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalEvent(b *testing.B) {
	e, err := herald.ParseEvent(benchEvent)
	if err != nil {
		b.Fatal(err)
	}
	e.Seq = 12345
	b.ReportAllocs()
	for b.Loop() {
		if _, err := herald.MarshalEvent(e); err != nil {
			b.Fatal(err)
		}
	}
}
