package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/client"
)

func newSendCmd() *cobra.Command {
	var (
		api    apiFlags
		jsonIO string
		fields = map[string]*string{}
		data   string
	)
	cmd := &cobra.Command{
		Use:   "send [ENVELOPE|-]",
		Short: "Send one event",
		Long: `Send one event to POST /v1/events, built from flags or given whole as JSON
('-' reads it from standard input), and print what the server answered: the
id, the seq, whether it was a duplicate, the session.

--json speaks JSON both ways: --json '{…}' (or --json -) sends that envelope,
and the answer is printed as one JSON object; --json alone, with the field
flags, only prints the answer as JSON.

The envelope is checked here first, by the same rules as the server's, so a
misspelt field is named before anything is sent. Without --id the event gets
a new UUIDv7, fixed before the first attempt, so a retry after a dropped
connection cannot store it twice.

Exits 1 when the server refuses the event, printing each field at fault.`,
		Example: `  # A login, from flags
  herald send --category authentication --type login --status succeeded \
    --customer cust-42 --data '{"external_login_id":"lg-1","login_method":"otp"}'

  # A whole envelope; the answer as JSON
  herald send --json '{"id":"login-1","category":"authentication","type":"userLoggedIn","coreCustomerId":"cust-42"}'

  # From a pipe
  jq -c '.[0]' events.json | herald send --json -`,
		Args: cobra.MaximumNArgs(1),
		RunE: apiRunE(func(cmd *cobra.Command, args []string) error {
			envelope := ""
			if len(args) == 1 {
				envelope = args[0]
			}
			if jsonIO != "" && jsonIO != "true" && jsonIO != "false" {
				if envelope != "" {
					return errors.New("--json: give the envelope once, not also as an argument")
				}
				envelope = jsonIO
			}
			api.json = jsonIO != "" && jsonIO != "false"
			body, err := sendBody(cmd, envelope, fields, data)
			if err != nil {
				return err
			}
			e, err := herald.ParseEvent(body)
			if err != nil {
				return err
			}
			c, err := api.client()
			if err != nil {
				return err
			}
			r, err := c.Send(cmd.Context(), e)
			if err != nil {
				return err
			}
			return printSendResult(cmd, r, api.json)
		}),
	}
	f := cmd.Flags()
	api.registerConn(f)
	// --json is both the input and the output switch here (see Long), so
	// it takes an optional value.
	f.StringVar(&jsonIO, "json", "", "send this `envelope` ('-': standard input) instead of the field flags; print the answer as JSON (alone: only that)")
	f.Lookup("json").NoOptDefVal = "true"
	for _, fl := range sendFieldFlags {
		fields[fl.field] = f.String(fl.flag, "", fl.help)
	}
	f.StringVar(&data, "data", "", "the event's data, a JSON object")
	return cmd
}

// sendFieldFlags are the envelope fields settable by a flag of send.
var sendFieldFlags = []struct{ flag, field, help string }{
	{"id", "id", "the event `id`, its idempotency key (default: a new UUIDv7)"},
	{"category", "category", "the event's `category` (required)"},
	{"type", "type", "the event's `type` (required)"},
	{"status", "eventStatus", "eventStatus"},
	{"lifecycle", "eventLifecycleId", "eventLifecycleId"},
	{"customer", "coreCustomerId", "coreCustomerId"},
	{"session", "sessionId", "sessionId"},
	{"primary", "primaryId", "primaryId"},
	{"secondary", "secondaryId", "secondaryId"},
	{"agent", "agentId", "agentId"},
	{"agent-type", "agentType", "agentType"},
	{"host", "host", "host"},
	{"occurred-at", "occurredAt", "occurredAt, an RFC 3339 `time` (default: when the server receives it)"},
}

// sendBody returns the envelope send posts: --envelope as given, else one
// made of the field flags.
func sendBody(cmd *cobra.Command, envelope string, fields map[string]*string, data string) ([]byte, error) {
	set := false
	for _, v := range fields {
		set = set || *v != ""
	}
	if envelope != "" {
		if set || data != "" {
			return nil, errors.New("give the whole event as JSON or the field flags, not both")
		}
		return readJSONArg(cmd, "envelope", envelope, false)
	}
	m := map[string]any{}
	for name, v := range fields {
		if *v != "" {
			m[name] = *v
		}
	}
	if data != "" {
		if !json.Valid([]byte(data)) {
			return nil, fmt.Errorf("--data: %q is not JSON (give an object such as '{\"amount\":\"12.50\"}')", data)
		}
		m["data"] = json.RawMessage(data)
	}
	if m["category"] == nil || m["type"] == nil {
		return nil, errors.New("--category and --type are required (or give the whole event: herald send --json '{…}')")
	}
	return json.Marshal(m)
}

// sendOutput is what send prints with --json: the API's answer.
type sendOutput struct {
	ID         string    `json:"id"`
	Seq        int64     `json:"seq"`
	ReceivedAt time.Time `json:"receivedAt"`
	Duplicate  bool      `json:"duplicate,omitempty"`
	SessionID  string    `json:"sessionId,omitempty"`
	Flags      []string  `json:"flags,omitempty"`
}

func printSendResult(cmd *cobra.Command, r *client.SendResult, asJSON bool) error {
	w := cmd.OutOrStdout()
	if asJSON {
		return printLine(w, sendOutput{r.ID, r.Seq, r.ReceivedAt, r.Duplicate, r.SessionID, r.Flags})
	}
	status := "created"
	if r.Duplicate {
		status = "duplicate"
	}
	t := newTable(w, "STATUS", "ID", "SEQ", "RECEIVED", "SESSION", "FLAGS")
	t.row(status, r.ID, strconv.FormatInt(r.Seq, 10), r.ReceivedAt.Format(time.RFC3339Nano), r.SessionID, strings.Join(r.Flags, ","))
	return t.flush()
}
