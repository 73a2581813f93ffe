package delivery

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-jsonnet/ast"
	"github.com/google/go-jsonnet/formatter"

	"github.com/heraldhq/herald"
)

// maxFuzzTemplate caps the templates the fuzzer evaluates. Real templates
// are a few hundred bytes (the Lytics Slack one is 300).
const maxFuzzTemplate = 1 << 10

// renderDeadline is how long one template may take before the fuzz target
// fails rather than hang: boundedTemplate should keep every template far
// below it, so a template over it shows a way around the guard.
const renderDeadline = 10 * time.Second

// boundedStd are the std functions a fuzzed template may call: each costs
// about as much as its arguments' size. std.range, std.repeat,
// std.makeArray, std.format (width and precision), std.strReplace and the
// higher-order functions can each take time or memory out of proportion
// to the template's text, which is Jsonnet being Turing-complete, not a
// bug the fuzzer should report.
var boundedStd = map[string]bool{
	"objectHas": true, "objectHasAll": true, "objectFields": true, "objectFieldsAll": true, "objectValues": true,
	"length": true, "toString": true, "type": true, "get": true,
	"isString": true, "isNumber": true, "isBoolean": true, "isObject": true, "isArray": true, "isFunction": true,
	"startsWith": true, "endsWith": true, "asciiUpper": true, "asciiLower": true, "substr": true,
	"split": true, "trim": true, "stripChars": true, "lstripChars": true, "rstripChars": true,
	"escapeStringJson": true, "manifestJson": true, "parseJson": true, "parseInt": true,
	"abs": true, "floor": true, "ceil": true, "min": true, "max": true, "sign": true,
	"md5": true, "base64": true, "char": true, "codepoint": true, "member": true, "count": true,
	"reverse": true, "sort": true, "uniq": true, "flattenArrays": true, "join": true, "extVar": true,
}

// formatWidth finds a width or precision of 4 digits or more, or one
// taken from the arguments (*), in a format string.
var formatWidth = regexp.MustCompile(`[0-9]{4,}|\*`)

// boundedTemplate reports whether evaluating text takes time and memory
// about proportional to its size and the event's: no functions but the
// bounded std ones (std not rebound), at most one comprehension loop, and
// few references (each copy of a value referred to again can double the
// output: local a = [event, event], b = [a, a], …).
func boundedTemplate(text string) bool {
	if len(text) > maxFuzzTemplate {
		return false
	}
	root, _, err := formatter.SnippetToRawAST(templateFile, text)
	if err != nil {
		return true // Compile refuses it
	}
	refs, loops := 0, 0
	var walk func(n ast.Node) bool
	walk = func(n ast.Node) bool {
		switch n := n.(type) {
		case nil:
			return true
		case *ast.Function:
			return false
		case *ast.Apply:
			ix, ok := n.Target.(*ast.Index)
			if !ok || n.TailStrict || ix.Id == nil || !boundedStd[string(*ix.Id)] {
				return false
			}
			if v, ok := ix.Target.(*ast.Var); !ok || v.Id != "std" {
				return false
			}
			for _, a := range n.Arguments.Positional {
				if !walk(a.Expr) {
					return false
				}
			}
			for _, a := range n.Arguments.Named {
				if !walk(a.Arg) {
					return false
				}
			}
			return true
		case *ast.Local:
			for _, b := range n.Binds {
				if b.Fun != nil || b.Variable == "std" {
					return false
				}
			}
		case *ast.Object:
			if !fieldsBounded(n.Fields, &refs) {
				return false
			}
		case *ast.ObjectComp:
			if !fieldsBounded(n.Fields, &refs) {
				return false
			}
			if !specBounded(&n.Spec, &loops) {
				return false
			}
		case *ast.ArrayComp:
			if !specBounded(&n.Spec, &loops) {
				return false
			}
		case *ast.Binary:
			if n.Op == ast.BopPercent {
				// String formatting: only with a literal format
				// without large widths; else modulo of a number.
				switch l := n.Left.(type) {
				case *ast.LiteralString:
					if formatWidth.MatchString(l.Value) {
						return false
					}
				case *ast.LiteralNumber:
				default:
					return false
				}
			}
		case *ast.Var:
			if n.Id != "std" && n.Id != "event" {
				refs++
			}
		case *ast.Self, *ast.Dollar, *ast.SuperIndex, *ast.InSuper:
			refs++
		case *ast.LiteralNull, *ast.LiteralBoolean, *ast.LiteralNumber, *ast.LiteralString,
			*ast.Array, *ast.Conditional, *ast.Unary, *ast.Error, *ast.Assert, *ast.Parens,
			*ast.Index, *ast.Slice, *ast.ApplyBrace, *ast.Import, *ast.ImportStr, *ast.ImportBin:
		default:
			return false // a node this guard does not know
		}
		if refs > 8 || loops > 1 {
			return false
		}
		for _, c := range childrenOf(n) {
			if !walk(c) {
				return false
			}
		}
		return true
	}
	return walk(root)
}

