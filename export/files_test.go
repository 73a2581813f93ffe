package export

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/heraldhq/herald"
)

// writeFile opens a files writer on a new root, writes the unit and
// returns the file's path and content.
func writeFile(t *testing.T, format string, events []*herald.Event) (root string, w *herald.Work, wr Writer, path string, content []byte) {
	t.Helper()
	root = t.TempDir()
	w = testWork("wrk_files", "acct_1", herald.Destination{Type: herald.DestinationFiles, Dir: "exports/daily", Format: format})
	wr, err := Open(context.Background(), w, Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = wr.Close() })
	raw, err := wr.Write(context.Background(), &Unit{Work: w, Events: events})
	if err != nil {
		t.Fatal(err)
	}
	d := decodeDetail(t, raw)
	first, last := events[0].Seq, events[len(events)-1].Seq
	want := "exports/daily/wrk_files-" + pad(first) + "-" + pad(last) + "." + format
	if d["file"] != want {
		t.Fatalf("detail file %v, want %s", d["file"], want)
	}
	path = filepath.Join(root, filepath.FromSlash(want))
	content, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if d["bytes"] != float64(len(content)) {
		t.Fatalf("detail bytes %v, file has %d", d["bytes"], len(content))
	}
	return root, w, wr, path, content
}

func pad(seq int64) string {
	s := strconv.FormatInt(seq, 10)
	return strings.Repeat("0", 12-len(s)) + s
}

func TestFilesNDJSON(t *testing.T) {
	t.Parallel()
	events := testEvents(t, "acct_1", 7)
	root, w, wr, path, content := writeFile(t, herald.FormatNDJSON, events)

	sc := bufio.NewScanner(bytes.NewReader(content))
	var lines [][]byte
	for sc.Scan() {
		lines = append(lines, bytes.Clone(sc.Bytes()))
	}
	if len(lines) != len(events) {
		t.Fatalf("%d lines, want %d", len(lines), len(events))
	}
	for i, line := range lines {
		if !bytes.Equal(line, events[i].Body) {
			t.Errorf("line %d = %s, want the stored body %s", i, line, events[i].Body)
		}
		var e herald.Event
		if err := json.Unmarshal(line, &e); err != nil || e.ID != events[i].ID || e.Seq != events[i].Seq {
			t.Errorf("line %d decodes to %s/%d (%v)", i, e.ID, e.Seq, err)
		}
	}

	// Writing the unit again (a crash before the engine saved its
	// progress) replaces the file with the same bytes, under the same
	// name, and leaves no temporary file behind, not even the one a
	// crash in the middle of writing left.
	leftover := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".0123456789ab.tmp")
	if err := os.WriteFile(leftover, []byte("half"), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := wr.Write(context.Background(), &Unit{Work: w, Events: events}); err != nil {
		t.Fatal(err)
	}
	again, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(again, content) {
		t.Fatalf("rewritten file differs (%v)", err)
	}
	// The next unit gets a file of its own.
	if _, err := wr.Write(context.Background(), &Unit{Work: w, Events: events[5:]}); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"wrk_files-000000000010-000000000028.ndjson", "wrk_files-000000000025-000000000028.ndjson"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("directory has %v, want %v", names, want)
	}
	if fi, err := os.Stat(filepath.Join(root, "exports")); err != nil || fi.Mode().Perm() != 0o750 {
		t.Fatalf("exports dir: %v, %v", fi.Mode(), err)
	}
}

// csvHeader is the columns of every tabular destination, in order.
const csvHeader = "account_id,id,seq,category,type,occurred_at,received_at,origin,agent_id,agent_type,core_customer_id,customer_serial_id,host,primary_id,secondary_id,session_id,event_status,event_lifecycle_id,redacted,flags,hash,data"

