package delivery

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

// slackTemplate is the json_template of the Slack example in the Lytics
// document, as it is there.
const slackTemplate = `local note = if std.objectHas(event.data, "notes") then event.data.notes else "A work failed"; {"text": "Alert notification: " + note + ". For more info go to: https://activate.getlytics.com/data/integrations/work/%s?aid=%s" % [event.data.subject_id, event.data.aid] }`

// storedSystemEvent returns a system event as a store holds it.
func storedSystemEvent(t *testing.T, se herald.SystemEvent) *herald.Event {
	t.Helper()
	e, err := se.Event()
	if err != nil {
		t.Fatal(err)
	}
	e.Seq = 42
	if e.Body, err = herald.MarshalEvent(e); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestTemplateSlack(t *testing.T) {
	t.Parallel()
	tmpl, err := Compile(slackTemplate)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		notes, want string
	}{
		{"sync timed out", `{"text":"Alert notification: sync timed out. For more info go to: https://activate.getlytics.com/data/integrations/work/work-7?aid=acct-1"}`},
		{"", `{"text":"Alert notification: A work failed. For more info go to: https://activate.getlytics.com/data/integrations/work/work-7?aid=acct-1"}`},
	} {
		e := storedSystemEvent(t, herald.SystemEvent{
			AccountID: "acct-1", SubjectType: herald.SubjectWork, SubjectID: "work-7",
			Verb: herald.VerbFailed, At: at, Notes: tc.notes,
		})
		got, err := tmpl.Render(e)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tc.want {
			t.Errorf("notes %q:\n got %s\nwant %s", tc.notes, got, tc.want)
		}
	}
}

func TestTemplateCompileError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		text, want string
	}{
		{`{"text": }`, "line 1, column 10"},
		{"{\n  a: 1,\n  b: nope\n}", "Unknown variable: nope at line 3, column 6"},
		{`{"a": 1`, "line 1, column 8"},
	} {
		_, err := Compile(tc.text)
		if herald.ErrorCode(err) != herald.EINVALID {
			t.Fatalf("Compile(%q) = %v, want EINVALID", tc.text, err)
		}
		e := err.(*herald.Error)
		if len(e.Fields) != 1 || e.Fields[0].Pointer != "/json_template" {
			t.Fatalf("Compile(%q) fields = %+v, want /json_template", tc.text, e.Fields)
		}
		if !strings.Contains(e.Fields[0].Detail, tc.want) {
			t.Errorf("Compile(%q) detail %q, want it to contain %q", tc.text, e.Fields[0].Detail, tc.want)
		}
	}
}

func TestTemplateRuntimeError(t *testing.T) {
	t.Parallel()
	e := storedSystemEvent(t, herald.SystemEvent{AccountID: "a", SubjectType: "work", SubjectID: "w", Verb: "failed", At: time.Now()})
	for _, tc := range []struct {
		text, want string
	}{
		{`{"x": event.data.missing}`, "RUNTIME ERROR: Field does not exist: missing at line 1, column 7"},
		{"\nerror 'no'", "RUNTIME ERROR: no at line 2, column 1"},
		// No file is readable from a template.
		{`importstr "/etc/hostname"`, "import not available"},
		{`std.extVar("other")`, "Undefined external variable: other"},
	} {
		tmpl, err := Compile(tc.text)
		if err != nil {
			t.Fatalf("Compile(%q): %v", tc.text, err)
		}
		_, err = tmpl.Render(e)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Render(%q) = %v, want %q", tc.text, err, tc.want)
		}
	}
}

// TestTemplateConcurrent renders one compiled template from many
// goroutines (run with -race).
func TestTemplateConcurrent(t *testing.T) {
	t.Parallel()
	var c Templates
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tmpl, err := c.Compile(slackTemplate)
			if err != nil {
				t.Error(err)
				return
			}
			e := storedSystemEvent(t, herald.SystemEvent{AccountID: "a", SubjectType: "work", SubjectID: "w", Verb: "failed", At: time.Now(), Notes: strings.Repeat("x", i)})
			b, err := tmpl.Render(e)
			if err != nil || !strings.Contains(string(b), strings.Repeat("x", i)+". For") {
				t.Errorf("Render = %s, %v", b, err)
			}
		}()
	}
	wg.Wait()
	t1, _ := c.Compile(slackTemplate)
	t2, _ := c.Compile(slackTemplate)
	if t1 != t2 {
		t.Error("the cache compiled the same text twice")
	}
}

// TestTemplateRenderWith: steps and alert are bound next to event, null
// when not given, and the output may be any JSON value.
func TestTemplateRenderWith(t *testing.T) {
	t.Parallel()
	e := storedSystemEvent(t, herald.SystemEvent{
		AccountID: "acct-1", SubjectType: herald.SubjectWork, SubjectID: "work-7",
		Verb: herald.VerbFailed, At: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), Notes: "disk full",
	})
	vars := Vars{
		Steps: []byte(`{"notify": {"status": 200}}`),
		Alert: []byte(`{"name": "failures", "count": 3}`),
	}
	for _, tc := range []struct {
		name, text string
		e          *herald.Event
		vars       Vars
		want       string
	}{
		{"all three", `{"s": steps.notify.status, "a": alert.name + " x" + alert.count, "n": event.data.notes}`, e, vars,
			`{"a":"failures x3","n":"disk full","s":200}`},
		{"unset vars are null", `[steps, alert]`, e, Vars{}, `[null,null]`},
		{"no event", `{"e": event, "c": alert.count}`, nil, vars, `{"c":3,"e":null}`},
		{"a string", `"%s failed: %s" % [event.data.subject_id, event.data.notes]`, e, Vars{}, `"work-7 failed: disk full"`},
		{"a number", `alert.count * 2`, nil, vars, `6`},
	} {
		tmpl, err := Compile(tc.text)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got, err := tmpl.RenderWith(tc.e, tc.vars)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if string(got) != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
	// Render is RenderWith without vars.
	tmpl, _ := Compile(`{"steps": steps, "alert": alert}`)
	if got, err := tmpl.Render(e); err != nil || string(got) != `{"alert":null,"steps":null}` {
		t.Errorf("Render = %s, %v", got, err)
	}
	// A position after the prelude is still the template's own.
	tmpl, _ = Compile("{\n  s: steps.missing\n}")
	if _, err := tmpl.RenderWith(e, vars); err == nil || !strings.Contains(err.Error(), "Field does not exist: missing at line 2, column 6") {
		t.Errorf("RenderWith = %v", err)
	}
}

// TestTemplateCompileAt: the error names where the template is.
func TestTemplateCompileAt(t *testing.T) {
	t.Parallel()
	var c Templates
	for _, compile := range []func(string, string) (*Template, error){CompileAt, c.CompileAt} {
		_, err := compile("/steps/2/input", "{\n  a: nope\n}")
		e, ok := err.(*herald.Error)
		if !ok || e.Code != herald.EINVALID || len(e.Fields) != 1 || e.Fields[0].Pointer != "/steps/2/input" ||
			!strings.Contains(e.Fields[0].Detail, "Unknown variable: nope at line 2, column 6") {
			t.Errorf("CompileAt = %#v", err)
		}
	}
	// The cache holds a template whatever pointer compiled it.
	t1, err := c.CompileAt("/alert/target/json_template", slackTemplate)
	if err != nil {
		t.Fatal(err)
	}
	if t2, _ := c.Compile(slackTemplate); t1 != t2 {
		t.Error("the cache compiled the same text twice")
	}
}
