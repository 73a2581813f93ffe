package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/client"
)

// The management commands share one shape: a group per kind of thing
// (types, subscriptions, …) with list, get, create, delete, pause and
// resume as the API offers them. Bodies go to the server as they were
// written, through client.Do, so the server checks every field (a
// misspelt one is named, not dropped) and accepts every shape it knows,
// the Lytics job shape included. Tables read the answers through the
// root types.

// resource describes one kind of thing the API manages.
type resource[T any] struct {
	group    string // the command: subscriptions
	singular string // in messages: subscription
	path     string // its collection: /v1/subscriptions
	member   string // the list answer's array: subscriptions
	arg      string // how the id is named in usage: ID, NAME
	// escape makes the id a path; nil: url.PathEscape.
	escape  func(id string) string
	columns []string
	cells   func(*T) []string
}

func (r *resource[T]) itemPath(id string) string {
	if r.escape != nil {
		return r.path + "/" + r.escape(id)
	}
	return r.path + "/" + url.PathEscape(id)
}

func (r *resource[T]) listCmd(api *apiFlags, path string, query func() url.Values, example string) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List the account's " + r.group,
		Example: example,
		Args:    cobra.NoArgs,
		RunE: apiRunE(func(cmd *cobra.Command, _ []string) error {
			c, err := api.client()
			if err != nil {
				return err
			}
			var q url.Values
			if query != nil {
				q = query()
			}
			var page map[string]json.RawMessage
			if err := c.Do(cmd.Context(), http.MethodGet, path, q, nil, &page); err != nil {
				return err
			}
			var items []json.RawMessage
			if err := json.Unmarshal(page[r.member], &items); err != nil {
				return fmt.Errorf("read the list of %s: %w", r.group, err)
			}
			return printItems(cmd, api.json, items, r.columns, r.cells)
		}),
	}
}

// printItems prints raw items as NDJSON, or as a table of cells.
func printItems[T any](cmd *cobra.Command, asJSON bool, items []json.RawMessage, columns []string, cells func(*T) []string) error {
	w := cmd.OutOrStdout()
	if asJSON {
		for _, it := range items {
			if err := printLine(w, it); err != nil {
				return err
			}
		}
		return nil
	}
	t := newTable(w, columns...)
	for _, it := range items {
		v := new(T)
		if err := json.Unmarshal(it, v); err != nil {
			return fmt.Errorf("read %s: %w", it, err)
		}
		t.row(cells(v)...)
	}
	return t.flush()
}

func (r *resource[T]) getCmd(api *apiFlags, example string) *cobra.Command {
	return &cobra.Command{
		Use:     "get " + r.arg,
		Short:   "Print one " + r.singular + " as JSON",
		Example: example,
		Args:    cobra.ExactArgs(1),
		RunE: apiRunE(func(cmd *cobra.Command, args []string) error {
			return api.callWith(cmd, http.MethodGet, r.itemPath(args[0]), nil, nil)
		}),
	}
}

func (r *resource[T]) deleteCmd(api *apiFlags, example string) *cobra.Command {
	return &cobra.Command{
		Use:     "delete " + r.arg,
		Short:   "Delete a " + r.singular,
		Example: example,
		Args:    cobra.ExactArgs(1),
		RunE: apiRunE(func(cmd *cobra.Command, args []string) error {
			c, err := api.client()
			if err != nil {
				return err
			}
			if err := c.Do(cmd.Context(), http.MethodDelete, r.itemPath(args[0]), nil, nil, nil); err != nil {
				return err
			}
			if !api.json {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s deleted\n", r.singular, args[0])
			}
			return nil
		}),
	}
}

