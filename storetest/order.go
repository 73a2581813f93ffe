package storetest

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

// testOrderWithoutGaps is the case DESIGN.md §5 asks for: several writers
// on two handles ("nodes") of one database append to one account while a
// reader pages by AfterSeq. The reader must see seq n+1 right after n,
// every time: a store that lets a higher seq become visible before a lower
// one would make a real reader skip the lower one for good.
func testOrderWithoutGaps(t *testing.T, newDB NewDatabase) {
	open := newDB(t)
	nodes := []Store{open(), open()}
	// The accounts' own system events come first: the case's events
	// follow base.
	base := quietAccount(t, nodes[0], "acme")
	sideBase := quietAccount(t, nodes[1], "globex")

	const (
		writersPerNode = 8
		perWriter      = 125 // events each writer sends to acme
		perSideWriter  = 50  // events each node sends to globex meanwhile
	)
	total := len(nodes) * writersPerNode * perWriter

	// Events are built here: a writer goroutine must not call t.Fatal.
	type writer struct {
		node    Store
		account string
		events  []*herald.Event
		seqs    map[string]int64 // filled by the writer
		err     error
	}
	var writers []*writer
	for n, node := range nodes {
		for w := range writersPerNode + 1 {
			account, count := "acme", perWriter
			if w == writersPerNode {
				account, count = "globex", perSideWriter
			}
			wr := &writer{node: node, account: account, seqs: map[string]int64{}}
			for i := range count {
				raw := fmt.Sprintf(`{"id":"n%d-w%d-%d","category":"load","type":"tick","data":{"i":%d}}`, n, w, i, i)
				wr.events = append(wr.events, rawEvent(t, raw, baseTime, herald.OriginAPI))
			}
			writers = append(writers, wr)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, wr := range writers {
		wg.Go(func() { wr.err = appendInCalls(ctx, wr.node, wr.account, wr.events, wr.seqs) })
	}
	writersDone := make(chan struct{})
	go func() {
		wg.Wait()
		close(writersDone)
	}()

	seen, readErr := readWithoutGaps(ctx, nodes, "acme", base, total, writersDone)
	if readErr != nil {
		cancel() // stop the writers early: the case has failed
	}
	<-writersDone

	for _, wr := range writers {
		if wr.err != nil {
			t.Errorf("writer of %s: %v", wr.account, wr.err)
		}
	}
	if readErr != nil {
		t.Fatalf("reader: %v", readErr)
	}
	// The reader saw every event once, at the seq its writer was told.
	if len(seen) != total {
		t.Fatalf("reader saw %d distinct events, want %d", len(seen), total)
	}
	for _, wr := range writers {
		if wr.account != "acme" {
			continue
		}
		for id, seq := range wr.seqs {
			if seen[id] != seq {
				t.Fatalf("event %s: writer was told seq %d, reader found it at seq %d", id, seq, seen[id])
			}
		}
	}
	// The other account kept its own gapless count meanwhile.
	side, err := nodes[1].FindEvents(t.Context(), "globex", herald.EventFilter{AfterSeq: sideBase, Limit: 1000})
	if err != nil {
		t.Fatalf("FindEvents(globex): %v", err)
	}
	if want := len(nodes) * perSideWriter; len(side) != want {
		t.Fatalf("globex holds %d events, want %d", len(side), want)
	}
	for i, e := range side {
		if e.Seq != sideBase+int64(i+1) {
			t.Fatalf("globex event %d has seq %d, want %d", i, e.Seq, sideBase+int64(i+1))
		}
	}
}

// appendInCalls sends events in calls of 1 and 20 events, every third call
// split into two batches, and records the seq each event got. Seqs must
// only grow: a call that returned was committed before the next began.
func appendInCalls(ctx context.Context, s Store, accountID string, events []*herald.Event, seqs map[string]int64) error {
	var last int64
	for call := 0; len(events) > 0; call++ {
		size := 1
		if call%2 == 1 {
			size = 20
		}
		size = min(size, len(events))
		part := events[:size]
		events = events[size:]

		batches := []*herald.AppendBatch{{AccountID: accountID, Events: part}}
		if call%3 == 2 && size > 1 {
			batches = []*herald.AppendBatch{
				{AccountID: accountID, Events: part[:size/2]},
				{AccountID: accountID, Events: part[size/2:]},
			}
		}
		if err := s.AppendEvents(ctx, batches); err != nil {
			return fmt.Errorf("call %d: %w", call, err)
		}
		for _, b := range batches {
			for i, r := range b.Results {
				id := b.Events[i].ID
				if r.Err != nil || r.Duplicate {
					return fmt.Errorf("call %d: event %s: %s, want stored", call, id, fmtResult(r))
				}
				if r.Seq <= last {
					return fmt.Errorf("call %d: event %s got seq %d after seq %d", call, id, r.Seq, last)
				}
				last = r.Seq
				seqs[id] = r.Seq
			}
		}
	}
	return nil
}

// readWithoutGaps pages through the account by AfterSeq from base,
// alternating between nodes, until it has seen total events after it. It fails at the first
// seq that is not one more than the one before, when the writers are done
// and events are missing, or at ctx's deadline; the error says what was
// last seen. It returns the seq of every event by id.
func readWithoutGaps(ctx context.Context, nodes []Store, accountID string, base int64, total int, writersDone <-chan struct{}) (map[string]int64, error) {
	seen := make(map[string]int64, total)
	last := base
	for page := 0; last < base+int64(total); page++ {
		// Checked before the query: if the writers were done by then, an
		// empty page means events are missing for good.
		done := isClosed(writersDone)
		events, err := nodes[page%len(nodes)].FindEvents(ctx, accountID, herald.EventFilter{AfterSeq: last, Limit: 100})
		if err != nil {
			return seen, fmt.Errorf("page %d after seq %d of %d: %w", page, last, base+int64(total), err)
		}
		for _, e := range events {
			if e.Seq != last+1 {
				return seen, fmt.Errorf("page %d: after seq %d came seq %d (event %s): a gap", page, last, e.Seq, e.ID)
			}
			if prev, ok := seen[e.ID]; ok {
				return seen, fmt.Errorf("event %s seen at seq %d and again at seq %d", e.ID, prev, e.Seq)
			}
			last = e.Seq
			seen[e.ID] = e.Seq
		}
		if len(events) == 0 {
			if done {
				return seen, fmt.Errorf("writers are done but the account ends at seq %d of %d", last, base+int64(total))
			}
			runtime.Gosched()
		}
	}
	return seen, nil
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
