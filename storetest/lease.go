package storetest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"
)

// twoNodeLeases is a case of one kind of lease taken from two nodes at
// once: ownersPerNode owners on each node call lease callsEach times, up
// to maxEach rows each, with leases that do not expire while they run.
type twoNodeLeases[T any] struct {
	call  string // the lease call, for messages
	lease func(s Store, ctx context.Context, owner string, now time.Time, ttl time.Duration, max int) ([]T, error)
	key   func(T) string // "account/id" of a row
	// use, if set, is what an owner does at once with what its call i
	// gave it: a save, which must go through.
	use func(ctx context.Context, s Store, owner string, i int, held []T) error

	ownersPerNode, maxEach, callsEach int
}

// run checks that a row goes to one owner only and that each owner gets
// no more than its max; then, with one more call each, one at a time,
// that together they hold all (the keys of every row), each what it held
// before.
func (c twoNodeLeases[T]) run(t *testing.T, nodes []Store, all []string, t0 time.Time) {
	t.Helper()
	var mu sync.Mutex
	holders := map[string]map[string]bool{} // row → owners that were told they hold it
	var owners []string
	var funcs []func(context.Context) error
	for n, node := range nodes {
		for o := range c.ownersPerNode {
			owner := fmt.Sprintf("node%d-owner%d", n, o)
			owners = append(owners, owner)
			funcs = append(funcs, func(ctx context.Context) error {
				for i := range c.callsEach {
					held, err := c.lease(node, ctx, owner, t0.Add(time.Duration(i)*time.Second), time.Hour, c.maxEach)
					if err != nil {
						return fmt.Errorf("%s: %s %d: %w", owner, c.call, i, err)
					}
					if len(held) > c.maxEach {
						return fmt.Errorf("%s: %s %d: %d rows, more than max %d", owner, c.call, i, len(held), c.maxEach)
					}
					if c.use != nil {
						if err := c.use(ctx, node, owner, i, held); err != nil {
							return err
						}
					}
					mu.Lock()
					for _, k := range idsOf(held, c.key) {
						if holders[k] == nil {
							holders[k] = map[string]bool{}
						}
						holders[k][owner] = true
					}
					mu.Unlock()
				}
				return nil
			})
		}
	}
	runConcurrently(t, funcs)

	for _, k := range slices.Sorted(maps.Keys(holders)) {
		if len(holders[k]) > 1 {
			t.Errorf("%s was held by %v at once", k, slices.Sorted(maps.Keys(holders[k])))
		}
	}
	var union []string
	for i, owner := range owners {
		got, err := c.lease(nodes[i%len(nodes)], t.Context(), owner, t0.Add(time.Minute), time.Hour, c.maxEach)
		held := idsOf(must(t, got, err, "%s(%s)", c.call, owner), c.key)
		slices.Sort(held)
		if len(slices.Compact(slices.Clone(held))) != len(held) {
			t.Errorf("%s(%s) returned one twice: %v", c.call, owner, held)
		}
		for _, k := range held {
			if !holders[k][owner] && len(holders[k]) > 0 {
				t.Errorf("%s now holds %s, which %v held", owner, k, slices.Sorted(maps.Keys(holders[k])))
			}
		}
		union = append(union, held...)
	}
	slices.Sort(union)
	if !slices.Equal(union, all) {
		t.Errorf("together the owners hold %v; want each of %v once", union, all)
	}
}
