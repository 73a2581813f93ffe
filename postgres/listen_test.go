package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/postgres"
)

// A server hears of the events another server stores, also after its
// listening connection was killed.
func TestListen(t *testing.T) {
	t.Parallel()
	dbURL := newSchema(t)
	// Notifications are per database, and other tests run in it at the
	// same time: this test's names are its own.
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	tag := hex.EncodeToString(suffix)
	account := "listen-" + tag
	app := "herald_listen_test_" + tag
	sep := "&"
	if !strings.Contains(dbURL, "://") {
		sep = " " // a key=value connection string
	}
	listener := open(t, dbURL+sep+"application_name="+app)
	writer := open(t, dbURL)

	ctx := t.Context()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := writer.CreateAccount(ctx, &herald.Account{ID: account, CreatedAt: now}, nil); err != nil {
		t.Fatal(err)
	}

	heard := make(chan string, 100)
	listenCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- listener.Listen(listenCtx, func(accountID string) {
			if accountID == account {
				heard <- accountID
			}
		})
	}()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Listen returned %v after its context ended, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Listen did not return within 5s of its context ending")
		}
	})

	admin, err := pgx.Connect(ctx, serverURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())

	seq := 0
	appendEvent := func() {
		t.Helper()
		seq++
		e, err := herald.ParseEvent([]byte(`{"id":"ev-` + strconv.Itoa(seq) + `","category":"c","type":"t"}`))
		if err != nil {
			t.Fatal(err)
		}
		e.Complete(now, herald.OriginAPI, nil)
		b := &herald.AppendBatch{AccountID: account, Events: []*herald.Event{e}}
		if err := writer.AppendEvents(ctx, []*herald.AppendBatch{b}); err != nil || b.Results[0].Err != nil {
			t.Fatalf("AppendEvents: %v, %+v", err, b.Results)
		}
	}
	expect := func(what string) {
		t.Helper()
		select {
		case <-heard:
		case <-time.After(time.Second):
			t.Fatalf("%s: not heard of within a second", what)
		}
		// A commit names its account once.
		select {
		case <-heard:
			t.Fatalf("%s: heard of twice", what)
		case <-time.After(100 * time.Millisecond):
		}
	}

	pid := waitListening(t, admin, app, 0)
	appendEvent()
	expect("an append")

	// The system event of a change is stored events too.
	typ := &herald.EventType{AccountID: account, Category: "c", Type: "t2", CreatedAt: now}
	if err := writer.CreateEventType(ctx, typ); err != nil {
		t.Fatal(err)
	}
	expect("a new event type")

	// Killed, the connection comes back and hears again.
	var killed bool
	if err := admin.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(&killed); err != nil || !killed {
		t.Fatalf("pg_terminate_backend(%d) = %v, %v", pid, killed, err)
	}
	waitListening(t, admin, app, pid)
	appendEvent()
	expect("an append after the connection was killed")
}

// waitListening waits for the connection of app that listens, other than
// the one of pid not, and returns its pid.
func waitListening(t *testing.T, admin *pgx.Conn, app string, not int32) int32 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var pid int32
		// Idle after LISTEN: it has taken effect.
		err := admin.QueryRow(t.Context(), `SELECT pid FROM pg_stat_activity
			WHERE application_name = $1 AND query = 'LISTEN `+postgres.EventsChannel+`' AND state = 'idle' AND pid <> $2`,
			app, not).Scan(&pid)
		switch {
		case err == nil:
			return pid
		case !errors.Is(err, pgx.ErrNoRows):
			t.Fatal(err)
		case time.Now().After(deadline):
			t.Fatal("no connection listens after 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