// stateCmd is pause or resume (verb), which take an optional reason.
func (r *resource[T]) stateCmd(api *apiFlags, verb, short, example string) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:     verb + " " + r.arg,
		Short:   short,
		Example: example,
		Args:    cobra.ExactArgs(1),
		RunE: apiRunE(func(cmd *cobra.Command, args []string) error {
			var body any
			if reason != "" {
				body = map[string]string{"reason": reason}
			}
			return r.act(cmd, api, verb, args[0], body, verb+"d")
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, kept with the state")
	return cmd
}

// act posts to the item's verb route (pause, resume, run) and prints the
// answer: the item's JSON with --json, else one line with its state.
func (r *resource[T]) act(cmd *cobra.Command, api *apiFlags, verb, id string, body any, done string) error {
	c, err := api.client()
	if err != nil {
		return err
	}
	var out json.RawMessage
	if err := c.Do(cmd.Context(), http.MethodPost, r.itemPath(id)+"/"+verb, nil, body, &out); err != nil {
		return err
	}
	if api.json {
		return printLine(cmd.OutOrStdout(), out)
	}
	var st struct {
		State string `json:"state"`
	}
	json.Unmarshal(out, &st)
	fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s (state %s)\n", r.singular, id, done, st.State)
	return nil
}

// createCmd posts the JSON body of --file to path.
func createCmd(api *apiFlags, what, path, long, example string, query func() url.Values) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:     "create --file FILE|-",
		Short:   "Create " + what + " from a JSON body",
		Long:    long,
		Example: example,
		Args:    cobra.NoArgs,
		RunE: apiRunE(func(cmd *cobra.Command, _ []string) error {
			body, err := readBody(cmd, file)
			if err != nil {
				return err
			}
			var q url.Values
			if query != nil {
				q = query()
			}
			return api.callWith(cmd, http.MethodPost, path, q, body)
		}),
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the JSON body: a file, or '-' for standard input (required)")
	return cmd
}

// readBody reads the JSON body of --file.
func readBody(cmd *cobra.Command, file string) (json.RawMessage, error) {
	if file == "" {
		return nil, errors.New("--file: give the JSON body, a file or '-' for standard input")
	}
	b, err := readJSONArg(cmd, "--file", file, true)
	if err != nil {
		return nil, err
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("--file: %s is not valid JSON", file)
	}
	return json.RawMessage(b), nil
}

// callWith sends body (nil: none) and prints the JSON answer.
func (f *apiFlags) callWith(cmd *cobra.Command, method, path string, q url.Values, body any) error {
	c, err := f.client()
	if err != nil {
		return err
	}
	var out json.RawMessage
	if err := c.Do(cmd.Context(), method, path, q, body, &out); err != nil {
		return err
	}
	if f.json {
		return printLine(cmd.OutOrStdout(), out)
	}
	return printJSON(cmd.OutOrStdout(), out)
}

// group returns a command group with the API flags.
func group(use, short, long string, api *apiFlags, sub ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Long: long, Args: cobra.NoArgs}
	api.register(cmd.PersistentFlags())
	cmd.AddCommand(sub...)
	return cmd
}

func timeCell(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// --- types

func newTypesCmd() *cobra.Command {
	api := &apiFlags{}
	r := &resource[herald.EventType]{
		group: "event types", singular: "event type", path: "/v1/event-types", member: "eventTypes",
		arg: "CATEGORY/TYPE",
		escape: func(id string) string {
			c, t, _ := strings.Cut(id, "/")
			return url.PathEscape(c) + "/" + url.PathEscape(t)
		},
		columns: []string{"CATEGORY/TYPE", "BUILT-IN", "STATUSES", "TERMINAL", "DESCRIPTION"},
		cells: func(t *herald.EventType) []string {
			var st []string
			for _, s := range t.Statuses {
				st = append(st, s.Name)
			}
			return []string{t.Category + "/" + t.Type, strconv.FormatBool(t.BuiltIn), strings.Join(st, ","),
				strings.Join(t.TerminalStatuses, ","), shorten(t.Description, 60)}
		},
	}
	get := r.getCmd(api, "  herald types get transactions/transaction")
	get.Args = typeArg
	del := r.deleteCmd(api, "  herald types delete accounts/balanceViewed")
	del.Args = typeArg
	del.Short = "Delete a type of the account's own, or undo its extensions of a built-in one"
	return group("types", "Work with event types: list, get, put, delete",
		`Event types say what events mean: their data schema, statuses, lifecycle
and profile fields. Every account starts with the built-in catalog; put
defines a type of its own or extends a built-in one.`,
		api, r.listCmd(api, r.path, nil, "  herald types list\n  herald types list --json | jq -r '.category + \"/\" + .type'"),
		get, newTypesPutCmd(api), del)
}

// typeArg checks a CATEGORY/TYPE argument.
func typeArg(cmd *cobra.Command, args []string) error {
	if err := cobra.ExactArgs(1)(cmd, args); err != nil {
		return err
	}
	if c, t, ok := strings.Cut(args[0], "/"); !ok || c == "" || t == "" || strings.Contains(t, "/") {
		return fmt.Errorf("%q is not CATEGORY/TYPE, such as transactions/transaction", args[0])
	}
	return nil
}

func newTypesPutCmd(api *apiFlags) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "put [CATEGORY/TYPE] --file FILE|-",
		Short: "Define or replace a type, or extend a built-in one",
		Long: `PUT /v1/event-types/{category}/{type} with the JSON body of --file: it
creates the type, or replaces the account's definition of it. Without the
argument, the body's category and type name it.`,
		Example: `  herald types put --file - <<'EOF'
  {"category":"accounts","type":"balanceViewed","statuses":[],"terminalStatuses":[],
   "schema":{"type":"object","properties":{"account":{"type":"string"}}}}
  EOF`,
		Args: cobra.MaximumNArgs(1),
		RunE: apiRunE(func(cmd *cobra.Command, args []string) error {
			body, err := readBody(cmd, file)
			if err != nil {
				return err
			}
			var name struct{ Category, Type string }
			if len(args) == 1 {
				if err := typeArg(cmd, args); err != nil {
					return err
				}
				name.Category, name.Type, _ = strings.Cut(args[0], "/")
			} else if json.Unmarshal(body, &name); name.Category == "" || name.Type == "" {
				return errors.New("name the type: CATEGORY/TYPE as the argument, or category and type in the body")
			}
			return api.callWith(cmd, http.MethodPut, "/v1/event-types/"+url.PathEscape(name.Category)+"/"+url.PathEscape(name.Type), nil, body)
		}),
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the type as JSON: a file, or '-' for standard input (required)")
	return cmd
}