// fieldsBounded reports whether an object's fields define no methods and
// do not rebind std (a std whose join is std.range would get around the
// allowed list), counting each field+: (which refers to super) as a
// reference.
func fieldsBounded(fields ast.ObjectFields, refs *int) bool {
	for _, f := range fields {
		if f.Method != nil || f.Kind == ast.ObjectLocal && f.Id != nil && *f.Id == "std" {
			return false
		}
		if f.SuperSugar {
			*refs++
		}
	}
	return true
}

// specBounded counts a comprehension's for clauses into loops, and
// reports whether none rebinds std.
func specBounded(spec *ast.ForSpec, loops *int) bool {
	for s := spec; s != nil; s = s.Outer {
		if s.VarName == "std" {
			return false
		}
		*loops++
	}
	return true
}

// childrenOf lists a raw node's sub-expressions, comprehension specs
// included.
func childrenOf(n ast.Node) []ast.Node {
	var out []ast.Node
	spec := func(s *ast.ForSpec) {
		for ; s != nil; s = s.Outer {
			out = append(out, s.Expr)
			for _, c := range s.Conditions {
				out = append(out, c.Expr)
			}
		}
	}
	field := func(f ast.ObjectField) {
		out = append(out, f.Expr1, f.Expr2, f.Expr3)
	}
	switch n := n.(type) {
	case *ast.Local:
		for _, b := range n.Binds {
			out = append(out, b.Body)
		}
		return append(out, n.Body)
	case *ast.Object:
		for _, f := range n.Fields {
			field(f)
		}
		return out
	case *ast.ObjectComp:
		for _, f := range n.Fields {
			field(f)
		}
		spec(&n.Spec)
		return out
	case *ast.ArrayComp:
		spec(&n.Spec)
		return append(out, n.Body)
	case *ast.Array:
		for _, e := range n.Elements {
			out = append(out, e.Expr)
		}
		return out
	case *ast.Binary:
		return []ast.Node{n.Left, n.Right}
	case *ast.Unary:
		return []ast.Node{n.Expr}
	case *ast.Conditional:
		return []ast.Node{n.Cond, n.BranchTrue, n.BranchFalse}
	case *ast.Error:
		return []ast.Node{n.Expr}
	case *ast.Assert:
		return []ast.Node{n.Cond, n.Message, n.Rest}
	case *ast.Parens:
		return []ast.Node{n.Inner}
	case *ast.Index:
		return []ast.Node{n.Target, n.Index}
	case *ast.Slice:
		return []ast.Node{n.Target, n.BeginIndex, n.EndIndex, n.Step}
	case *ast.ApplyBrace:
		return []ast.Node{n.Left, n.Right}
	case *ast.SuperIndex:
		return []ast.Node{n.Index}
	case *ast.InSuper:
		return []ast.Node{n.Index}
	}
	return nil
}

// fuzzEvents are the stored events templates render: a Lytics work
// failure and a README transaction.
func fuzzEvents(f *testing.F) []*herald.Event {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	se, err := herald.SystemEvent{AccountID: "acct-1", SubjectType: herald.SubjectWork, SubjectID: "work-7",
		Verb: herald.VerbFailed, At: at, Notes: "sync timed out"}.Event()
	if err != nil {
		f.Fatal(err)
	}
	se.Seq = 42
	tx, err := herald.ParseEvent([]byte(`{"id":"tx-981-failed","category":"transactions","type":"transaction",
		"eventStatus":"failed","coreCustomerId":"cust-42",
		"data":{"external_transaction_id":"tx-981","amount":"250.00","currency":"EUR","note":"<&>\u2028"}}`))
	if err != nil {
		f.Fatal(err)
	}
	tx.Complete(at, herald.OriginAPI, nil)
	tx.Seq = 43
	events := []*herald.Event{se, tx}
	for _, e := range events {
		if e.Body, err = herald.MarshalEvent(e); err != nil {
			f.Fatal(err)
		}
	}
	return events
}

