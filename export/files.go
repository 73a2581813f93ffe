package export

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/heraldhq/herald"
)

// filesWriter writes each unit to a file of its own under Root/Dir.
type filesWriter struct {
	// root confines every file operation to the export directory: Dir is
	// checked to be local, and the root also stops a symbolic link
	// inside it from leading out.
	root   *os.Root
	dir    string // slash-separated, relative to root
	format string
}

func openFiles(w *herald.Work, opts Options) (*filesWriter, error) {
	d := &w.Export.Destination
	switch {
	case opts.Root == "":
		return nil, &PermanentError{Err: errors.New("export: the server has no export directory configured, so files cannot be written")}
	case d.Dir == "" || !filepath.IsLocal(d.Dir):
		return nil, &PermanentError{Err: fmt.Errorf("export: dir %q is not a relative path inside the export directory", d.Dir)}
	case w.ID == "" || !filepath.IsLocal(w.ID) || filepath.Base(w.ID) != w.ID:
		return nil, &PermanentError{Err: fmt.Errorf("export: job id %q cannot name a file", w.ID)}
	}
	switch d.Format {
	case herald.FormatNDJSON, herald.FormatCSV, herald.FormatParquet:
	default:
		return nil, &PermanentError{Err: fmt.Errorf("export: unknown file format %q", d.Format)}
	}
	if err := os.MkdirAll(opts.Root, 0o750); err != nil {
		return nil, fmt.Errorf("export: create the export directory: %w", err)
	}
	root, err := os.OpenRoot(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("export: open the export directory: %w", err)
	}
	return &filesWriter{root: root, dir: filepath.ToSlash(filepath.Clean(d.Dir)), format: d.Format}, nil
}

func (f *filesWriter) Close() error { return f.root.Close() }

// Write writes the unit to a temporary file next to its final name,
// syncs it, renames it into place and syncs the directory: a reader
// sees the whole file or the one it replaces, never a part, and a crash
// leaves no half file under a final name.
func (f *filesWriter) Write(ctx context.Context, u *Unit) (json.RawMessage, error) {
	if err := checkUnit(u); err != nil {
		return nil, err
	}
	// Created on each write, not once: an operator may have moved the
	// directory away meanwhile.
	if err := f.root.MkdirAll(f.dir, 0o750); err != nil {
		return nil, fmt.Errorf("export %s: create %s: %w", u.Work.ID, f.dir, err)
	}
	name := path.Join(f.dir, unitName(u, true)+"."+f.format)
	f.removeLeftovers(name)
	var random [6]byte
	_, _ = rand.Read(random[:])
	tmp := path.Join(f.dir, "."+path.Base(name)+"."+hex.EncodeToString(random[:])+".tmp")
	file, err := f.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, fmt.Errorf("export %s: create %s: %w", u.Work.ID, tmp, err)
	}
	done := false
	defer func() {
		if !done {
			_ = file.Close()
			_ = f.root.Remove(tmp)
		}
	}()
	buf := bufio.NewWriterSize(file, 256<<10)
	cw := &countingWriter{w: buf}
	switch f.format {
	case herald.FormatNDJSON:
		err = writeNDJSON(ctx, cw, u)
	case herald.FormatCSV:
		err = writeCSV(ctx, cw, u)
	case herald.FormatParquet:
		err = writeParquet(ctx, cw, u)
	}
	if err == nil {
		err = buf.Flush()
	}
	if err == nil {
		err = file.Sync()
	}
	if err != nil {
		return nil, fmt.Errorf("export %s: write %s: %w", u.Work.ID, name, err)
	}
	done = true
	if err := file.Close(); err != nil {
		_ = f.root.Remove(tmp)
		return nil, fmt.Errorf("export %s: write %s: %w", u.Work.ID, name, err)
	}
	if err := f.root.Rename(tmp, name); err != nil {
		_ = f.root.Remove(tmp)
		return nil, fmt.Errorf("export %s: rename to %s: %w", u.Work.ID, name, err)
	}
	// The rename is durable only once the directory is synced.
	if err := f.syncDir(); err != nil {
		return nil, fmt.Errorf("export %s: sync %s: %w", u.Work.ID, f.dir, err)
	}
	return detail(map[string]any{"file": name, "bytes": cw.n}), nil
}