// --- subscriptions

func newSubscriptionsCmd() *cobra.Command {
	api := &apiFlags{}
	r := &resource[herald.Subscription]{
		group: "subscriptions", singular: "subscription", path: "/v1/subscriptions", member: "subscriptions",
		arg:     "ID",
		columns: []string{"ID", "NAME", "URL", "STATE", "CURSOR", "CREATED"},
		cells: func(s *herald.Subscription) []string {
			return []string{s.ID, s.Name, s.URL, s.State, strconv.FormatInt(s.Cursor, 10), timeCell(s.CreatedAt)}
		},
	}
	var from string
	create := createCmd(api, "a subscription", r.path,
		`POST /v1/subscriptions with the JSON body of --file: name, url, filter and
the delivery settings, or the Lytics job shape ({"config":…,"workflow":…}).
The answer holds the signing secret, shown this once.`,
		`  herald subscriptions create --file - <<'EOF'
  {"name":"risk partner","url":"https://partner.example/hooks/herald",
   "filter":{"types":["single*"],"statuses":["succeeded"]}}
  EOF`,
		func() url.Values {
			if from == "" {
				return nil
			}
			return url.Values{"from": {from}}
		})
	create.Flags().StringVar(&from, "from", "", "replay from this `seq or RFC 3339 time` instead of starting with new events")
	return group("subscriptions", "Work with webhook subscriptions",
		`Subscriptions push the events that match their filter to a URL as signed
webhooks. See README.md, "Subscriptions".`,
		api, r.listCmd(api, r.path, nil, "  herald subscriptions list"),
		r.getCmd(api, "  herald subscriptions get sub_86aca29b9771f3c4"), create,
		r.deleteCmd(api, "  herald subscriptions delete sub_86aca29b9771f3c4"),
		r.stateCmd(api, "pause", "Stop deliveries; what is stored meanwhile is delivered on resume", "  herald subscriptions pause sub_86aca29b9771f3c4 --reason 'partner maintenance'"),
		r.stateCmd(api, "resume", "Go on delivering from where the subscription stopped", "  herald subscriptions resume sub_86aca29b9771f3c4"))
}

// --- workflows