// FuzzTemplate: any text compiles or is refused with EINVALID at
// /json_template; a compiled template renders each event, within
// renderDeadline, to compact valid JSON no larger than MaxBodyBytes and
// the same bytes every time, or fails with a json_template error.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{
		slackTemplate, // from the Lytics document
		// The README's workflow, alert and input templates.
		`{transaction: event.data.external_transaction_id, customer: event.coreCustomerId}`,
		`{text: ":rotating_light: Transfer %s of %s %s %s for %s" % [event.data.external_transaction_id, event.data.amount, event.data.currency, event.eventStatus, event.coreCustomerId]}`,
		`{subject: alert.count + " failed transfers", text: "The last: " + event.id}`,
		`{to: [event.data.email], subject: 'Transfer ' + event.primaryId}`,
		`{risk: steps['call-risk'].response, n: std.length(std.objectFields(event.data))}`,
		`event`,
		`[x for x in std.objectFields(event) if std.startsWith(x, "s")]`,
		`{[k]: std.toString(event[k]) for k in std.objectFields(event)}`,
		`local e = event { data+: { extra: $.seq } }; e`,
		"|||\n  multi\n  line\n|||",
		`std.manifestJson({a: [1, 2.5e3, null, true]})`,
		`error 'no'`,
		`importstr "/etc/hostname"`,
		`{"text": }`,
		`local f(x) = f(x); f(1)`,
	} {
		f.Add(s)
	}
	events := fuzzEvents(f)
	vars := Vars{
		Steps: json.RawMessage(`{"call-risk":{"status":200,"response":"ok"}}`),
		Alert: json.RawMessage(`{"name":"failing transfers","count":3,"threshold":3,"window":"10m"}`),
	}

	f.Fuzz(func(t *testing.T, text string) {
		if !boundedTemplate(text) {
			t.Skip("not a bounded template")
		}
		tmpl, err := Compile(text)
		if err != nil {
			var he *herald.Error
			if !errors.As(err, &he) || he.Code != herald.EINVALID || len(he.Fields) != 1 ||
				he.Fields[0].Pointer != "/json_template" || he.Fields[0].Detail == "" {
				t.Fatalf("Compile(%q) error %#v, want EINVALID at /json_template", text, err)
			}
			return
		}
		render := func(e *herald.Event) ([]byte, error) {
			type result struct {
				out []byte
				err error
			}
			done := make(chan result, 1)
			go func() {
				out, err := tmpl.RenderWith(e, vars)
				done <- result{out, err}
			}()
			select {
			case r := <-done:
				return r.out, r.err
			case <-time.After(renderDeadline):
				t.Fatalf("template %q took over %s to render: it gets around boundedTemplate", text, renderDeadline)
				return nil, nil
			}
		}
		for _, e := range append(events, nil) {
			out, err := render(e)
			if err != nil {
				if out != nil || !strings.HasPrefix(err.Error(), "json_template: ") {
					t.Fatalf("render %q: output %q, error %q", text, out, err)
				}
				continue
			}
			if len(out) > MaxBodyBytes || !json.Valid(out) {
				t.Fatalf("render %q: %d bytes, valid JSON %v", text, len(out), json.Valid(out))
			}
			if strings.ContainsAny(string(out), "\n\r\t") {
				// Compact JSON has white space only in strings,
				// where it is escaped but for spaces.
				t.Fatalf("render %q: output is not compact: %q", text, out)
			}
			again, err := render(e)
			if err != nil || string(again) != string(out) {
				t.Fatalf("render %q twice: %q, then %q (%v)", text, out, again, err)
			}
		}
	})
}

// Two signing secrets, as a rotation has them: the first is the Standard
// Webhooks specification's example.
const (
	fuzzSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	fuzzOldSecret = "whsec_VlUw+qznK/ly6Wsrt72Zab7c+4YHwTH4IgYCMSAXjJU="
)

