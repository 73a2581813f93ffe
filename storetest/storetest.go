// Package storetest is the one conformance suite every Herald store must
// pass. Each store's own test calls Run with a way to open it; a behaviour
// tested here holds on SQLite and on PostgreSQL alike.
package storetest

import (
	"context"
	"testing"

	"github.com/heraldhq/herald"
)

// Store is everything one database provides.
type Store interface {
	herald.AccountService
	herald.KeyService
	herald.EventService
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	Close() error
}

// Opener opens a handle on one database. Calling it twice gives two
// independent handles on the same data, as two `herald serve` processes
// would have: the concurrency cases use this. The handles are closed by
// t.Cleanup.
type Opener func() Store

// NewDatabase returns an Opener on a fresh, empty database of its own, so
// that tests can run in parallel.
type NewDatabase func(t *testing.T) Opener
