package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// EventsChannel is the PostgreSQL notification channel on which every
// transaction that stores events names, at its commit, each account it
// stored events for (see Listen).
const EventsChannel = "herald_events"

// How Listen keeps its connection: it checks a quiet connection every
// listenPingInterval, and after an error connects again, waiting
// listenMinBackoff at first and twice as long after each failure, up to
// listenMaxBackoff.
var (
	listenPingInterval = 30 * time.Second
	listenPingTimeout  = 10 * time.Second
	listenMinBackoff   = 250 * time.Millisecond
	listenMaxBackoff   = 15 * time.Second
)

// Listen calls fn with the id of an account each time a transaction that
// stored events for it commits: an append, the system events of a change,
// an expiry of sessions and visits, made through any Store on the same
// database, in this process or another. A transaction that stores events
// for several accounts names each once. fn runs on Listen's goroutine, one
// call at a time, and should return quickly.
//
// Listen holds a connection of its own, outside the pool, on which it
// LISTENs to EventsChannel. When that connection fails it connects again,
// waiting longer after each failure, and logs to Options.Logger; what was
// committed while it was not listening is not told, so callers must not
// rely on fn alone (the delivery engine also polls). Listen returns nil
// once ctx ends.
//
// Notifications are per database, not per schema: with several Heralds in
// one database (in schemas of their own) fn also hears of the others'
// accounts.
func (s *Store) Listen(ctx context.Context, fn func(accountID string)) error {
	backoff := listenMinBackoff
	failing := false
	for {
		listening := false
		err := s.listen(ctx, fn, func() {
			listening = true
			if failing {
				s.log.Info("postgres: listening for new events again")
			}
		})
		if ctx.Err() != nil {
			return nil
		}
		if listening {
			backoff = listenMinBackoff
		}
		failing = true
		s.log.Warn("postgres: not listening for new events: deliveries wait for their next poll until the connection is back",
			"err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, listenMaxBackoff)
	}
}

// listen connects, LISTENs, calls listening, then passes notifications to
// fn until ctx ends or the connection fails.
func (s *Store) listen(ctx context.Context, fn func(string), listening func()) error {
	// The pool's settings, so the same server, user and options, but a
	// connection of its own: it is held for as long as Listen runs, and
	// must not take one of the pool's.
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+EventsChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	listening()
	for {
		waitCtx, cancel := context.WithTimeout(ctx, listenPingInterval)
		n, err := conn.WaitForNotification(waitCtx)
		cancel()
		switch {
		case err == nil:
			fn(n.Payload)
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		case !errors.Is(err, context.DeadlineExceeded) || conn.IsClosed():
			return fmt.Errorf("wait for notifications: %w", err)
		}
		// Quiet for a while: make sure the connection is still there, as
		// a server or network gone silent would otherwise go unnoticed.
		pingCtx, cancel := context.WithTimeout(ctx, listenPingTimeout)
		err = conn.Ping(pingCtx)
		cancel()
		if err != nil {
			return fmt.Errorf("ping: %w", err)
		}
	}
}
