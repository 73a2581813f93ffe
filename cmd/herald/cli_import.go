package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/client"
)

type importOptions struct {
	format      string
	mapping     []string
	batch       int
	concurrency int
	failed      string
	quiet       bool
	interval    time.Duration
}

func newImportCmd() *cobra.Command {
	var (
		api apiFlags
		o   importOptions
	)
	cmd := &cobra.Command{
		Use:   "import FILE|-",
		Short: "Load events from an NDJSON, JSON or CSV file",
		Long: `Send the events of a file ('-': standard input) to POST /v1/events/batch,
in batches of --batch from --concurrency clients at once.

Formats (--format, by default from the extension and the first character):
  ndjson  one envelope per line (.ndjson, .jsonl)
  json    one JSON array of envelopes (.json), read as a stream
  csv     a header row, then one event per row (.csv). A column whose header
          is an envelope field (category, type, eventStatus, coreCustomerId,
          id, occurredAt, …) sets it; --map col=field maps any other, where
          field is an envelope field, data.x (a member of data; data.x.y
          nests) or - (skip the column). Other columns become members of
          data by their header. Values are strings: add :number, :bool or
          :json to the field (--map amount=data.amount:number) to send them
          as such. Empty cells are left out.

Resuming: an event without an id gets one made from the file's name, its
line and its content, so running the same import again (after a failure,
or Ctrl-C) stores nothing twice: the events already stored answer
duplicate.

Lines that fail (bad JSON, an envelope the server refuses) do not stop the
import: each is written to --failed as one JSON object, {"line":n,
"error":"…","input":…}, where line is the line in the file (for a JSON
array: the element's place, from 1). The failed file is written only when
something fails; an older one of the same name is removed.

Progress goes to stderr: a bar with rate and ETA on a terminal, a line
every few seconds otherwise (--quiet: none). The summary (created,
duplicate, failed, elapsed, events/s) goes to stdout, as JSON with --json.

Exits 0 when every event was stored or was already there, 1 when any
failed or the import stopped early.`,
		Example: `  # NDJSON, 8 clients with batches of 1000
  herald import events.ndjson --batch 1000 --concurrency 8

  # A CSV export from another system
  herald import logins.csv --map user=coreCustomerId,result=eventStatus,amount=data.amount:number

  # From a pipe; failed lines to a file of your choosing
  zcat events.ndjson.gz | herald import - --format ndjson --failed rejected.ndjson`,
		Args: cobra.ExactArgs(1),
		RunE: apiRunE(func(cmd *cobra.Command, args []string) error {
			return runImport(cmd, &api, o, args[0])
		}),
	}
	api.register(cmd.Flags())
	f := cmd.Flags()
	f.StringVar(&o.format, "format", "auto", "the input's `format`: auto, ndjson, json or csv")
	f.StringSliceVar(&o.mapping, "map", nil, "CSV: `column=field[:kind]`,… (field: an envelope field, data.x or -; kind: string, number, bool or json)")
	f.IntVar(&o.batch, "batch", 500, "events per request (at most 1000)")
	f.IntVar(&o.concurrency, "concurrency", 4, "requests under way at once")
	f.StringVar(&o.failed, "failed", "", "write the lines that fail to this `file` (default <input>.failed; for standard input, stderr)")
	f.BoolVar(&o.quiet, "quiet", false, "print no progress on stderr")
	f.DurationVar(&o.interval, "progress-interval", 5*time.Second, "how often to print a progress line when stderr is not a terminal")
	f.MarkHidden("progress-interval")
	return cmd
}

// importItem is one event read from the input, or the reason it could
// not be read.
type importItem struct {
	line int
	// offset is about where in the input the item ends, for the progress.
	offset int64
	input  json.RawMessage // what the failed file shows of it
	event  *herald.Event
	err    error
}