func newWorkflowsCmd() *cobra.Command {
	api := &apiFlags{}
	r := &resource[herald.Workflow]{
		group: "workflows", singular: "workflow", path: "/v1/workflows", member: "workflows",
		arg:     "NAME",
		columns: []string{"NAME", "STATE", "STEPS", "CURSOR", "DESCRIPTION"},
		cells: func(w *herald.Workflow) []string {
			var steps []string
			for _, s := range w.Steps {
				steps = append(steps, s.Name)
			}
			return []string{w.Name, w.State, strings.Join(steps, ","), strconv.FormatInt(w.Cursor, 10), shorten(w.Description, 60)}
		},
	}
	create := createCmd(api, "a workflow", r.path,
		`POST /v1/workflows with the JSON body of --file: name, filter and steps.`,
		`  herald workflows create --file notify-risk.json`, nil)
	return group("workflows", "Work with workflows and their runs",
		`A workflow is a named list of steps that runs for each event that matches
its filter, or whose type's status names it. See README.md, "Workflows".`,
		api, r.listCmd(api, r.path, nil, "  herald workflows list"),
		r.getCmd(api, "  herald workflows get notify-risk"), create,
		r.deleteCmd(api, "  herald workflows delete notify-risk"),
		r.stateCmd(api, "pause", "Stop starting runs", "  herald workflows pause notify-risk"),
		r.stateCmd(api, "resume", "Start runs again", "  herald workflows resume notify-risk"),
		newWorkflowRunsCmd(api))
}

func newWorkflowRunsCmd(api *apiFlags) *cobra.Command {
	var (
		state string
		limit int
	)
	cmd := &cobra.Command{
		Use:     "runs NAME",
		Short:   "List a workflow's runs, newest first",
		Example: "  herald workflows runs notify-risk --state failed",
		Args:    cobra.ExactArgs(1),
		RunE: apiRunE(func(cmd *cobra.Command, args []string) error {
			c, err := api.client()
			if err != nil {
				return err
			}
			q := url.Values{"limit": {strconv.Itoa(limit)}}
			if state != "" {
				q.Set("state", state)
			}
			var page struct{ Runs []json.RawMessage }
			if err := c.Do(cmd.Context(), http.MethodGet, "/v1/workflows/"+url.PathEscape(args[0])+"/runs", q, nil, &page); err != nil {
				return err
			}
			return printItems(cmd, api.json, page.Runs,
				[]string{"ID", "STATE", "TRIGGER", "EVENT", "SEQ", "DEPTH", "CREATED", "ERROR"},
				func(r *herald.WorkflowRun) []string {
					return []string{r.ID, r.State, r.Trigger, r.EventID, strconv.FormatInt(r.Seq, 10),
						strconv.Itoa(r.Depth), timeCell(r.CreatedAt), shorten(r.Error, 80)}
				})
		}),
	}
	cmd.Flags().StringVar(&state, "state", "", "only runs in this `state`")
	cmd.Flags().IntVar(&limit, "limit", 20, "list at most this many runs")
	return cmd
}

// --- work, alerts, exports

func workResource() *resource[herald.Work] {
	return &resource[herald.Work]{
		group: "jobs", singular: "job", path: "/v1/work", member: "work",
		arg:     "ID",
		columns: []string{"ID", "KIND", "NAME", "STATE", "NEXT RUN", "CREATED"},
		cells: func(w *herald.Work) []string {
			next := ""
			if w.Runtime.NextRunAt != nil {
				next = timeCell(*w.Runtime.NextRunAt)
			}
			return []string{w.ID, w.Kind, w.Name, w.State, next, timeCell(w.CreatedAt)}
		},
	}
}

func newWorkCmd() *cobra.Command {
	api := &apiFlags{}
	r := workResource()
	var kind string
	list := r.listCmd(api, r.path, func() url.Values {
		if kind == "" {
			return nil
		}
		return url.Values{"kind": {kind}}
	}, "  herald work list --kind export")
	list.Flags().StringVar(&kind, "kind", "", "only jobs of this `kind`: export or alert")
	run := &cobra.Command{
		Use:     "run ID",
		Short:   "Run a cycle of the job now",
		Example: "  herald work run work_fd1bad6c1602ead6",
		Args:    cobra.ExactArgs(1),
		RunE: apiRunE(func(cmd *cobra.Command, args []string) error {
			return r.act(cmd, api, "run", args[0], nil, "asked to run")
		}),
	}
	return group("work", "Work with export and alert jobs",
		`Exports and alerts are jobs (Lytics' work): see their state, pause, resume,
run a cycle now, delete. Create them with herald exports create and herald
alerts create.`,
		api, list, r.getCmd(api, "  herald work get work_fd1bad6c1602ead6"),
		r.stateCmd(api, "pause", "Stop the job", "  herald work pause work_fd1bad6c1602ead6"),
		r.stateCmd(api, "resume", "Go on with the job; a failed one tries its cycle again", "  herald work resume work_fd1bad6c1602ead6"),
		run, r.deleteCmd(api, "  herald work delete work_fd1bad6c1602ead6"))
}

