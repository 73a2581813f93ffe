package delivery

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/google/go-jsonnet"
	"github.com/google/go-jsonnet/ast"

	"github.com/heraldhq/herald"
)

// templateFile names the template in Jsonnet's messages.
const templateFile = "json_template"

// prelude binds event, steps and alert, so that a template reads
// event.data.notes as the Lytics templates do, not std.extVar("event").
// It is one line of its own: positions in the template are one line
// lower, which errors correct. steps (a workflow run's step outputs) and
// alert (an alert's firing) are null where they do not apply.
const prelude = "local event = std.extVar('event'), steps = std.extVar('steps'), alert = std.extVar('alert');\n"

// MaxBodyBytes caps what a template may produce.
const MaxBodyBytes = 1 << 20

// Template is a compiled Jsonnet program of a definition (a json_template,
// a workflow step's input): it turns the stored event, bound to the
// variable event, and the Vars into a JSON value, most often a request
// body.
type Template struct {
	node ast.Node
}

// Vars are the variables a template sees besides event. A nil member is
// bound to null.
type Vars struct {
	// Steps are the outputs of a workflow run's steps so far.
	Steps json.RawMessage
	// Alert is an alert's firing: its name, count, threshold, window.
	Alert json.RawMessage
}

// Compile parses and checks a subscription's json_template. An error is
// EINVALID, names /json_template, and gives Jsonnet's message with the
// line and column in the template.
func Compile(text string) (*Template, error) {
	return CompileAt("/json_template", text)
}

// CompileAt is Compile for a template found at pointer in its definition
// (/steps/0/input, /alert/target/json_template): the error names it.
func CompileAt(pointer, text string) (*Template, error) {
	node, err := jsonnet.SnippetToAST(templateFile, prelude+text)
	if err != nil {
		return nil, herald.FieldErrorf(pointer, "%s", jsonnetMessage(err))
	}
	return &Template{node: node}, nil
}

// Render evaluates the template for e, with steps and alert null, and
// returns the body: compact JSON, members in the order Jsonnet writes
// them (sorted). An error (a field the event lacks, an error() call) is
// the Jsonnet message with its position.
func (t *Template) Render(e *herald.Event) ([]byte, error) {
	return t.RenderWith(e, Vars{})
}

// RenderWith is Render with the variables of a workflow run or an alert.
// e may be nil (event is null then). The output is any JSON value: an
// object for a request body, a string for an email's text.
func (t *Template) RenderWith(e *herald.Event, vars Vars) ([]byte, error) {
	body := []byte("null")
	if e != nil {
		body = e.Body
		if len(body) == 0 {
			var err error
			if body, err = herald.MarshalEvent(e); err != nil {
				return nil, fmt.Errorf("json_template: encode event %s: %w", e.ID, err)
			}
		}
	}
	vm := jsonnet.MakeVM()
	// No imports: a template must not read the server's files.
	vm.Importer(&jsonnet.MemoryImporter{Data: map[string]jsonnet.Contents{}})
	vm.ExtCode("event", string(body))
	vm.ExtCode("steps", orNull(vars.Steps))
	vm.ExtCode("alert", orNull(vars.Alert))
	out, err := vm.Evaluate(t.node)
	if err != nil {
		return nil, fmt.Errorf("json_template: %s", jsonnetMessage(err))
	}
	var buf bytes.Buffer
	buf.Grow(len(out))
	if err := json.Compact(&buf, []byte(out)); err != nil {
		return nil, fmt.Errorf("json_template: output is not JSON: %w", err)
	}
	if buf.Len() > MaxBodyBytes {
		return nil, fmt.Errorf("json_template: output of %d bytes is over the limit of %d", buf.Len(), MaxBodyBytes)
	}
	return buf.Bytes(), nil
}

// orNull is the Jsonnet code of a variable: its JSON, or null when unset.
func orNull(v json.RawMessage) string {
	if len(bytes.TrimSpace(v)) == 0 {
		return "null"
	}
	return string(v)
}

// jsonnetMessage words a Jsonnet error with its position in the
// template, as the user wrote it (without the prelude line).
func jsonnetMessage(err error) string {
	var rt jsonnet.RuntimeError
	if errors.As(err, &rt) {
		for _, f := range rt.StackTrace {
			if f.Loc.FileName == templateFile && f.Loc.Begin.Line > 1 {
				return "RUNTIME ERROR: " + rt.Msg + " at " + position(f.Loc)
			}
		}
		return "RUNTIME ERROR: " + rt.Msg
	}
	// Static errors (parse, unknown variable) have a Loc.
	var located interface{ Loc() ast.LocationRange }
	if errors.As(err, &located) {
		loc := located.Loc()
		msg := err.Error()
		if loc.IsSet() {
			msg = strings.TrimPrefix(msg, loc.String())
			return strings.TrimSpace(msg) + " at " + position(loc)
		}
		return strings.TrimSpace(msg)
	}
	return err.Error()
}

// position is "line L, column C" in the template.
func position(loc ast.LocationRange) string {
	line := loc.Begin.Line - 1
	if line < 1 {
		line = 1
	}
	return fmt.Sprintf("line %d, column %d", line, loc.Begin.Column)
}

// Templates caches compiled templates by their text, so that a
// subscription's template is parsed once, not per event.
type Templates struct {
	mu sync.Mutex
	m  map[string]*Template
}

// maxCachedTemplates bounds the cache; past it, it starts over.
const maxCachedTemplates = 1024

// Compile returns the compiled template, from the cache if it is there.
func (c *Templates) Compile(text string) (*Template, error) {
	return c.CompileAt("/json_template", text)
}

// CompileAt is the package's CompileAt, from the cache: an error names
// pointer. The cache is by text alone, since where a template is does
// not change what it compiles to.
func (c *Templates) CompileAt(pointer, text string) (*Template, error) {
	c.mu.Lock()
	t, ok := c.m[text]
	c.mu.Unlock()
	if ok {
		return t, nil
	}
	t, err := CompileAt(pointer, text)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedTemplates {
		c.m = make(map[string]*Template)
	}
	c.m[text] = t
	c.mu.Unlock()
	return t, nil
}