// importSummary is what import prints at the end.
type importSummary struct {
	Created      int64   `json:"created"`
	Duplicate    int64   `json:"duplicate"`
	Failed       int64   `json:"failed"`
	Elapsed      string  `json:"elapsed"`
	Seconds      float64 `json:"elapsedSeconds"`
	EventsPerSec float64 `json:"eventsPerSecond"`
	FailedFile   string  `json:"failedFile,omitempty"`
}

func runImport(cmd *cobra.Command, api *apiFlags, o importOptions, path string) error {
	if o.batch < 1 || o.batch > herald.MaxBatchEvents {
		return fmt.Errorf("--batch: %d is not between 1 and %d", o.batch, herald.MaxBatchEvents)
	}
	if o.concurrency < 1 {
		return fmt.Errorf("--concurrency: %d is not 1 or more", o.concurrency)
	}
	columns, err := parseColumnMap(o.mapping)
	if err != nil {
		return err
	}
	c, err := api.client()
	if err != nil {
		return err
	}

	var (
		in   io.Reader = cmd.InOrStdin()
		size int64     = -1
		name           = "stdin"
	)
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			size = fi.Size()
		}
		in, name = f, filepath.Base(path)
		if o.failed == "" {
			o.failed = path + ".failed"
		}
	}
	counted := &countingReader{r: in}
	br := bufio.NewReaderSize(counted, 1<<20)
	format, err := importFormat(o.format, path, br)
	if err != nil {
		return err
	}
	if len(columns) > 0 && format != "csv" {
		return fmt.Errorf("--map: applies to CSV input, not %s", format)
	}

	im := &importer{c: c, name: name, failedPath: o.failed, stderr: cmd.ErrOrStderr()}
	if o.failed != "" {
		// A failed file from an earlier run would tell of lines that may
		// have been stored since.
		if err := os.Remove(o.failed); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("--failed: %w", err)
		}
	}
	start := time.Now()
	var stopProgress func()
	if !o.quiet {
		stopProgress = im.progress(cmd.ErrOrStderr(), size, start, o.interval)
	}

	ctx := cmd.Context()
	g, gctx := errgroup.WithContext(ctx)
	batches := make(chan []importItem, o.concurrency)
	g.Go(func() error {
		defer close(batches)
		var (
			batch []importItem
			bytes int
		)
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			select {
			case batches <- batch:
			case <-gctx.Done():
				return gctx.Err()
			}
			batch, bytes = nil, 0
			return nil
		}
		emit := func(it importItem) error {
			im.read.Add(1)
			it.offset = counted.n.Load() - int64(br.Buffered())
			if it.err != nil {
				return im.fail(it, it.err)
			}
			if it.event.ID == "" {
				it.event.ID = importID(name, it.line, it.input)
			}
			// Stay under the request size limit whatever the events weigh.
			if n := len(it.input) + 64; len(batch) > 0 && bytes+n > herald.MaxBatchBytes*3/4 {
				if err := flush(); err != nil {
					return err
				}
			}
			batch = append(batch, it)
			bytes += len(it.input) + 64
			if len(batch) == o.batch {
				return flush()
			}
			return nil
		}
		var err error
		switch format {
		case "ndjson":
			err = readNDJSON(br, emit)
		case "json":
			err = readJSONArray(br, emit)
		case "csv":
			err = readCSV(br, columns, emit)
		}
		if err != nil {
			return err
		}
		return flush()
	})
	for range o.concurrency {
		g.Go(func() error {
			for b := range batches {
				if err := im.send(gctx, b); err != nil {
					return err
				}
			}
			return nil
		})
	}
	runErr := g.Wait()
	if stopProgress != nil {
		stopProgress()
	}
	if cerr := im.closeFailed(); cerr != nil && runErr == nil {
		runErr = cerr
	}

	elapsed := time.Since(start)
	s := importSummary{
		Created: im.created.Load(), Duplicate: im.duplicate.Load(), Failed: im.failed.Load(),
		Elapsed: elapsed.Round(time.Millisecond).String(), Seconds: elapsed.Seconds(),
	}
	if done := s.Created + s.Duplicate + s.Failed; elapsed > 0 {
		s.EventsPerSec = float64(done) / elapsed.Seconds()
	}
	if s.Failed > 0 {
		s.FailedFile = o.failed
	}
	if err := printImportSummary(cmd.OutOrStdout(), s, api.json); err != nil && runErr == nil {
		runErr = err
	}
	switch {
	case ctx.Err() != nil:
		return errors.New("import interrupted; run it again to go on (stored events answer duplicate)")
	case runErr != nil:
		return runErr
	case s.Failed > 0:
		where := "stderr"
		if o.failed != "" {
			where = o.failed
		}
		return fmt.Errorf("%d of %d events failed; see %s", s.Failed, im.read.Load(), where)
	}
	return nil
}

