package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/client"
)

func newEventsCmd() *cobra.Command {
	api := &apiFlags{}
	cmd := &cobra.Command{
		Use:   "events",
		Short: "List, get and follow stored events",
		Long: `Read the account's events through the API: list them with filters, get
one by id, or follow new ones as they are stored.

Each prints a table, or with --json the events as Herald stored them, one
JSON object per line (NDJSON), for jq and other tools.`,
		Args: cobra.NoArgs,
	}
	api.register(cmd.PersistentFlags())
	cmd.AddCommand(newEventsListCmd(api), newEventsGetCmd(api), newEventsTailCmd(api))
	return cmd
}

// eventFilterFlags are the filters of GET /v1/events, shared by list and
// tail.
type eventFilterFlags struct {
	q             client.EventQuery
	after, before string
}

func (f *eventFilterFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.q.Category, "category", "", "only this `category`")
	fs.StringVar(&f.q.Type, "type", "", "only this `type`")
	fs.StringVar(&f.q.EventStatus, "status", "", "only this eventStatus")
	fs.StringVar(&f.q.EventLifecycleID, "lifecycle", "", "only this eventLifecycleId")
	fs.StringVar(&f.q.CoreCustomerID, "customer", "", "only this coreCustomerId")
	fs.StringVar(&f.q.AgentID, "agent", "", "only this agentId")
	fs.StringVar(&f.q.SessionID, "session", "", "only this sessionId")
	fs.StringVar(&f.q.PrimaryID, "primary", "", "only this primaryId")
	fs.StringVar(&f.q.Origin, "origin", "", "only events of this origin: api or system")
	fs.StringVar(&f.q.Entity, "entity", "", "only events of this entity (coreCustomerId, or agentId of a customer agent)")
	fs.StringVar(&f.after, "occurred-after", "", "only events that occurred at or after this RFC 3339 `time`")
	fs.StringVar(&f.before, "occurred-before", "", "only events that occurred before this RFC 3339 `time`")
	fs.Int64Var(&f.q.AfterSeq, "after-seq", 0, "only events after this `seq`")
}

// query returns the filters as a client query, checking the times.
func (f *eventFilterFlags) query() (client.EventQuery, error) {
	q := f.q
	for _, t := range []struct {
		flag, v string
		to      *time.Time
	}{{"--occurred-after", f.after, &q.OccurredAfter}, {"--occurred-before", f.before, &q.OccurredBefore}} {
		if t.v == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339Nano, t.v)
		if err != nil {
			return q, fmt.Errorf("%s: %q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", t.flag, t.v)
		}
		*t.to = v
	}
	return q, nil
}

func newEventsListCmd(api *apiFlags) *cobra.Command {
	var (
		filter eventFilterFlags
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List stored events, oldest first, with filters",
		Long: `List the account's events in seq order (GET /v1/events), following the
pages for as many as --limit asks (0: all of them). Filters narrow each
other.`,
		Example: `  herald events list --type userLoggedIn --limit 20
  herald events list --customer cust-42 --occurred-after 2026-01-01T00:00:00Z
  herald events list --origin system --limit 0 --json | jq -r .type`,
		Args: cobra.NoArgs,
		RunE: apiRunE(func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return errors.New("--limit: must be 0 (all) or more")
			}
			q, err := filter.query()
			if err != nil {
				return err
			}
			c, err := api.client()
			if err != nil {
				return err
			}
			q.Limit = 1000
			if limit > 0 && limit < q.Limit {
				q.Limit = limit
			}
			out := newEventPrinter(cmd.OutOrStdout(), api.json)
			n := 0
			for e, err := range c.Events(cmd.Context(), q) {
				if err != nil {
					out.flush()
					return err
				}
				if err := out.print(e); err != nil {
					return err
				}
				n++
				if n == limit {
					break
				}
			}
			return out.flush()
		}),
	}
	filter.register(cmd.Flags())
	cmd.Flags().IntVar(&limit, "limit", 100, "list at most this many events (0: all)")
	return cmd
}