func TestFilesCSV(t *testing.T) {
	t.Parallel()
	events := testEvents(t, "acct_1", 5)
	_, _, _, _, content := writeFile(t, herald.FormatCSV, events)

	records, err := csv.NewReader(bytes.NewReader(content)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != len(events)+1 {
		t.Fatalf("%d records, want a header and %d rows", len(records), len(events))
	}
	header := records[0]
	if strings.Join(header, ",") != csvHeader {
		t.Fatalf("header %v", header)
	}
	col := func(rec []string, name string) string {
		for i, h := range header {
			if h == name {
				return rec[i]
			}
		}
		t.Fatalf("no column %s", name)
		return ""
	}
	for i, rec := range records[1:] {
		e := events[i]
		if col(rec, "account_id") != "acct_1" || col(rec, "id") != e.ID || col(rec, "seq") != strconv.FormatInt(e.Seq, 10) ||
			col(rec, "category") != e.Category || col(rec, "type") != e.Type || col(rec, "origin") != e.Origin ||
			col(rec, "session_id") != e.SessionID || col(rec, "host") != e.Host || col(rec, "hash") != e.ChainHash {
			t.Errorf("row %d = %v, event %+v", i, rec, e)
		}
		for name, at := range map[string]time.Time{"occurred_at": e.OccurredAt, "received_at": e.ReceivedAt} {
			got, err := time.Parse(time.RFC3339Nano, col(rec, name))
			if err != nil || !got.Equal(at) {
				t.Errorf("row %d %s = %q, want %s", i, name, col(rec, name), at)
			}
		}
		if col(rec, "redacted") != strconv.FormatBool(e.Redacted) {
			t.Errorf("row %d redacted = %q", i, col(rec, "redacted"))
		}
		if data := col(rec, "data"); e.Data == nil {
			if data != "" {
				t.Errorf("row %d data = %q, want empty for an event without data", i, data)
			}
		} else if !jsonEqual(t, data, string(e.Data)) {
			t.Errorf("row %d data = %q, want %s", i, data, e.Data)
		}
		if flags := col(rec, "flags"); len(e.Flags) > 0 {
			var got []string
			if err := json.Unmarshal([]byte(flags), &got); err != nil || strings.Join(got, ",") != strings.Join(e.Flags, ",") {
				t.Errorf("row %d flags = %q, want %v", i, flags, e.Flags)
			}
		} else if flags != "" {
			t.Errorf("row %d flags = %q, want empty", i, flags)
		}
	}
}

func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Errorf("%q is not JSON: %v", a, err)
		return false
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Errorf("%q is not JSON: %v", b, err)
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

// TestFilesParquet reads the file back with Apache Arrow's Parquet
// implementation, not the one that wrote it.
func TestFilesParquet(t *testing.T) {
	t.Parallel()
	events := testEvents(t, "acct_1", 9)
	_, _, _, path, _ := writeFile(t, herald.FormatParquet, events)

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pr, err := file.NewParquetReader(f)
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	if n := pr.NumRows(); n != int64(len(events)) {
		t.Fatalf("%d rows, want %d", n, len(events))
	}
	// The logical types a reader relies on: JSON data, UTC timestamps
	// in microseconds, a zstd-compressed column.
	schema := pr.MetaData().Schema
	dataCol := schema.Column(schema.ColumnIndexByName("data"))
	if lt := dataCol.LogicalType().String(); lt != "JSON" {
		t.Errorf("data logical type %s, want JSON", lt)
	}
	occ := schema.Column(schema.ColumnIndexByName("occurred_at"))
	if lt := occ.LogicalType().String(); !strings.Contains(lt, "isAdjustedToUTC=true") || !strings.Contains(lt, "timeUnit=microseconds") {
		t.Errorf("occurred_at logical type %s", lt)
	}
	if c, err := pr.MetaData().RowGroup(0).ColumnChunk(schema.ColumnIndexByName("data")); err != nil || c.Compression().String() != "ZSTD" {
		t.Errorf("data column compression: %v %v", c.Compression(), err)
	}

	fr, err := pqarrow.NewFileReader(pr, pqarrow.ArrowReadProperties{BatchSize: 1024}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	if tbl.NumRows() != int64(len(events)) {
		t.Fatalf("table has %d rows", tbl.NumRows())
	}
	var names []string
	for _, f := range tbl.Schema().Fields() {
		names = append(names, f.Name)
	}
	if got := strings.Join(names, ","); got != csvHeader {
		t.Errorf("columns %s, want %s", got, csvHeader)
	}
	column := func(name string) arrow.Array {
		idx := tbl.Schema().FieldIndices(name)
		if len(idx) != 1 {
			t.Fatalf("no column %s in %s", name, tbl.Schema())
		}
		chunks := tbl.Column(idx[0]).Data().Chunks()
		if len(chunks) != 1 {
			t.Fatalf("column %s has %d chunks", name, len(chunks))
		}
		return chunks[0]
	}
	str := func(name string, i int) (string, bool) {
		a := column(name)
		if a.IsNull(i) {
			return "", false
		}
		switch a := a.(type) {
		case *array.String:
			return a.Value(i), true
		case *array.Binary:
			return string(a.Value(i)), true
		default:
			// JSON may come as an extension type over strings.
			if ext, ok := a.(array.ExtensionArray); ok {
				if s, ok := ext.Storage().(*array.String); ok {
					return s.Value(i), true
				}
			}
			t.Fatalf("column %s is %T", name, a)
			return "", false
		}
	}
	for i, e := range events {
		if s, _ := str("id", i); s != e.ID {
			t.Errorf("row %d id %q, want %s", i, s, e.ID)
		}
		if s, _ := str("account_id", i); s != "acct_1" {
			t.Errorf("row %d account_id %q", i, s)
		}
		if seq := column("seq").(*array.Int64).Value(i); seq != e.Seq {
			t.Errorf("row %d seq %d, want %d", i, seq, e.Seq)
		}
		for name, want := range map[string]time.Time{"occurred_at": e.OccurredAt, "received_at": e.ReceivedAt} {
			ts := column(name).(*array.Timestamp)
			unit := ts.DataType().(*arrow.TimestampType).Unit
			if got := ts.Value(i).ToTime(unit); !got.Equal(want) {
				t.Errorf("row %d %s = %s, want %s", i, name, got, want)
			}
		}
		if data, ok := str("data", i); e.Data == nil {
			if ok {
				t.Errorf("row %d data = %q, want null", i, data)
			}
		} else if !ok || !jsonEqual(t, data, string(e.Data)) {
			t.Errorf("row %d data = %q, want %s", i, data, e.Data)
		}
		if s, ok := str("session_id", i); (e.SessionID == "") == ok || s != e.SessionID {
			t.Errorf("row %d session_id = %q (%v), want %q or null", i, s, ok, e.SessionID)
		}
		if s, _ := str("hash", i); s != e.ChainHash {
			t.Errorf("row %d hash %q", i, s)
		}
		if r := column("redacted").(*array.Boolean).Value(i); r != e.Redacted {
			t.Errorf("row %d redacted %v", i, r)
		}
		flags := column("flags").(*array.List)
		start, end := flags.ValueOffsets(i)
		var got []string
		for j := start; j < end; j++ {
			got = append(got, flags.ListValues().(*array.String).Value(int(j)))
		}
		if strings.Join(got, ",") != strings.Join(e.Flags, ",") {
			t.Errorf("row %d flags %v, want %v", i, got, e.Flags)
		}
	}
}

// TestFilesStayInRoot: a directory that would lead out of the export
// directory is refused, by its name or through a symbolic link.
func TestFilesStayInRoot(t *testing.T) {
	t.Parallel()
	root, outside := t.TempDir(), t.TempDir()
	events := testEvents(t, "acct_1", 2)

	w := testWork("wrk_x", "acct_1", herald.Destination{Type: herald.DestinationFiles, Dir: "../out", Format: herald.FormatNDJSON})
	if _, err := Open(context.Background(), w, Options{Root: root}); !IsPermanent(err) {
		t.Fatalf("dir ../out: %v, want a permanent error", err)
	}
	w = testWork("wrk_x", "acct_1", herald.Destination{Type: herald.DestinationFiles, Dir: "x", Format: herald.FormatNDJSON})
	if _, err := Open(context.Background(), w, Options{}); !IsPermanent(err) {
		t.Fatalf("no root: %v, want a permanent error", err)
	}

	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	w = testWork("wrk_x", "acct_1", herald.Destination{Type: herald.DestinationFiles, Dir: "link/sub", Format: herald.FormatNDJSON})
	wr, err := Open(context.Background(), w, Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close()
	if _, err := wr.Write(context.Background(), &Unit{Work: w, Events: events}); err == nil {
		t.Fatal("wrote through a symbolic link out of the export directory")
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("files outside the root: %v", entries)
	}
}