func printImportSummary(w io.Writer, s importSummary, asJSON bool) error {
	if asJSON {
		return printLine(w, s)
	}
	t := newTable(w, "created", strconv.FormatInt(s.Created, 10))
	t.row("duplicate", strconv.FormatInt(s.Duplicate, 10))
	failed := strconv.FormatInt(s.Failed, 10)
	if s.FailedFile != "" {
		failed += " (see " + s.FailedFile + ")"
	}
	t.row("failed", failed)
	t.row("elapsed", s.Elapsed)
	t.row("events/s", strconv.FormatFloat(s.EventsPerSec, 'f', 1, 64))
	return t.flush()
}

// importFormat decides the input's format: the flag, else the extension,
// else the first character that is not white space.
func importFormat(flag, path string, br *bufio.Reader) (string, error) {
	switch flag {
	case "ndjson", "json", "csv":
		return flag, nil
	case "auto", "":
	default:
		return "", fmt.Errorf("--format: %q is not auto, ndjson, json or csv", flag)
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		return "csv", nil
	case ".ndjson", ".jsonl":
		return "ndjson", nil
	}
	for {
		r, _, err := br.ReadRune()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return "ndjson", nil // empty: nothing to do either way
			}
			return "", err
		}
		if strings.ContainsRune(" \t\r\n\ufeff", r) {
			continue
		}
		br.UnreadRune()
		switch r {
		case '[':
			return "json", nil
		case '{':
			return "ndjson", nil
		}
		return "", fmt.Errorf("cannot tell the format of %s: name it with --format ndjson, json or csv", path)
	}
}

// importID is the id of an event read without one: the same for the same
// line of the same file, so that a second run answers duplicate.
func importID(name string, line int, content []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00", name, line)
	h.Write(content)
	return "imp-" + hex.EncodeToString(h.Sum(nil))[:24]
}

// inputOf is how the failed file shows a line: as JSON when it is JSON,
// else as a string.
func inputOf(b []byte) json.RawMessage {
	if json.Valid(b) {
		var buf bytes.Buffer
		if json.Compact(&buf, b) == nil {
			return buf.Bytes()
		}
	}
	s, _ := json.Marshal(string(b))
	return s
}

func readNDJSON(br *bufio.Reader, emit func(importItem) error) error {
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(b)) > 0 {
			b = bytes.TrimRight(b, "\r\n")
			it := importItem{line: line, input: inputOf(b)}
			it.event, it.err = herald.ParseEvent(b)
			if eerr := emit(it); eerr != nil {
				return eerr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read line %d: %w", line, err)
		}
	}
}

func readJSONArray(r io.Reader, emit func(importItem) error) error {
	dec := json.NewDecoder(r)
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("read the JSON array: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("the input is not a JSON array (it starts with %v); for one event per line use --format ndjson", tok)
	}
	for n := 1; dec.More(); n++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			// The rest of the array cannot be found after a syntax error.
			return fmt.Errorf("element %d of the JSON array: %w", n, err)
		}
		it := importItem{line: n, input: inputOf(raw)}
		it.event, it.err = herald.ParseEvent(raw)
		if err := emit(it); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("the end of the JSON array: %w", err)
	}
	return nil
}