func newEventsGetCmd(api *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "get ID",
		Short:   "Print one event as stored",
		Long:    `Print one event (GET /v1/events/{id}) exactly as Herald stored it, as JSON.`,
		Example: `  herald events get login-1`,
		Args:    cobra.ExactArgs(1),
		RunE: apiRunE(func(cmd *cobra.Command, args []string) error {
			c, err := api.client()
			if err != nil {
				return err
			}
			e, err := c.Event(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if api.json {
				return printLine(cmd.OutOrStdout(), eventJSON(e))
			}
			return printJSON(cmd.OutOrStdout(), eventJSON(e))
		}),
	}
}

func newEventsTailCmd(api *apiFlags) *cobra.Command {
	var (
		filter                      eventFilterFlags
		types, statuses, categories []string
	)
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print events as they are stored, until Ctrl-C",
		Long: `Follow the live stream (GET /v1/events/stream): print each event that
matches the filters as soon as it is stored. By default it starts with the
next event stored; --after-seq starts after that seq instead, so a tail
that stopped can go on where it was. A dropped connection is resumed where
it left off. Ctrl-C ends it.`,
		Example: `  # Every new event
  herald events tail

  # Failed or denied transactions, as NDJSON
  herald events tail --types 'transactions/*' --statuses failed,denied --json

  # The audit log, live
  herald events tail --origin system`,
		Args: cobra.NoArgs,
		RunE: apiRunE(func(cmd *cobra.Command, _ []string) error {
			eq, err := filter.query()
			if err != nil {
				return err
			}
			c, err := api.client()
			if err != nil {
				return err
			}
			q := client.StreamQuery{EventQuery: eq, Types: types, Statuses: statuses, Categories: categories, AfterSeq: eq.AfterSeq}
			out := newEventPrinter(cmd.OutOrStdout(), api.json)
			out.stream = true
			for e, err := range c.Stream(cmd.Context(), q) {
				if err != nil {
					if cmd.Context().Err() != nil {
						return nil // Ctrl-C: the way a tail ends
					}
					return err
				}
				if err := out.print(e); err != nil {
					return err
				}
			}
			return nil
		}),
	}
	filter.register(cmd.Flags())
	f := cmd.Flags()
	f.StringSliceVar(&types, "types", nil, "type `patterns` (* matches any run of characters; with / matched against category/type), any of them")
	f.StringSliceVar(&statuses, "statuses", nil, "any of these eventStatus values")
	f.StringSliceVar(&categories, "categories", nil, "any of these categories")
	return cmd
}

// eventJSON is an event as the API serves it: the stored body when the
// client kept it.
func eventJSON(e *herald.Event) any {
	if len(e.Body) > 0 {
		return json.RawMessage(e.Body)
	}
	return e
}

// eventPrinter prints events as a table or as NDJSON. A table of a
// stream is written row by row, with fixed widths, since it has no end
// to align to.
type eventPrinter struct {
	w      io.Writer
	json   bool
	stream bool
	t      *table
}

func newEventPrinter(w io.Writer, asJSON bool) *eventPrinter {
	return &eventPrinter{w: w, json: asJSON}
}

var eventColumns = []string{"SEQ", "ID", "CATEGORY/TYPE", "STATUS", "ENTITY", "OCCURRED"}

func (p *eventPrinter) print(e *herald.Event) error {
	if p.json {
		return printLine(p.w, eventJSON(e))
	}
	entity := e.CoreCustomerID
	if entity == "" {
		entity = e.PrimaryID
	}
	cells := []string{strconv.FormatInt(e.Seq, 10), e.ID, e.Category + "/" + e.Type, e.EventStatus, entity,
		e.OccurredAt.UTC().Format(time.RFC3339)}
	if p.stream {
		if p.t == nil {
			p.t = &table{}
			fmt.Fprintf(p.w, "%-8s %-36s %-40s %-10s %-20s %s\n", anyOf(eventColumns)...)
		}
		for i, c := range cells {
			if c == "" {
				cells[i] = "-"
			}
		}
		_, err := fmt.Fprintf(p.w, "%-8s %-36s %-40s %-10s %-20s %s\n", anyOf(cells)...)
		return err
	}
	if p.t == nil {
		p.t = newTable(p.w, eventColumns...)
	}
	p.t.row(cells...)
	return nil
}

func (p *eventPrinter) flush() error {
	if p.t == nil || p.stream {
		return nil
	}
	return p.t.flush()
}

func anyOf(s []string) []any {
	a := make([]any, len(s))
	for i, v := range s {
		a[i] = v
	}
	return a
}
