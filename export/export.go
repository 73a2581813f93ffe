package export

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/delivery"
)

// Options are what the writers share with the server.
type Options struct {
	// Root is the server's export directory: a files destination writes
	// under Root/Dir, never outside Root.
	Root string
	// Client sends webhook units; nil makes one per writer.
	Client *delivery.Client
	// AllowPrivate lets a PostgreSQL destination be on a loopback or
	// private address (connections go through delivery.Dialer).
	AllowPrivate bool
	// Templates caches compiled json_templates; nil compiles each time a
	// writer opens.
	Templates *delivery.Templates
	// Now is the clock of webhook timestamps; nil is time.Now.
	Now func() time.Time
}

// Unit is one piece of an export: the events one file, one insert or
// one request holds.
type Unit struct {
	// Work is the job: its Export.Destination, ID, AccountID and Secret.
	Work *herald.Work
	// Events are stored events, seq ascending, at least one, with Body
	// set (the stored JSON).
	Events []*herald.Event
}

// Writer writes units to one destination. Writing the same unit again
// (same job, same first and last seq) gives the same result: the same
// file name (replaced atomically), the same rows (upserted by account
// and id), the same webhook-id. Write returns a JSON detail for the
// job's history: {"file":"…","bytes":n}, {"table":"…","rows":n} or
// {"status":200}. A Writer is for one goroutine at a time.
type Writer interface {
	Write(ctx context.Context, u *Unit) (json.RawMessage, error)
	Close() error
}

