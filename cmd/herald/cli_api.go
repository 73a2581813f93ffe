package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/bench"
	"github.com/heraldhq/herald/client"
)

// apiFlags are the flags of every command that works through the HTTP
// API, set once per command group as persistent flags.
type apiFlags struct {
	url  string
	key  string
	json bool
}

func (f *apiFlags) register(fs *pflag.FlagSet) {
	f.registerConn(fs)
	fs.BoolVar(&f.json, "json", false, "print JSON for scripts (one object per line for lists)")
}

// registerConn registers the flags that say where the server is.
func (f *apiFlags) registerConn(fs *pflag.FlagSet) {
	fs.StringVar(&f.url, "url", envDefault("HERALD_URL", bench.DefaultURL), "the server's base `URL` (env HERALD_URL)")
	// No default from the environment here: help would print the key.
	fs.StringVar(&f.key, "key", "", "API `key` (env HERALD_KEY)")
}

// client returns a client for the flags, or an error that names the
// missing key.
func (f *apiFlags) client() (*client.Client, error) {
	key := f.key
	if key == "" {
		key = os.Getenv("HERALD_KEY")
	}
	if key == "" {
		return nil, errors.New("--key: no API key (pass --key or set HERALD_KEY)")
	}
	if !strings.HasPrefix(f.url, "http://") && !strings.HasPrefix(f.url, "https://") {
		return nil, fmt.Errorf("--url: %q is not an http(s) URL (use one such as %s)", f.url, bench.DefaultURL)
	}
	return client.New(f.url, key, client.WithUserAgent("herald-cli")), nil
}

// errReported is returned once a command has printed its error itself;
// main then only sets the exit status.
var errReported = errors.New("error reported")

// apiRunE adapts a command body so that problems from the API, and
// invalid input found before sending, are printed as `error: <detail>`
// followed by one `  <pointer>: <detail>` line per field at fault.
func apiRunE(run func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		// From here on an error is the request's, not a misuse of the
		// command.
		cmd.SilenceUsage = true
		err := run(cmd, args)
		if reportProblem(cmd.ErrOrStderr(), err) {
			return errReported
		}
		return err
	}
}

// reportProblem prints err when it is a problem answered by the API or a
// herald.Error found locally, and reports whether it did.
func reportProblem(w io.Writer, err error) bool {
	detail, fields, ok := problemOf(err)
	if !ok {
		return false
	}
	fmt.Fprintf(w, "error: %s\n", detail)
	for _, f := range fields {
		p := f.Pointer
		if p == "" {
			p = "(body)"
		}
		fmt.Fprintf(w, "  %s: %s\n", p, f.Detail)
	}
	return true
}

// problemOf returns the detail and the fields at fault of an API or
// envelope error.
func problemOf(err error) (string, []herald.FieldError, bool) {
	if ce := (*client.Error)(nil); errors.As(err, &ce) {
		detail := ce.Detail
		if detail == "" {
			detail = ce.Title
		}
		if detail == "" {
			detail = fmt.Sprintf("HTTP %d", ce.Status)
		}
		return detail, ce.Errors, true
	}
	if he := (*herald.Error)(nil); errors.As(err, &he) {
		return he.Message, he.Fields, true
	}
	return "", nil, false
}

// problemText is problemOf in one line, for the failed file of an import:
// the fields at fault when the problem names them (its detail repeats
// the first), else the detail.
func problemText(err error) string {
	detail, fields, ok := problemOf(err)
	if !ok {
		return err.Error()
	}
	var parts []string
	for _, f := range fields {
		if f.Pointer != "" {
			parts = append(parts, f.Pointer+": "+f.Detail)
		}
	}
	if len(parts) == 0 {
		return detail
	}
	return strings.Join(parts, "; ")
}

// shorten cuts s to n runes for a table cell.
func shorten(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// readJSONArg returns the JSON of a --json/--file style argument: the
// text itself when it starts like JSON, "-" for standard input, else the
// file it names (when file is true).
func readJSONArg(cmd *cobra.Command, flag, v string, file bool) ([]byte, error) {
	switch {
	case v == "-":
		b, err := io.ReadAll(cmd.InOrStdin())
		if err != nil {
			return nil, fmt.Errorf("%s: read standard input: %w", flag, err)
		}
		return b, nil
	case !file:
		return []byte(v), nil
	}
	b, err := os.ReadFile(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return b, nil
}

// decodeStrict decodes b into v, refusing members v does not have, so a
// misspelt field is named here rather than silently dropped.
func decodeStrict(flag string, b []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", flag, err)
	}
	if dec.More() {
		return fmt.Errorf("%s: more than one JSON value", flag)
	}
	return nil
}

// table writes aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		}
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// printLine writes v as one line of JSON (NDJSON).
func printLine(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