// expectedSignature is the v1 signature of a request, computed as the
// README tells receivers to, apart from Herald's code.
func expectedSignature(key []byte, id string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + strconv.FormatInt(ts, 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// FuzzVerifySignature: Verify never panics on any secret or header
// strings, and accepts a request only when the webhook-signature header
// holds the signature of exactly this id, timestamp and body, by the
// secret; a request signed with Sign (by one or two secrets) verifies
// with each secret, and the same signature never verifies another body.
func FuzzVerifySignature(f *testing.F) {
	// The Standard Webhooks specification's example request.
	const specID, specTS, specSig, specBody = "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
		"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", `{"test": 2432232314}`
	if err := Verify(fuzzSecret, specID, specTS, specSig, []byte(specBody), time.Time{}, 0); err != nil {
		f.Fatalf("the specification's example does not verify: %v", err)
	}
	f.Add(fuzzSecret, specID, specTS, specSig, []byte(specBody))
	body := []byte(`{"id":"evt_01J9Z3","seq":7,"category":"work","type":"failed","data":{"notes":"sync timed out"}}`)
	ts := time.Unix(1764410000, 0)
	sig, err := Sign([]string{fuzzSecret, fuzzOldSecret}, "evt_01J9Z3", ts, body)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(fuzzOldSecret, "evt_01J9Z3", "1764410000", sig, body)
	f.Add(fuzzSecret, "evt_01J9Z3", "+1764410000", sig+" v2,abc v1,", body)
	f.Add("whsec_", "", "-1", "", []byte{})
	f.Add("not base64!", "id.with.dots", "9223372036854775807", "v1,,,", []byte("\x00\xff"))

	oldKey, err := ParseSecret(fuzzOldSecret)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, secret, id, tsHeader, sigHeader string, body []byte) {
		key, secretErr := ParseSecret(secret)
		now := time.Unix(1764410000, 0)

		// Any header strings: no panic, and success only for the
		// signature of this very request.
		err := Verify(secret, id, tsHeader, sigHeader, body, now, 0)
		if err == nil {
			sec, perr := strconv.ParseInt(tsHeader, 10, 64)
			if secretErr != nil || perr != nil {
				t.Fatalf("verified with secret %q (%v), timestamp %q (%v)", secret, secretErr, tsHeader, perr)
			}
			if want := expectedSignature(key, id, sec, body); !slices.Contains(strings.Fields(sigHeader), want) {
				t.Fatalf("verified header %q, which lacks %q", sigHeader, want)
			}
		}
		if secretErr != nil {
			key, secret = oldKey, fuzzOldSecret
		}

		// A signed request verifies, with each of the rotated secrets.
		sec, perr := strconv.ParseInt(tsHeader, 10, 64)
		if perr != nil {
			sec = int64(len(tsHeader)) * 1e8
		}
		at := time.Unix(sec, 0)
		signed, err := Sign([]string{secret, fuzzSecret}, id, at, body)
		if err != nil {
			t.Fatal(err)
		}
		if want := expectedSignature(key, id, sec, body); !strings.HasPrefix(signed, want+" ") {
			t.Fatalf("Sign = %q, want %q first", signed, want)
		}
		tsText := strconv.FormatInt(sec, 10)
		for _, s := range []string{secret, fuzzSecret} {
			if err := Verify(s, id, tsText, signed, body, at, 5*time.Minute); err != nil {
				t.Fatalf("a signed request does not verify: %v", err)
			}
			// Other signatures beside it do not matter.
			if err := Verify(s, id, tsText, sigHeader+" "+signed, body, at, 0); err != nil {
				t.Fatalf("a signed request with %q before its signature does not verify: %v", sigHeader, err)
			}
		}
		// Nor does a changed body, or a stale timestamp.
		for _, other := range [][]byte{append(body[:len(body):len(body)], ' '), body[:len(body)/2], []byte(id)} {
			if string(other) == string(body) {
				continue
			}
			if Verify(secret, id, tsText, signed, other, at, 0) == nil {
				t.Fatalf("signature of %q verifies body %q", body, other)
			}
		}
		if sec > math.MinInt32 && sec < math.MaxInt32 {
			if Verify(secret, id, tsText, signed, body, at.Add(6*time.Minute), 5*time.Minute) == nil {
				t.Fatal("a timestamp six minutes old verifies with a tolerance of five")
			}
		}
	})
}