// csvColumn says where one CSV column goes.
type csvColumn struct {
	field string   // an envelope field, or "data" for members of data
	path  []string // for data: the member's path
	kind  string   // string, number, bool or json
	skip  bool
	name  string // the header, for messages
}

// csvEnvelopeFields are the envelope fields a CSV column may set: those a
// client sends, as ParseEvent accepts them.
var csvEnvelopeFields = []string{"id", "category", "type", "occurredAt", "agentId", "agentType",
	"coreCustomerId", "customerSerialId", "host", "primaryId", "secondaryId", "sessionId",
	"eventStatus", "eventLifecycleId"}

// parseColumnMap reads --map entries.
func parseColumnMap(entries []string) (map[string]csvColumn, error) {
	m := map[string]csvColumn{}
	for _, e := range entries {
		col, target, ok := strings.Cut(e, "=")
		if !ok || col == "" || target == "" {
			return nil, fmt.Errorf("--map: %q is not column=field (such as amount=data.amount:number)", e)
		}
		c, err := parseColumnTarget(target)
		if err != nil {
			return nil, fmt.Errorf("--map %s: %w", e, err)
		}
		m[col] = c
	}
	return m, nil
}

func parseColumnTarget(target string) (csvColumn, error) {
	if target == "-" {
		return csvColumn{skip: true}, nil
	}
	field, kind, _ := strings.Cut(target, ":")
	if kind == "" {
		kind = "string"
	}
	if !slices.Contains([]string{"string", "number", "bool", "json"}, kind) {
		return csvColumn{}, fmt.Errorf("kind %q is not string, number, bool or json", kind)
	}
	if rest, ok := strings.CutPrefix(field, "data."); ok {
		path := strings.Split(rest, ".")
		if slices.Contains(path, "") {
			return csvColumn{}, fmt.Errorf("%q has an empty member name", field)
		}
		return csvColumn{field: "data", path: path, kind: kind}, nil
	}
	if field == "data" {
		if kind != "json" && kind != "string" {
			return csvColumn{}, errors.New("data takes a JSON object (data:json)")
		}
		return csvColumn{field: "data", kind: "json"}, nil
	}
	if !slices.Contains(csvEnvelopeFields, field) {
		return csvColumn{}, fmt.Errorf("%q is not an envelope field (%s), data or data.member", field, strings.Join(csvEnvelopeFields, ", "))
	}
	if kind != "string" {
		return csvColumn{}, fmt.Errorf("%s is a string field; :%s applies to data members", field, kind)
	}
	return csvColumn{field: field, kind: kind}, nil
}

func readCSV(r io.Reader, mapping map[string]csvColumn, emit func(importItem) error) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // a short row is one failed line, not the end
	cr.ReuseRecord = false
	header, err := cr.Read()
	if err != nil {
		return fmt.Errorf("read the CSV header: %w", err)
	}
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
	}
	cols := make([]csvColumn, len(header))
	for i, h := range header {
		switch c, ok := mapping[h]; {
		case ok:
			cols[i] = c
		case slices.Contains(csvEnvelopeFields, h):
			cols[i] = csvColumn{field: h, kind: "string"}
		case h == "data":
			cols[i] = csvColumn{field: "data", kind: "json"}
		default:
			cols[i] = csvColumn{field: "data", path: []string{h}, kind: "string"}
		}
		cols[i].name = h
	}
	for col := range mapping {
		if !slices.Contains(header, col) {
			return fmt.Errorf("--map: the CSV has no column %q (its columns: %s)", col, strings.Join(header, ", "))
		}
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		line, _ := cr.FieldPos(0)
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			// A quote left open swallows the rest: nothing after it can
			// be trusted, so stop there.
			return fmt.Errorf("CSV line %d: %w", pe.Line, err)
		}
		if err != nil {
			return err
		}
		// The failed file shows the row by header; the same JSON, with
		// its members in order, seeds the id of a row without one.
		it := importItem{line: line}
		obj := make(map[string]string, len(rec))
		for i, v := range rec {
			if i < len(header) {
				obj[header[i]] = v
			}
		}
		it.input, _ = json.Marshal(obj)
		if len(rec) != len(header) {
			it.err = fmt.Errorf("the row has %d fields, the header %d", len(rec), len(header))
		} else {
			var body []byte
			if body, it.err = csvEnvelope(cols, rec); it.err == nil {
				it.event, it.err = herald.ParseEvent(body)
			}
		}
		if err := emit(it); err != nil {
			return err
		}
	}
}