// removeLeftovers removes the temporary files that earlier attempts at
// the unit left when the server stopped halfway: written again, the
// unit gets a new one.
func (f *filesWriter) removeLeftovers(name string) {
	pattern := path.Join(f.dir, "."+globEscape(path.Base(name))+".*.tmp")
	matches, err := fs.Glob(f.root.FS(), pattern)
	if err != nil {
		return
	}
	for _, m := range matches {
		_ = f.root.Remove(m)
	}
}

// globEscape quotes the characters that path.Match gives a meaning.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (f *filesWriter) syncDir() error {
	d, err := f.root.Open(f.dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ctxEvery is how many events a writer writes between looks at its
// context: often enough to stop a large unit soon, rarely enough to cost
// nothing.
const ctxEvery = 1024

// writeNDJSON writes each stored body as it is, one per line.
func writeNDJSON(ctx context.Context, w io.Writer, u *Unit) error {
	for i, e := range u.Events {
		if i%ctxEvery == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		b, err := bodyOf(e)
		if err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		if _, err := w.Write([]byte{'\n'}); err != nil {
			return err
		}
	}
	return nil
}

// writeCSV writes a header row, then a row per event: times in RFC 3339
// (UTC, as stored), flags and data as JSON, "" for what the event lacks.
func writeCSV(ctx context.Context, w io.Writer, u *Unit) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(columns); err != nil {
		return err
	}
	rows, err := rowsOf(u)
	if err != nil {
		return err
	}
	rec := make([]string, len(columns))
	for i, r := range rows {
		if i%ctxEvery == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		flags := ""
		if len(r.Flags) > 0 {
			b, _ := json.Marshal(r.Flags)
			flags = string(b)
		}
		data := ""
		if r.Data != nil {
			data = *r.Data
		}
		rec = append(rec[:0], r.AccountID, r.ID, strconv.FormatInt(r.Seq, 10), r.Category, r.Type,
			r.OccurredAt.Format(time.RFC3339Nano), r.ReceivedAt.Format(time.RFC3339Nano),
			r.Origin, r.AgentID, r.AgentType, r.CoreCustomerID, r.CustomerSerialID,
			r.Host, r.PrimaryID, r.SecondaryID, r.SessionID, r.EventStatus,
			r.EventLifecycleID, strconv.FormatBool(r.Redacted), flags, r.Hash, data)
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// writeParquet writes one row group of the unit's rows, zstd-compressed.
func writeParquet(ctx context.Context, w io.Writer, u *Unit) error {
	rows, err := rowsOf(u)
	if err != nil {
		return err
	}
	pw := parquet.NewGenericWriter[row](w, parquetSchema(), parquet.Compression(&parquet.Zstd))
	chunk := make([]row, 0, ctxEvery)
	for i := 0; i < len(rows); i += ctxEvery {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk = chunk[:0]
		for _, r := range rows[i:min(i+ctxEvery, len(rows))] {
			chunk = append(chunk, *r)
		}
		if _, err := pw.Write(chunk); err != nil {
			return err
		}
	}
	return pw.Close()
}

// parquetSchema is row's schema with data of the JSON logical type, the
// columns in row's order (a parquet.Group alone would sort them by name).
var parquetSchema = sync.OnceValue(func() *parquet.Schema {
	group := parquet.Group{}
	for _, f := range parquet.SchemaOf(row{}).Fields() {
		group[f.Name()] = f
	}
	group["data"] = parquet.Optional(parquet.JSON())
	byName := make(map[string]parquet.Field, len(group))
	for _, f := range group.Fields() {
		byName[f.Name()] = f
	}
	fields := make([]parquet.Field, len(columns))
	for i, c := range columns {
		fields[i] = byName[c]
	}
	return parquet.NewSchema("event", orderedGroup{group, fields})
})

// orderedGroup is a group whose fields come in a given order.
type orderedGroup struct {
	parquet.Group
	fields []parquet.Field
}

func (g orderedGroup) Fields() []parquet.Field { return g.fields }