// newJobKindCmd is herald exports or herald alerts: list and create.
func newJobKindCmd(use, kind, long, example string) *cobra.Command {
	api := &apiFlags{}
	r := workResource()
	path := "/v1/" + use
	return group(use, "List and create "+use, long, api,
		r.listCmd(api, path, nil, "  herald "+use+" list"),
		createCmd(api, "an "+kind, path, "POST "+path+" with the JSON body of --file. The job is then managed with herald work.", example, nil))
}

func newExportsCmd() *cobra.Command {
	return newJobKindCmd("exports", "export",
		`Exports write the events that match a filter to files, a PostgreSQL table or
a webhook: once, in batches, or as they are stored. See README.md, "Exports".`,
		`  herald exports create --file - <<'EOF'
  {"name":"nightly","filter":{"origin":"api"},
   "export":{"mode":"batch","cron":"0 2 * * *","destination":{"type":"files","dir":"nightly","format":"parquet"}}}
  EOF`)
}

func newAlertsCmd() *cobra.Command {
	return newJobKindCmd("alerts", "alert",
		`Alerts send to Slack, a webhook or an email when events match a filter, or
at least a threshold of them within a window. See README.md, "Alerts".`,
		`  herald alerts create --file failed-transfers.json`)
}

// --- keys

func newKeysCmd() *cobra.Command {
	api := &apiFlags{}
	r := &resource[herald.APIKey]{
		group: "API keys", singular: "key", path: "/v1/keys", member: "keys",
		arg:     "ID",
		columns: []string{"ID", "NAME", "PREFIX", "SCOPES", "BOOTSTRAP", "CREATED"},
		cells: func(k *herald.APIKey) []string {
			return []string{k.ID, k.Name, k.Prefix, strings.Join(k.Scopes, ","), strconv.FormatBool(k.Bootstrap), timeCell(k.CreatedAt)}
		},
	}
	return group("keys", "Work with the account's API keys",
		`API keys of the calling key's account (admin scope). A key's secret is
shown once, when it is created.`,
		api, r.listCmd(api, r.path, nil, "  herald keys list"), newKeysCreateCmd(api),
		r.deleteCmd(api, "  herald keys delete key_35c6a1b2c3d4e5f6"))
}

func newKeysCreateCmd(api *apiFlags) *cobra.Command {
	var (
		name   string
		scopes []string
	)
	cmd := &cobra.Command{
		Use:   "create --name NAME --scopes SCOPE,…",
		Short: "Create an API key and print its secret, shown this once",
		Example: `  herald keys create --name ingest-app --scopes ingest
  herald keys create --name dashboard --scopes read --json | jq -r .secret`,
		Args: cobra.NoArgs,
		RunE: apiRunE(func(cmd *cobra.Command, _ []string) error {
			c, err := api.client()
			if err != nil {
				return err
			}
			key, secret, err := createKey(cmd.Context(), c, name, scopes)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if api.json {
				return printLine(w, struct {
					*herald.APIKey
					Secret string `json:"secret"`
				}{key, secret})
			}
			fmt.Fprintf(w, "key %s created with scopes %s; its secret, shown this once:\n%s\n", key.ID, strings.Join(key.Scopes, ","), secret)
			return nil
		}),
	}
	cmd.Flags().StringVar(&name, "name", "", "what the key is for")
	cmd.Flags().StringSliceVar(&scopes, "scopes", nil, "its scopes: any of "+strings.Join(herald.Scopes, ", ")+" (admin includes the others)")
	return cmd
}

func createKey(ctx context.Context, c *client.Client, name string, scopes []string) (*herald.APIKey, string, error) {
	var out struct {
		herald.APIKey
		Secret string `json:"secret"`
	}
	in := map[string]any{"name": name, "scopes": scopes}
	if scopes == nil {
		// Let the server name what is missing.
		delete(in, "scopes")
	}
	if err := c.Do(ctx, http.MethodPost, "/v1/keys", nil, in, &out); err != nil {
		return nil, "", err
	}
	return &out.APIKey, out.Secret, nil
}