var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// csvEnvelope makes the envelope of one CSV row.
func csvEnvelope(cols []csvColumn, rec []string) ([]byte, error) {
	env := map[string]any{}
	var data map[string]any
	for i, v := range rec {
		c := cols[i]
		if c.skip || v == "" {
			continue
		}
		if c.field != "data" {
			env[c.field] = v
			continue
		}
		var value any = v
		switch c.kind {
		case "number":
			if !jsonNumber.MatchString(strings.TrimSpace(v)) {
				return nil, fmt.Errorf("column %s: %q is not a number", c.name, v)
			}
			value = json.RawMessage(strings.TrimSpace(v))
		case "bool":
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return nil, fmt.Errorf("column %s: %q is not true or false", c.name, v)
			}
			value = b
		case "json":
			if !json.Valid([]byte(v)) {
				return nil, fmt.Errorf("column %s: %q is not JSON", c.name, v)
			}
			value = json.RawMessage(v)
		}
		if len(c.path) == 0 {
			// The whole of data, as a JSON object; members of other
			// columns are added to it.
			dec := json.NewDecoder(strings.NewReader(v))
			dec.UseNumber()
			var whole map[string]any
			if err := dec.Decode(&whole); err != nil || whole == nil {
				return nil, fmt.Errorf("column %s: data must be a JSON object", c.name)
			}
			if data == nil {
				data = whole
			} else {
				for k, w := range whole {
					if _, set := data[k]; !set {
						data[k] = w
					}
				}
			}
			continue
		}
		if data == nil {
			data = map[string]any{}
		}
		m := data
		for _, p := range c.path[:len(c.path)-1] {
			next, ok := m[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[p] = next
			}
			m = next
		}
		m[c.path[len(c.path)-1]] = value
	}
	if data != nil {
		env["data"] = data
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(env); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// importer sends the batches and keeps the counts and the failed file.
type importer struct {
	c          *client.Client
	name       string
	failedPath string
	stderr     io.Writer

	read, created, duplicate, failed atomic.Int64
	// done is the furthest offset of an event sent or failed, which the
	// progress shows: the reading runs ahead of the sending.
	done atomic.Int64

	mu      sync.Mutex
	failedF *os.File
	failedW *bufio.Writer
}

// failedLine is one line of the failed file.
type failedLine struct {
	Line  int             `json:"line"`
	Error string          `json:"error"`
	Input json.RawMessage `json:"input"`
}

// fail records it as failed because of err.
func (im *importer) fail(it importItem, err error) error {
	im.failed.Add(1)
	im.reached(it.offset)
	b, merr := json.Marshal(failedLine{Line: it.line, Error: problemText(err), Input: it.input})
	if merr != nil {
		return merr
	}
	im.mu.Lock()
	defer im.mu.Unlock()
	var w io.Writer = im.stderr
	if im.failedPath != "" {
		if im.failedF == nil {
			f, err := os.Create(im.failedPath)
			if err != nil {
				return fmt.Errorf("--failed: %w", err)
			}
			im.failedF, im.failedW = f, bufio.NewWriter(f)
		}
		w = im.failedW
	}
	_, werr := fmt.Fprintf(w, "%s\n", b)
	return werr
}

func (im *importer) closeFailed() error {
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.failedF == nil {
		return nil
	}
	err := im.failedW.Flush()
	if cerr := im.failedF.Close(); err == nil {
		err = cerr
	}
	return err
}

// reached notes that the events up to offset are done.
func (im *importer) reached(offset int64) {
	for {
		cur := im.done.Load()
		if offset <= cur || im.done.CompareAndSwap(cur, offset) {
			return
		}
	}
}

// batchPointer is the start of a pointer into a batch request, which the
// failed file leaves out: its pointers are into the line.
var batchPointer = regexp.MustCompile(`^/events/[0-9]+`)

// send sends one batch and counts what became of each event. A batch the
// server refuses as a whole with a 4xx fails its events; anything else
// (the key refused, the server gone after the client's retries) stops
// the import, since every later batch would meet it too.
func (im *importer) send(ctx context.Context, batch []importItem) error {
	events := make([]*herald.Event, len(batch))
	for i, it := range batch {
		events[i] = it.event
	}
	res, err := im.c.SendBatch(ctx, events)
	if err != nil {
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Status < 400 || ce.Status >= 500 ||
			ce.Status == http.StatusUnauthorized || ce.Status == http.StatusForbidden ||
			ce.Status == http.StatusNotFound || ce.Status == http.StatusTooManyRequests {
			return err
		}
		done := map[int]bool{}
		if res != nil {
			im.count(batch, res.Items, done)
		}
		for i, it := range batch {
			if !done[i] {
				if ferr := im.fail(it, err); ferr != nil {
					return ferr
				}
			}
		}
		return nil
	}
	done := map[int]bool{}
	if err := im.count(batch, res.Items, done); err != nil {
		return err
	}
	if len(done) != len(batch) {
		return fmt.Errorf("the server answered for %d of %d events", len(done), len(batch))
	}
	return nil
}

func (im *importer) count(batch []importItem, items []client.BatchItem, done map[int]bool) error {
	for _, item := range items {
		if item.Index < 0 || item.Index >= len(batch) {
			continue
		}
		done[item.Index] = true
		im.reached(batch[item.Index].offset)
		switch item.Status {
		case client.ItemCreated:
			im.created.Add(1)
		case client.ItemDuplicate:
			im.duplicate.Add(1)
		default:
			var err error = errors.New("failed")
			if item.Error != nil {
				e := *item.Error
				e.Errors = slices.Clone(e.Errors)
				for i := range e.Errors {
					e.Errors[i].Pointer = batchPointer.ReplaceAllString(e.Errors[i].Pointer, "")
				}
				err = &e
			}
			if ferr := im.fail(batch[item.Index], err); ferr != nil {
				return ferr
			}
		}
	}
	return nil
}

// progress reports on w until the returned function is called: a bar
// over the input's bytes on a terminal, else a line every interval.
func (im *importer) progress(w io.Writer, size int64, start time.Time, interval time.Duration) func() {
	done := func() int64 { return im.created.Load() + im.duplicate.Load() + im.failed.Load() }
	line := func() string {
		n := done()
		rate := float64(n) / time.Since(start).Seconds()
		s := fmt.Sprintf("import: %d events: %d created, %d duplicate, %d failed, %.0f events/s",
			n, im.created.Load(), im.duplicate.Load(), im.failed.Load(), rate)
		if size > 0 {
			s += fmt.Sprintf(", %.0f%% of the input", 100*float64(im.done.Load())/float64(size))
		}
		return s
	}
	var bar *progressbar.ProgressBar
	if benchIsTerminal(w) {
		interval = 200 * time.Millisecond
		bar = progressbar.NewOptions64(size,
			progressbar.OptionSetWriter(w),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetWidth(30),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSetDescription("importing"))
	}
	stop := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				if bar != nil {
					bar.Finish()
				}
				return
			case <-t.C:
			}
			if bar == nil {
				fmt.Fprintln(w, line())
				continue
			}
			n := done()
			bar.Describe(fmt.Sprintf("%d events, %.0f/s", n, float64(n)/time.Since(start).Seconds()))
			bar.Set64(im.done.Load())
		}
	}()
	return func() { close(stop); <-stopped }
}

// countingReader counts the bytes read through it, for the progress.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