// Open returns the writer of w's export destination. It does not
// connect anywhere yet: a destination that is down fails the first
// Write, which the engine retries, not Open.
func Open(ctx context.Context, w *herald.Work, opts Options) (Writer, error) {
	if w == nil || w.Export == nil {
		return nil, &PermanentError{Err: errors.New("export: the job has no export configuration")}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	d := &w.Export.Destination
	switch d.Type {
	case herald.DestinationFiles:
		return openFiles(w, opts)
	case herald.DestinationPostgres:
		return openPostgres(w, opts)
	case herald.DestinationWebhook:
		return openWebhook(w, opts)
	}
	return nil, &PermanentError{Err: fmt.Errorf("export: unknown destination type %q", d.Type)}
}

// Check validates what the root package cannot: that a PostgreSQL
// destination's DSN is one pgx accepts, with only the parameters an
// export may set. The error is EINVALID naming
// /export/destination/dsn, and never repeats the password.
func Check(d *herald.Destination) error {
	if d == nil || d.Type != herald.DestinationPostgres {
		return nil
	}
	if _, _, err := parseDSN(d.DSN); err != nil {
		return herald.FieldErrorf("/export/destination/dsn", "%s", err.Error())
	}
	return nil
}

// PermanentError is a failure that trying again will not mend: a 4xx
// answer, a table whose columns do not fit, a template that fails on the
// event. The engine fails the job at once instead of retrying.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// IsPermanent reports whether err is not worth retrying.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// unitName is what identifies a unit: the job and its first and last
// seq. Files pad the seqs so that a directory lists in seq order.
func unitName(u *Unit, padded bool) string {
	first, last := u.Events[0].Seq, u.Events[len(u.Events)-1].Seq
	if padded {
		return fmt.Sprintf("%s-%012d-%012d", u.Work.ID, first, last)
	}
	return fmt.Sprintf("%s-%d-%d", u.Work.ID, first, last)
}

// checkUnit refuses what no writer can write.
func checkUnit(u *Unit) error {
	switch {
	case u == nil || u.Work == nil:
		return errors.New("export: unit without its job")
	case len(u.Events) == 0:
		return fmt.Errorf("export %s: empty unit", u.Work.ID)
	}
	return nil
}

// row is one event as the tabular destinations (CSV, Parquet,
// PostgreSQL) have it: the envelope in columns, data as JSON text. The
// struct tags are the Parquet schema: times in microseconds UTC, the
// envelope members an event may lack optional (null rather than "").
type row struct {
	AccountID        string    `parquet:"account_id"`
	ID               string    `parquet:"id"`
	Seq              int64     `parquet:"seq"`
	Category         string    `parquet:"category"`
	Type             string    `parquet:"type"`
	OccurredAt       time.Time `parquet:"occurred_at,timestamp(microsecond:utc)"`
	ReceivedAt       time.Time `parquet:"received_at,timestamp(microsecond:utc)"`
	Origin           string    `parquet:"origin"`
	AgentID          string    `parquet:"agent_id,optional"`
	AgentType        string    `parquet:"agent_type,optional"`
	CoreCustomerID   string    `parquet:"core_customer_id,optional"`
	CustomerSerialID string    `parquet:"customer_serial_id,optional"`
	Host             string    `parquet:"host,optional"`
	PrimaryID        string    `parquet:"primary_id,optional"`
	SecondaryID      string    `parquet:"secondary_id,optional"`
	SessionID        string    `parquet:"session_id,optional"`
	EventStatus      string    `parquet:"event_status,optional"`
	EventLifecycleID string    `parquet:"event_lifecycle_id,optional"`
	Redacted         bool      `parquet:"redacted"`
	Flags            []string  `parquet:"flags,list"`
	Hash             string    `parquet:"hash,optional"`
	// Data is nil when the event has none (redacted, or sent without).
	// Its JSON logical type comes from parquetSchema: parquet-go v0.32.0
	// writes nulls, or panics, for a json-tagged field of any Go type.
	Data *string `parquet:"data,optional"`
}

// columns are the column names, in order, of CSV files and PostgreSQL
// tables: the same as the Parquet schema's.
var columns = []string{
	"account_id", "id", "seq", "category", "type", "occurred_at", "received_at",
	"origin", "agent_id", "agent_type", "core_customer_id", "customer_serial_id",
	"host", "primary_id", "secondary_id", "session_id", "event_status",
	"event_lifecycle_id", "redacted", "flags", "hash", "data",
}

// rowOf returns e's row. A store may hand over events with only Body
// decoded (EventFilter.BodiesOnly): the envelope then comes from Body.
func rowOf(e *herald.Event, accountID string) (*row, error) {
	if e.Category == "" && len(e.Body) > 0 {
		var d herald.Event
		if err := json.Unmarshal(e.Body, &d); err != nil {
			return nil, fmt.Errorf("decode event %s: %w", e.ID, err)
		}
		d.AccountID = e.AccountID
		e = &d
	}
	if e.AccountID != "" {
		accountID = e.AccountID
	}
	r := &row{
		AccountID:        accountID,
		ID:               e.ID,
		Seq:              e.Seq,
		Category:         e.Category,
		Type:             e.Type,
		OccurredAt:       e.OccurredAt.UTC(),
		ReceivedAt:       e.ReceivedAt.UTC(),
		Origin:           e.Origin,
		AgentID:          e.AgentID,
		AgentType:        e.AgentType,
		CoreCustomerID:   e.CoreCustomerID,
		CustomerSerialID: e.CustomerSerialID,
		Host:             e.Host,
		PrimaryID:        e.PrimaryID,
		SecondaryID:      e.SecondaryID,
		SessionID:        e.SessionID,
		EventStatus:      e.EventStatus,
		EventLifecycleID: e.EventLifecycleID,
		Redacted:         e.Redacted,
		Flags:            e.Flags,
		Hash:             e.ChainHash,
	}
	if len(e.Data) > 0 && string(e.Data) != "null" {
		data := string(e.Data)
		r.Data = &data
	}
	return r, nil
}

// rowsOf returns the unit's rows.
func rowsOf(u *Unit) ([]*row, error) {
	rows := make([]*row, len(u.Events))
	for i, e := range u.Events {
		r, err := rowOf(e, u.Work.AccountID)
		if err != nil {
			return nil, fmt.Errorf("export %s: %w", u.Work.ID, err)
		}
		rows[i] = r
	}
	return rows, nil
}

// bodyOf returns the stored JSON of e.
func bodyOf(e *herald.Event) ([]byte, error) {
	if len(e.Body) > 0 {
		return e.Body, nil
	}
	b, err := herald.MarshalEvent(e)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", e.ID, err)
	}
	return b, nil
}

// detail encodes a Write's detail.
func detail(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		// Only maps of strings and numbers come here.
		panic(err)
	}
	return b
}
