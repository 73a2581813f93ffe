package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/heraldhq/herald"
)

// docURL is the base URL the document is compiled under; its schemas'
// "#/components/..." references resolve against it.
const docURL = "https://herald.dev/openapi.json"

// openAPI is the parts of the document the tests read.
type openAPI struct {
	Security   []map[string][]string           `json:"security"`
	Paths      map[string]map[string]operation `json:"paths"`
	Components struct {
		Parameters map[string]parameter       `json:"parameters"`
		Responses  map[string]responseObject  `json:"responses"`
		Schemas    map[string]json.RawMessage `json:"schemas"`
	} `json:"components"`
}

type operation struct {
	Security   *[]map[string][]string    `json:"security"`
	Parameters []parameter               `json:"parameters"`
	Responses  map[string]responseObject `json:"responses"`
}

type parameter struct {
	Ref  string `json:"$ref"`
	Name string `json:"name"`
	In   string `json:"in"`
}

type responseObject struct {
	Ref     string                     `json:"$ref"`
	Content map[string]json.RawMessage `json:"content"`
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

var (
	docOnce     sync.Once
	doc         openAPI
	docCompiler *jsonschema.Compiler
	docErr      error
	schemaMu    sync.Mutex
	schemaCache = map[string]*jsonschema.Schema{}
)

// loadDoc parses the embedded document once for all tests.
func loadDoc(t *testing.T) *openAPI {
	t.Helper()
	docOnce.Do(func() {
		if docErr = json.Unmarshal(openAPIDocument, &doc); docErr != nil {
			return
		}
		var raw any
		raw, docErr = jsonschema.UnmarshalJSON(bytes.NewReader(openAPIDocument))
		if docErr != nil {
			return
		}
		docCompiler = jsonschema.NewCompiler()
		docCompiler.DefaultDraft(jsonschema.Draft2020) // OpenAPI 3.1's schemas are JSON Schema 2020-12
		docCompiler.AssertFormat()
		docErr = docCompiler.AddResource(docURL, raw)
	})
	if docErr != nil {
		t.Fatalf("openapi.json: %v", docErr)
	}
	return &doc
}

// schemaAt compiles the schema at a JSON Pointer of the document.
func schemaAt(t *testing.T, pointer string) *jsonschema.Schema {
	t.Helper()
	loadDoc(t)
	schemaMu.Lock()
	defer schemaMu.Unlock()
	if s, ok := schemaCache[pointer]; ok {
		return s
	}
	s, err := docCompiler.Compile(docURL + "#" + pointer)
	if err != nil {
		t.Fatalf("compile schema %s: %v", pointer, err)
	}
	schemaCache[pointer] = s
	return s
}

func escapeToken(s string) string { return escapePointer(s) }

// paramOf resolves a parameter reference.
func (d *openAPI) paramOf(p parameter) parameter {
	if name, ok := strings.CutPrefix(p.Ref, "#/components/parameters/"); ok {
		return d.Components.Parameters[name]
	}
	return p
}

// documentedResponse finds the documented answer of an operation for a
// status, and the pointer to it within the document.
func (d *openAPI) documentedResponse(path, method string, status int) (responseObject, string, bool) {
	op, ok := d.Paths[path][strings.ToLower(method)]
	if !ok {
		return responseObject{}, "", false
	}
	code := strconv.Itoa(status)
	res, ok := op.Responses[code]
	if !ok {
		return responseObject{}, "", false
	}
	pointer := "/paths/" + escapeToken(path) + "/" + strings.ToLower(method) + "/responses/" + code
	if name, ok := strings.CutPrefix(res.Ref, "#/components/responses/"); ok {
		res, pointer = d.Components.Responses[name], "/components/responses/"+name
	}
	return res, pointer, true
}

// routeOf returns the route pattern that serves a request ("" if none).
func routeOf(s *Server, req *http.Request) (method, path string) {
	_, pattern := s.mux.Handler(req)
	method, path, _ = strings.Cut(pattern, " ")
	if method == "HEAD" {
		method = "GET"
	}
	return method, path
}

// checkDocumented fails the test unless the answer is documented for its
// route and status, and its body matches the documented schema. It returns
// the "METHOD path status" it checked, or "" for a request no route serves.
func checkDocumented(t *testing.T, s *Server, r *response) string {
	t.Helper()
	d := loadDoc(t)
	method, path := routeOf(s, r.req)
	if path == "" {
		return ""
	}
	key := fmt.Sprintf("%s %s %d", method, path, r.status)
	res, pointer, ok := d.documentedResponse(path, method, r.status)
	if !ok {
		t.Errorf("%s: answered but not documented; body %s", key, r.body)
		return key
	}
	if len(res.Content) == 0 {
		if len(r.body) != 0 {
			t.Errorf("%s: documented without a body, answered %q", key, r.body)
		}
		return key
	}
	mt := r.mediaType()
	if _, ok := res.Content[mt]; !ok {
		t.Errorf("%s: answered %s, documented %v", key, mt, slices.Sorted(maps.Keys(res.Content)))
		return key
	}
	if mt != "application/json" && mt != "application/problem+json" {
		return key // text: nothing to check against a schema
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(r.body))
	if err != nil {
		t.Errorf("%s: body is not JSON: %v: %s", key, err, r.body)
		return key
	}
	sch := schemaAt(t, pointer+"/content/"+escapeToken(mt)+"/schema")
	if err := sch.Validate(v); err != nil {
		t.Errorf("%s: body does not match the documented schema:\n%s\nbody: %s", key, err, r.body)
	}
	return key
}

func minimalServer() *Server {
	m := newMemStore()
	return NewServer(m.config())
}

var wildcard = regexp.MustCompile(`\{([^}]+)\}`)

// TestOpenAPIRoutes checks the route table against the document, both ways:
// a route served but not documented fails, and so does one documented but
// not served. It also checks each route's parameters and security.
func TestOpenAPIRoutes(t *testing.T) {
	t.Parallel()
	d := loadDoc(t)
	s := minimalServer()

	served := map[string]route{}
	for _, rt := range s.routes {
		served[rt.method+" "+rt.path] = rt
	}
	documented := map[string]operation{}
	for path, item := range d.Paths {
		for method, op := range item {
			if slices.Contains(httpMethods, method) {
				documented[strings.ToUpper(method)+" "+path] = op
			}
		}
	}
	for k := range served {
		if _, ok := documented[k]; !ok {
			t.Errorf("%s is served but not documented in openapi.json", k)
		}
	}
	for k := range documented {
		if _, ok := served[k]; !ok {
			t.Errorf("%s is documented in openapi.json but not served", k)
		}
	}

	for k, rt := range served {
		op, ok := documented[k]
		if !ok {
			continue
		}
		var query, pathParams []string
		for _, p := range op.Parameters {
			p = d.paramOf(p)
			switch p.In {
			case "query":
				query = append(query, p.Name)
			case "path":
				pathParams = append(pathParams, p.Name)
			case "header":
				// Read by the handler itself (Last-Event-ID): nothing
				// in the route table to compare with.
			default:
				t.Errorf("%s: parameter %q in %q", k, p.Name, p.In)
			}
		}
		if got, want := sorted(query), sorted(rt.params); !slices.Equal(got, want) {
			t.Errorf("%s: documented query parameters %v, the route accepts %v", k, got, want)
		}
		var wantPath []string
		for _, m := range wildcard.FindAllStringSubmatch(rt.path, -1) {
			wantPath = append(wantPath, m[1])
		}
		if got := sorted(pathParams); !slices.Equal(got, sorted(wantPath)) {
			t.Errorf("%s: documented path parameters %v, the pattern has %v", k, got, wantPath)
		}

		public := op.Security != nil && len(*op.Security) == 0
		if public != (rt.scope == "") {
			t.Errorf("%s: documented as public=%v, served with scope %q", k, public, rt.scope)
		}
		if rt.scope != "" {
			for _, code := range []string{"401", "403", "500"} {
				if _, ok := op.Responses[code]; !ok {
					t.Errorf("%s needs a key but does not document %s", k, code)
				}
			}
		}
		if !rt.anyParams {
			if _, ok := op.Responses["400"]; !ok {
				t.Errorf("%s refuses unknown query parameters but does not document 400", k)
			}
		}
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	if s == nil {
		s = []string{}
	}
	return s
}

// TestOpenAPISchemasCompile compiles every component schema, so that a
// broken reference fails here rather than in some response check.
func TestOpenAPISchemasCompile(t *testing.T) {
	t.Parallel()
	d := loadDoc(t)
	for name := range d.Components.Schemas {
		schemaAt(t, "/components/schemas/"+name)
	}
}

// TestOpenAPIResponses drives every route to every status its document
// lists, and checks each real answer against the documented schema. A
// documented status that no case reaches fails the test: either a case is
// missing or the document promises an answer the server never gives.
func TestOpenAPIResponses(t *testing.T) {
	t.Parallel()
	storeDown := errors.New("SQLITE_IOERR: disk I/O error in table events")
	stored := event(map[string]any{"id": "evt-stored"})
	sendStored := func(e *env) { e.do("POST", "/v1/events", e.ingest, stored).wantStatus(t, 201) }
	tooMany := `{"events":[` + strings.Repeat(event(nil)+",", herald.MaxBatchEvents) + event(nil) + `]}`
	cardType := `{"category":"payments","type":"cardCharged","statuses":[{"name":"ok","description":"Charged."}]}`
	defineCard := func(e *env) { e.do("POST", "/v1/event-types", e.admin, cardType).wantStatus(t, 201) }
	login := func(e *env) { sendLogin(t, e, "L-1", "cust-1", "attempted", "succeeded") }
	// journey starts session S-1 of cust-1, and a visit of cust-1.
	journey := func(e *env) {
		e.do("POST", "/v1/events", e.ingest, event(map[string]any{"sessionId": "S-1", "coreCustomerId": "cust-1"})).wantStatus(t, 201)
	}
	changeSettings := func(e *env) {
		e.do("PUT", "/v1/settings", e.admin, `{"unknownTypes":"reject"}`).wantStatus(t, 200)
	}
	sources := url.QueryEscape(`{"settings":[]}`)
	subBody := `{"url":"https://example.com/hook","filter":{"categories":["authentication"]}}`
	bigSub := `{"name":"` + strings.Repeat("x", maxAdminBodyBytes) + `"}`
	subscribed := func(e *env) { subscribe(t, e) }
	paused := func(e *env) {
		subscribe(t, e)
		e.do("POST", "/v1/subscriptions/"+e.firstSubscription("acme")+"/pause", e.admin, "").wantStatus(t, 200)
	}
	then := func(steps ...func(*env)) func(*env) {
		return func(e *env) {
			for _, step := range steps {
				step(e)
			}
		}
	}
	huge := strings.Repeat("x", maxEventTypeBytes)
	flowBody := `{"name":"w1","steps":[{"kind":"webhook","url":"https://example.com/hook","headers":{"X-Key":"k"}}]}`
	bigDef := `{"description":"` + strings.Repeat("x", maxAdminBodyBytes) + `"}`
	flowMade := func(e *env) { e.do("POST", "/v1/workflows", e.admin, flowBody).wantStatus(t, 201) }
	flowPaused := then(flowMade, func(e *env) { e.do("POST", "/v1/workflows/w1/pause", e.admin, "").wantStatus(t, 200) })
	runMade := then(flowMade, func(e *env) {
		e.store.addRun("acme", herald.WorkflowRun{ID: "run-1", Workflow: "w1", EventID: "evt-1", Seq: 1, Trigger: herald.TriggerFilter,
			Depth: 1, State: herald.RunCompleted, CreatedAt: testNow, UpdatedAt: testNow, FinishedAt: &testNow,
			Steps: []*herald.StepRun{{Name: "1-webhook", Kind: "webhook", State: herald.StepSucceeded, Attempts: 0,
				Output: json.RawMessage(`{"status":200}`), StartedAt: &testNow, FinishedAt: &testNow}}})
	})
	exportBody := `{"name":"hourly","export":{"mode":"batch","every":"1h","destination":{"type":"postgres","dsn":"postgres://u:pw@db.example.com/w","table":"events"}}}`
	lyticsAlert := `{"config":{"webhook_url":"https://hooks.slack.com/services/T/B/X","system_event_type":"failed"},"workflow":"webhook_system_events"}`
	exportMade := func(e *env) { e.do("POST", "/v1/exports", e.admin, exportBody).wantStatus(t, 201) }
	alertMade := func(e *env) { e.do("POST", "/v1/alerts", e.admin, lyticsAlert).wantStatus(t, 201) }
	exportPaused := then(exportMade, func(e *env) { e.do("POST", "/v1/work/"+e.firstWork("acme")+"/pause", e.admin, "").wantStatus(t, 200) })
	exportCompleted := then(exportMade, func(e *env) {
		e.store.setWork("acme", e.firstWork("acme"), func(w *herald.Work) { w.State = herald.WorkCompleted })
	})
	recordMade := then(exportMade, func(e *env) {
		e.store.addRecord("acme", herald.WorkRecord{WorkID: e.firstWork("acme"), Kind: herald.RecordCycle, Number: 1, State: herald.RecordSucceeded,
			StartedAt: testNow, FinishedAt: testNow, Events: 3, Units: 1, UpTo: 3, Detail: json.RawMessage(`{"table":"events","rows":3}`)})
	})

	cases := []struct {
		name   string
		setup  func(e *env)
		method string
		path   string
		key    func(e *env) string
		body   string
		want   int
	}{
		{"account created", nil, "POST", "/v1/accounts", bootKey, `{"id":"globex","name":"Globex"}`, 201},
		{"account invalid", nil, "POST", "/v1/accounts", bootKey, `{"id":"Globex!","name":""}`, 400},
		{"account no key", nil, "POST", "/v1/accounts", noKey, `{"name":"Globex"}`, 401},
		{"account not bootstrap", nil, "POST", "/v1/accounts", adminKey, `{"name":"Globex"}`, 403},
		{"account taken", nil, "POST", "/v1/accounts", bootKey, `{"id":"default","name":"Again"}`, 409},
		{"account too large", nil, "POST", "/v1/accounts", bootKey, `{"name":"` + strings.Repeat("x", maxAdminBodyBytes) + `"}`, 413},
		{"account store down", failing("CreateAccount", storeDown), "POST", "/v1/accounts", bootKey, `{"name":"Globex"}`, 500},

		{"key created", nil, "POST", "/v1/keys", adminKey, `{"name":"ci","scopes":["ingest","read"]}`, 201},
		{"key invalid", nil, "POST", "/v1/keys", adminKey, `{"scopes":["write"]}`, 400},
		{"key no key", nil, "POST", "/v1/keys", noKey, `{"scopes":["read"]}`, 401},
		{"key not admin", nil, "POST", "/v1/keys", ingestKey, `{"scopes":["read"]}`, 403},
		{"key too large", nil, "POST", "/v1/keys", adminKey, `{"name":"` + strings.Repeat("x", maxAdminBodyBytes) + `"}`, 413},
		{"key store down", failing("CreateKey", storeDown), "POST", "/v1/keys", adminKey, `{"scopes":["read"]}`, 500},

		{"keys listed", nil, "GET", "/v1/keys", adminKey, "", 200},
		{"keys bad parameter", nil, "GET", "/v1/keys?all=1", adminKey, "", 400},
		{"keys no key", nil, "GET", "/v1/keys", noKey, "", 401},
		{"keys not admin", nil, "GET", "/v1/keys", readKey, "", 403},
		{"keys store down", failing("FindKeys", storeDown), "GET", "/v1/keys", adminKey, "", 500},

		{"key deleted", nil, "DELETE", "/v1/keys/key_read", adminKey, "", 204},
		{"key delete bad parameter", nil, "DELETE", "/v1/keys/key_read?force=true", adminKey, "", 400},
		{"key delete no key", nil, "DELETE", "/v1/keys/key_read", noKey, "", 401},
		{"key delete not admin", nil, "DELETE", "/v1/keys/key_read", readKey, "", 403},
		{"key delete unknown", nil, "DELETE", "/v1/keys/key_nope", adminKey, "", 404},
		{"key delete itself", nil, "DELETE", "/v1/keys/key_admin", adminKey, "", 409},
		{"key delete store down", failing("DeleteKey", storeDown), "DELETE", "/v1/keys/key_read", adminKey, "", 500},

		{"event created", nil, "POST", "/v1/events", ingestKey, event(nil), 201},
		{"event duplicate", sendStored, "POST", "/v1/events", ingestKey, stored, 200},
		{"event invalid", nil, "POST", "/v1/events", ingestKey, event(map[string]any{"category": nil}), 400},
		{"event no key", nil, "POST", "/v1/events", noKey, event(nil), 401},
		{"event read key", nil, "POST", "/v1/events", readKey, event(nil), 403},
		{"event conflict", sendStored, "POST", "/v1/events", ingestKey, event(map[string]any{"id": "evt-stored", "type": "userLoggedOut"}), 409},
		{"event too large", nil, "POST", "/v1/events", ingestKey, event(map[string]any{"data": map[string]any{"x": strings.Repeat("x", herald.MaxEventBytes)}}), 413},
		{"event store down", failing("AppendEvents", storeDown), "POST", "/v1/events", ingestKey, event(nil), 500},

		{"events found", sendStored, "GET", "/v1/events?category=authentication&limit=10", readKey, "", 200},
		{"events bad filter", nil, "GET", "/v1/events?limit=0", readKey, "", 400},
		{"events no key", nil, "GET", "/v1/events", noKey, "", 401},
		{"events ingest key", nil, "GET", "/v1/events", ingestKey, "", 403},
		{"events store down", failing("FindEvents", storeDown), "GET", "/v1/events", readKey, "", 500},

		{"batch mixed", sendStored, "POST", "/v1/events/batch", ingestKey, `{"events":[` + event(nil) + `,` + stored + `,{"type":"x"}]}`, 200},
		{"batch atomic invalid", nil, "POST", "/v1/events/batch?atomic=true", ingestKey, `{"events":[` + event(nil) + `,{"type":"x"}]}`, 400},
		{"batch not a batch", nil, "POST", "/v1/events/batch", ingestKey, `[]`, 400},
		{"batch no key", nil, "POST", "/v1/events/batch", noKey, `{"events":[]}`, 401},
		{"batch read key", nil, "POST", "/v1/events/batch", readKey, `{"events":[]}`, 403},
		{"batch atomic conflict", sendStored, "POST", "/v1/events/batch?atomic=true", ingestKey, `{"events":[` + event(nil) + `,` + event(map[string]any{"id": "evt-stored", "type": "userLoggedOut"}) + `]}`, 409},
		{"batch too many", nil, "POST", "/v1/events/batch", ingestKey, tooMany, 413},
		{"batch store down", failing("AppendEvents", storeDown), "POST", "/v1/events/batch", ingestKey, `{"events":[` + event(nil) + `]}`, 500},

		// A closed hub (a server shutting down) ends a stream once it has
		// sent what is stored, so that the answer can be read whole.
		{"stream", then(sendStored, endStreams), "GET", "/v1/events/stream?afterSeq=0&types=user*", readKey, "", 200},
		{"stream bad filter", nil, "GET", "/v1/events/stream?limit=10", readKey, "", 400},
		{"stream no key", nil, "GET", "/v1/events/stream", noKey, "", 401},
		{"stream ingest key", nil, "GET", "/v1/events/stream", ingestKey, "", 403},
		{"stream store down", failing("FindEvents", storeDown), "GET", "/v1/events/stream", readKey, "", 500},

		{"event found", sendStored, "GET", "/v1/events/evt-stored", readKey, "", 200},
		{"event bad parameter", nil, "GET", "/v1/events/evt-stored?pretty=1", readKey, "", 400},
		{"event get no key", nil, "GET", "/v1/events/evt-stored", noKey, "", 401},
		{"event get ingest key", nil, "GET", "/v1/events/evt-stored", ingestKey, "", 403},
		{"event not found", nil, "GET", "/v1/events/evt-nope", readKey, "", 404},
		{"event get store down", failing("FindEventByID", storeDown), "GET", "/v1/events/evt-stored", readKey, "", 500},

		{"type created", nil, "POST", "/v1/event-types", adminKey, cardType, 201},
		{"type invalid", nil, "POST", "/v1/event-types", adminKey, `{"category":"payments","type":"cardCharged","terminalStatuses":["done"]}`, 400},
		{"type no key", nil, "POST", "/v1/event-types", noKey, cardType, 401},
		{"type read key", nil, "POST", "/v1/event-types", readKey, cardType, 403},
		{"type exists", nil, "POST", "/v1/event-types", adminKey, `{"category":"authentication","type":"login"}`, 409},
		{"type too large", nil, "POST", "/v1/event-types", adminKey, `{"description":"` + huge + `"}`, 413},
		{"type store down", failing("FindEventTypes", storeDown), "POST", "/v1/event-types", adminKey, cardType, 500},

		{"types listed", nil, "GET", "/v1/event-types", readKey, "", 200},
		{"types bad parameter", nil, "GET", "/v1/event-types?category=x", readKey, "", 400},
		{"types no key", nil, "GET", "/v1/event-types", noKey, "", 401},
		{"types ingest key", nil, "GET", "/v1/event-types", ingestKey, "", 403},
		{"types store down", failing("FindEventTypes", storeDown), "GET", "/v1/event-types", readKey, "", 500},

		{"type found", nil, "GET", "/v1/event-types/authentication/login", readKey, "", 200},
		{"type bad parameter", nil, "GET", "/v1/event-types/authentication/login?v=1", readKey, "", 400},
		{"type get no key", nil, "GET", "/v1/event-types/authentication/login", noKey, "", 401},
		{"type get ingest key", nil, "GET", "/v1/event-types/authentication/login", ingestKey, "", 403},
		{"type not found", nil, "GET", "/v1/event-types/payments/nope", readKey, "", 404},
		{"type get store down", failing("FindEventTypes", storeDown), "GET", "/v1/event-types/authentication/login", readKey, "", 500},

		{"type put created", nil, "PUT", "/v1/event-types/payments/cardCharged", adminKey, cardType, 201},
		{"type put extends built-in", nil, "PUT", "/v1/event-types/authentication/login", adminKey, `{"statuses":[{"name":"attempted"},{"name":"succeeded","persist":true},{"name":"failed"},{"name":"challenged","description":"A second factor was asked for."}]}`, 200},
		{"type put path mismatch", nil, "PUT", "/v1/event-types/payments/cardCharged", adminKey, `{"category":"cards"}`, 400},
		{"type put no key", nil, "PUT", "/v1/event-types/payments/cardCharged", noKey, cardType, 401},
		{"type put read key", nil, "PUT", "/v1/event-types/payments/cardCharged", readKey, cardType, 403},
		{"type put name taken", nil, "PUT", "/v1/event-types/payments/login", adminKey, `{}`, 409},
		{"type put too large", nil, "PUT", "/v1/event-types/payments/cardCharged", adminKey, `{"description":"` + huge + `"}`, 413},
		{"type put store down", failing("PutEventType", storeDown), "PUT", "/v1/event-types/payments/cardCharged", adminKey, cardType, 500},

		{"type deleted", defineCard, "DELETE", "/v1/event-types/payments/cardCharged", adminKey, "", 204},
		{"type delete bad parameter", defineCard, "DELETE", "/v1/event-types/payments/cardCharged?force=true", adminKey, "", 400},
		{"type delete no key", nil, "DELETE", "/v1/event-types/payments/cardCharged", noKey, "", 401},
		{"type delete read key", nil, "DELETE", "/v1/event-types/payments/cardCharged", readKey, "", 403},
		{"type delete unknown", nil, "DELETE", "/v1/event-types/payments/nope", adminKey, "", 404},
		{"type delete built-in", nil, "DELETE", "/v1/event-types/authentication/login", adminKey, "", 409},
		{"type delete store down", failing("DeleteEventType", storeDown), "DELETE", "/v1/event-types/payments/cardCharged", adminKey, "", 500},

		{"schema found", nil, "GET", "/v1/schemas/loginEventSchema", readKey, "", 200},
		{"schema bad parameter", nil, "GET", "/v1/schemas/loginEventSchema?v=1", readKey, "", 400},
		{"schema no key", nil, "GET", "/v1/schemas/loginEventSchema", noKey, "", 401},
		{"schema ingest key", nil, "GET", "/v1/schemas/loginEventSchema", ingestKey, "", 403},
		{"schema not found", nil, "GET", "/v1/schemas/nopeEventSchema", readKey, "", 404},
		{"schema store down", failing("FindEventTypes", storeDown), "GET", "/v1/schemas/loginEventSchema", readKey, "", 500},

		{"settings found", nil, "GET", "/v1/settings", readKey, "", 200},
		{"settings bad parameter", nil, "GET", "/v1/settings?v=1", readKey, "", 400},
		{"settings no key", nil, "GET", "/v1/settings", noKey, "", 401},
		{"settings ingest key", nil, "GET", "/v1/settings", ingestKey, "", 403},
		{"settings store down", failing("FindSettings", storeDown), "GET", "/v1/settings", readKey, "", 500},

		{"settings put", nil, "PUT", "/v1/settings", adminKey, `{"unknownTypes":"reject"}`, 200},
		{"settings put invalid", nil, "PUT", "/v1/settings", adminKey, `{"unknownTypes":"maybe"}`, 400},
		{"settings put no key", nil, "PUT", "/v1/settings", noKey, `{"unknownTypes":"reject"}`, 401},
		{"settings put read key", nil, "PUT", "/v1/settings", readKey, `{"unknownTypes":"reject"}`, 403},
		{"settings put too large", nil, "PUT", "/v1/settings", adminKey, `{"unknownTypes":"` + huge + `"}`, 413},
		{"settings put store down", failing("PutSettings", storeDown), "PUT", "/v1/settings", adminKey, `{"unknownTypes":"reject"}`, 500},

		{"lifecycles found", login, "GET", "/v1/lifecycles?type=login&terminal=true", readKey, "", 200},
		{"lifecycles bad filter", nil, "GET", "/v1/lifecycles?terminal=yes", readKey, "", 400},
		{"lifecycles no key", nil, "GET", "/v1/lifecycles", noKey, "", 401},
		{"lifecycles ingest key", nil, "GET", "/v1/lifecycles", ingestKey, "", 403},
		{"lifecycles store down", failing("FindLifecycles", storeDown), "GET", "/v1/lifecycles", readKey, "", 500},

		{"lifecycle found", login, "GET", "/v1/lifecycles/L-1", readKey, "", 200},
		{"lifecycle bad parameter", login, "GET", "/v1/lifecycles/L-1?events=false", readKey, "", 400},
		{"lifecycle no key", nil, "GET", "/v1/lifecycles/L-1", noKey, "", 401},
		{"lifecycle ingest key", nil, "GET", "/v1/lifecycles/L-1", ingestKey, "", 403},
		{"lifecycle not found", nil, "GET", "/v1/lifecycles/L-nope", readKey, "", 404},
		{"lifecycle store down", failing("FindLifecycle", storeDown), "GET", "/v1/lifecycles/L-1", readKey, "", 500},

		{"profiles found", login, "GET", "/v1/profiles?attribute=login_method&value=otp", readKey, "", 200},
		{"profiles bad filter", nil, "GET", "/v1/profiles?value=otp", readKey, "", 400},
		{"profiles no key", nil, "GET", "/v1/profiles", noKey, "", 401},
		{"profiles ingest key", nil, "GET", "/v1/profiles", ingestKey, "", 403},
		{"profiles store down", failing("FindProfiles", storeDown), "GET", "/v1/profiles", readKey, "", 500},

		{"profile found", login, "GET", "/v1/profiles/cust-1", readKey, "", 200},
		{"profile bad parameter", login, "GET", "/v1/profiles/cust-1?v=1", readKey, "", 400},
		{"profile no key", nil, "GET", "/v1/profiles/cust-1", noKey, "", 401},
		{"profile ingest key", nil, "GET", "/v1/profiles/cust-1", ingestKey, "", 403},
		{"profile not found", nil, "GET", "/v1/profiles/cust-nope", readKey, "", 404},
		{"profile store down", failing("FindProfile", storeDown), "GET", "/v1/profiles/cust-1", readKey, "", 500},

		{"profile erased", login, "DELETE", "/v1/profiles/cust-1", adminKey, "", 200},
		{"profile erase bad parameter", login, "DELETE", "/v1/profiles/cust-1?v=1", adminKey, "", 400},
		{"profile erase no key", nil, "DELETE", "/v1/profiles/cust-1", noKey, "", 401},
		{"profile erase read key", nil, "DELETE", "/v1/profiles/cust-1", readKey, "", 403},
		{"profile erase unknown", nil, "DELETE", "/v1/profiles/cust-nope", adminKey, "", 404},
		{"profile erase store down", failing("EraseProfile", storeDown), "DELETE", "/v1/profiles/cust-1", adminKey, "", 500},

		{"sessions found", journey, "GET", "/v1/sessions?entity=cust-1&state=open", readKey, "", 200},
		{"sessions bad filter", nil, "GET", "/v1/sessions?state=maybe", readKey, "", 400},
		{"sessions no key", nil, "GET", "/v1/sessions", noKey, "", 401},
		{"sessions ingest key", nil, "GET", "/v1/sessions", ingestKey, "", 403},
		{"sessions store down", failing("FindSessions", storeDown), "GET", "/v1/sessions", readKey, "", 500},

		{"session found", journey, "GET", "/v1/sessions/S-1", readKey, "", 200},
		{"session bad parameter", journey, "GET", "/v1/sessions/S-1?events=true", readKey, "", 400},
		{"session no key", nil, "GET", "/v1/sessions/S-1", noKey, "", 401},
		{"session ingest key", nil, "GET", "/v1/sessions/S-1", ingestKey, "", 403},
		{"session not found", nil, "GET", "/v1/sessions/S-nope", readKey, "", 404},
		{"session store down", failing("FindSessionByID", storeDown), "GET", "/v1/sessions/S-1", readKey, "", 500},

		{"visits found", journey, "GET", "/v1/visits?entity=cust-1", readKey, "", 200},
		{"visits bad filter", nil, "GET", "/v1/visits?startedAfter=today", readKey, "", 400},
		{"visits no key", nil, "GET", "/v1/visits", noKey, "", 401},
		{"visits ingest key", nil, "GET", "/v1/visits", ingestKey, "", 403},
		{"visits store down", failing("FindVisits", storeDown), "GET", "/v1/visits", readKey, "", 500},

		{"visit found", journey, "GET", "/v1/visits/{visit}", readKey, "", 200},
		{"visit bad parameter", journey, "GET", "/v1/visits/{visit}?v=1", readKey, "", 400},
		{"visit no key", nil, "GET", "/v1/visits/V-1", noKey, "", 401},
		{"visit ingest key", nil, "GET", "/v1/visits/V-1", ingestKey, "", 403},
		{"visit not found", nil, "GET", "/v1/visits/V-nope", readKey, "", 404},
		{"visit store down", failing("FindVisitByID", storeDown), "GET", "/v1/visits/V-1", readKey, "", 500},

		{"audit found", changeSettings, "GET", "/v1/audit?system_event_type=updated&system_event_sources=" + sources, readKey, "", 200},
		{"audit bad filter", nil, "GET", "/v1/audit?system_event_sources=work", readKey, "", 400},
		{"audit no key", nil, "GET", "/v1/audit", noKey, "", 401},
		{"audit ingest key", nil, "GET", "/v1/audit", ingestKey, "", 403},
		{"audit store down", failing("FindEvents", storeDown), "GET", "/v1/audit", readKey, "", 500},

		{"audit verified", changeSettings, "GET", "/v1/audit/verify", readKey, "", 200},
		{"audit verify bad parameter", nil, "GET", "/v1/audit/verify?full=1", readKey, "", 400},
		{"audit verify no key", nil, "GET", "/v1/audit/verify", noKey, "", 401},
		{"audit verify ingest key", nil, "GET", "/v1/audit/verify", ingestKey, "", 403},
		{"audit verify store down", failing("VerifyAudit", storeDown), "GET", "/v1/audit/verify", readKey, "", 500},

		{"subscription created", nil, "POST", "/v1/subscriptions?from=1", adminKey, subBody, 201},
		{"subscription invalid", nil, "POST", "/v1/subscriptions", adminKey, `{"url":"ftp://example.com"}`, 400},
		{"subscription no key", nil, "POST", "/v1/subscriptions", noKey, subBody, 401},
		{"subscription read key", nil, "POST", "/v1/subscriptions", readKey, subBody, 403},
		{"subscription too large", nil, "POST", "/v1/subscriptions", adminKey, bigSub, 413},
		{"subscription store down", failing("CreateSubscription", storeDown), "POST", "/v1/subscriptions", adminKey, subBody, 500},

		{"subscriptions listed", subscribed, "GET", "/v1/subscriptions", adminKey, "", 200},
		{"subscriptions bad parameter", nil, "GET", "/v1/subscriptions?state=active", adminKey, "", 400},
		{"subscriptions no key", nil, "GET", "/v1/subscriptions", noKey, "", 401},
		{"subscriptions read key", nil, "GET", "/v1/subscriptions", readKey, "", 403},
		{"subscriptions store down", failing("FindSubscriptions", storeDown), "GET", "/v1/subscriptions", adminKey, "", 500},

		{"subscription found", subscribed, "GET", "/v1/subscriptions/{sub}", adminKey, "", 200},
		{"subscription bad parameter", subscribed, "GET", "/v1/subscriptions/{sub}?secret=true", adminKey, "", 400},
		{"subscription get no key", subscribed, "GET", "/v1/subscriptions/{sub}", noKey, "", 401},
		{"subscription get read key", subscribed, "GET", "/v1/subscriptions/{sub}", readKey, "", 403},
		{"subscription not found", nil, "GET", "/v1/subscriptions/sub_nope", adminKey, "", 404},
		{"subscription get store down", then(subscribed, failing("FindSubscriptionByID", storeDown)), "GET", "/v1/subscriptions/{sub}", adminKey, "", 500},

		{"subscription replaced", subscribed, "PUT", "/v1/subscriptions/{sub}", adminKey, subBody, 200},
		{"subscription replace invalid", subscribed, "PUT", "/v1/subscriptions/{sub}", adminKey, `{"url":"https://example.com","maxInFlight":0.5}`, 400},
		{"subscription replace no key", subscribed, "PUT", "/v1/subscriptions/{sub}", noKey, subBody, 401},
		{"subscription replace read key", subscribed, "PUT", "/v1/subscriptions/{sub}", readKey, subBody, 403},
		{"subscription replace unknown", nil, "PUT", "/v1/subscriptions/sub_nope", adminKey, subBody, 404},
		{"subscription replace too large", subscribed, "PUT", "/v1/subscriptions/{sub}", adminKey, bigSub, 413},
		{"subscription replace store down", then(subscribed, failing("UpdateSubscription", storeDown)), "PUT", "/v1/subscriptions/{sub}", adminKey, subBody, 500},

		{"subscription deleted", subscribed, "DELETE", "/v1/subscriptions/{sub}", adminKey, "", 204},
		{"subscription delete bad parameter", subscribed, "DELETE", "/v1/subscriptions/{sub}?force=1", adminKey, "", 400},
		{"subscription delete no key", subscribed, "DELETE", "/v1/subscriptions/{sub}", noKey, "", 401},
		{"subscription delete read key", subscribed, "DELETE", "/v1/subscriptions/{sub}", readKey, "", 403},
		{"subscription delete unknown", nil, "DELETE", "/v1/subscriptions/sub_nope", adminKey, "", 404},
		{"subscription delete store down", then(subscribed, failing("DeleteSubscription", storeDown)), "DELETE", "/v1/subscriptions/{sub}", adminKey, "", 500},

		{"subscription paused", subscribed, "POST", "/v1/subscriptions/{sub}/pause", adminKey, `{"reason":"maintenance"}`, 200},
		{"subscription pause invalid", subscribed, "POST", "/v1/subscriptions/{sub}/pause", adminKey, `{"reason":5}`, 400},
		{"subscription pause no key", subscribed, "POST", "/v1/subscriptions/{sub}/pause", noKey, "", 401},
		{"subscription pause read key", subscribed, "POST", "/v1/subscriptions/{sub}/pause", readKey, "", 403},
		{"subscription pause unknown", nil, "POST", "/v1/subscriptions/sub_nope/pause", adminKey, "", 404},
		{"subscription pause too large", subscribed, "POST", "/v1/subscriptions/{sub}/pause", adminKey, bigSub, 413},
		{"subscription pause store down", then(subscribed, failing("SetSubscriptionState", storeDown)), "POST", "/v1/subscriptions/{sub}/pause", adminKey, "", 500},

		{"subscription resumed", paused, "POST", "/v1/subscriptions/{sub}/resume", adminKey, "", 200},
		{"subscription resume invalid", paused, "POST", "/v1/subscriptions/{sub}/resume", adminKey, `{"why":"x"}`, 400},
		{"subscription resume no key", paused, "POST", "/v1/subscriptions/{sub}/resume", noKey, "", 401},
		{"subscription resume read key", paused, "POST", "/v1/subscriptions/{sub}/resume", readKey, "", 403},
		{"subscription resume unknown", nil, "POST", "/v1/subscriptions/sub_nope/resume", adminKey, "", 404},
		{"subscription resume too large", paused, "POST", "/v1/subscriptions/{sub}/resume", adminKey, bigSub, 413},
		{"subscription resume store down", then(paused, failing("SetSubscriptionState", storeDown)), "POST", "/v1/subscriptions/{sub}/resume", adminKey, "", 500},

		{"secrets found", subscribed, "GET", "/v1/subscriptions/{sub}/secret", adminKey, "", 200},
		{"secrets bad parameter", subscribed, "GET", "/v1/subscriptions/{sub}/secret?all=1", adminKey, "", 400},
		{"secrets no key", subscribed, "GET", "/v1/subscriptions/{sub}/secret", noKey, "", 401},
		{"secrets read key", subscribed, "GET", "/v1/subscriptions/{sub}/secret", readKey, "", 403},
		{"secrets unknown", nil, "GET", "/v1/subscriptions/sub_nope/secret", adminKey, "", 404},
		{"secrets store down", then(subscribed, failing("FindSigningSecrets", storeDown)), "GET", "/v1/subscriptions/{sub}/secret", adminKey, "", 500},

		{"secret rotated", subscribed, "POST", "/v1/subscriptions/{sub}/secret/rotate?overlap=1h", adminKey, "", 200},
		{"secret rotate bad overlap", subscribed, "POST", "/v1/subscriptions/{sub}/secret/rotate?overlap=forever", adminKey, "", 400},
		{"secret rotate no key", subscribed, "POST", "/v1/subscriptions/{sub}/secret/rotate", noKey, "", 401},
		{"secret rotate read key", subscribed, "POST", "/v1/subscriptions/{sub}/secret/rotate", readKey, "", 403},
		{"secret rotate unknown", nil, "POST", "/v1/subscriptions/sub_nope/secret/rotate", adminKey, "", 404},
		{"secret rotate store down", then(subscribed, failing("RotateSigningSecret", storeDown)), "POST", "/v1/subscriptions/{sub}/secret/rotate", adminKey, "", 500},

		{"attempts found", subscribed, "GET", "/v1/subscriptions/{sub}/attempts?outcome=failed&limit=10", readKey, "", 200},
		{"attempts bad filter", subscribed, "GET", "/v1/subscriptions/{sub}/attempts?outcome=maybe", readKey, "", 400},
		{"attempts no key", subscribed, "GET", "/v1/subscriptions/{sub}/attempts", noKey, "", 401},
		{"attempts ingest key", subscribed, "GET", "/v1/subscriptions/{sub}/attempts", ingestKey, "", 403},
		{"attempts unknown", nil, "GET", "/v1/subscriptions/sub_nope/attempts", readKey, "", 404},
		{"attempts store down", then(subscribed, failing("FindAttempts", storeDown)), "GET", "/v1/subscriptions/{sub}/attempts", readKey, "", 500},

		{"messages found", subscribed, "GET", "/v1/subscriptions/{sub}/messages?state=dead", readKey, "", 200},
		{"messages bad filter", subscribed, "GET", "/v1/subscriptions/{sub}/messages?state=maybe", readKey, "", 400},
		{"messages no key", subscribed, "GET", "/v1/subscriptions/{sub}/messages", noKey, "", 401},
		{"messages ingest key", subscribed, "GET", "/v1/subscriptions/{sub}/messages", ingestKey, "", 403},
		{"messages unknown", nil, "GET", "/v1/subscriptions/sub_nope/messages", readKey, "", 404},
		{"messages store down", then(subscribed, failing("FindMessages", storeDown)), "GET", "/v1/subscriptions/{sub}/messages", readKey, "", 500},

		{"messages retried", subscribed, "POST", "/v1/subscriptions/{sub}/retry", adminKey, `{}`, 200},
		{"retry invalid", subscribed, "POST", "/v1/subscriptions/{sub}/retry", adminKey, `{"eventIds":[]}`, 400},
		{"retry no key", subscribed, "POST", "/v1/subscriptions/{sub}/retry", noKey, `{}`, 401},
		{"retry read key", subscribed, "POST", "/v1/subscriptions/{sub}/retry", readKey, `{}`, 403},
		{"retry unknown", nil, "POST", "/v1/subscriptions/sub_nope/retry", adminKey, `{}`, 404},
		{"retry too large", subscribed, "POST", "/v1/subscriptions/{sub}/retry", adminKey, bigSub, 413},
		{"retry store down", then(subscribed, failing("RetryMessages", storeDown)), "POST", "/v1/subscriptions/{sub}/retry", adminKey, `{}`, 500},

		{"stats", subscribed, "GET", "/v1/subscriptions/{sub}/stats?window=1h", readKey, "", 200},
		{"stats bad window", subscribed, "GET", "/v1/subscriptions/{sub}/stats?window=1s", readKey, "", 400},
		{"stats no key", subscribed, "GET", "/v1/subscriptions/{sub}/stats", noKey, "", 401},
		{"stats ingest key", subscribed, "GET", "/v1/subscriptions/{sub}/stats", ingestKey, "", 403},
		{"stats unknown", nil, "GET", "/v1/subscriptions/sub_nope/stats", readKey, "", 404},
		{"stats store down", then(subscribed, failing("FindAttempts", storeDown)), "GET", "/v1/subscriptions/{sub}/stats", readKey, "", 500},

		{"workflow created", nil, "POST", "/v1/workflows", adminKey, flowBody, 201},
		{"workflow invalid", nil, "POST", "/v1/workflows", adminKey, `{"name":"w1","steps":[]}`, 400},
		{"workflow no key", nil, "POST", "/v1/workflows", noKey, flowBody, 401},
		{"workflow read key", nil, "POST", "/v1/workflows", readKey, flowBody, 403},
		{"workflow exists", flowMade, "POST", "/v1/workflows", adminKey, flowBody, 409},
		{"workflow too large", nil, "POST", "/v1/workflows", adminKey, bigDef, 413},
		{"workflow store down", failing("CreateWorkflow", storeDown), "POST", "/v1/workflows", adminKey, flowBody, 500},

		{"workflows listed", flowMade, "GET", "/v1/workflows", readKey, "", 200},
		{"workflows bad parameter", nil, "GET", "/v1/workflows?state=active", readKey, "", 400},
		{"workflows no key", nil, "GET", "/v1/workflows", noKey, "", 401},
		{"workflows ingest key", nil, "GET", "/v1/workflows", ingestKey, "", 403},
		{"workflows store down", failing("FindWorkflows", storeDown), "GET", "/v1/workflows", readKey, "", 500},

		{"workflow found", flowMade, "GET", "/v1/workflows/w1", readKey, "", 200},
		{"workflow bad parameter", flowMade, "GET", "/v1/workflows/w1?secret=1", readKey, "", 400},
		{"workflow get no key", flowMade, "GET", "/v1/workflows/w1", noKey, "", 401},
		{"workflow get ingest key", flowMade, "GET", "/v1/workflows/w1", ingestKey, "", 403},
		{"workflow not found", nil, "GET", "/v1/workflows/nope", readKey, "", 404},
		{"workflow get store down", then(flowMade, failing("FindWorkflow", storeDown)), "GET", "/v1/workflows/w1", readKey, "", 500},

		{"workflow replaced", flowMade, "PUT", "/v1/workflows/w1", adminKey, flowBody, 200},
		{"workflow replace invalid", flowMade, "PUT", "/v1/workflows/w1", adminKey, `{"steps":5}`, 400},
		{"workflow replace no key", flowMade, "PUT", "/v1/workflows/w1", noKey, flowBody, 401},
		{"workflow replace read key", flowMade, "PUT", "/v1/workflows/w1", readKey, flowBody, 403},
		{"workflow replace unknown", nil, "PUT", "/v1/workflows/nope", adminKey, flowBody, 404},
		{"workflow replace too large", flowMade, "PUT", "/v1/workflows/w1", adminKey, bigDef, 413},
		{"workflow replace store down", then(flowMade, failing("UpdateWorkflow", storeDown)), "PUT", "/v1/workflows/w1", adminKey, flowBody, 500},

		{"workflow deleted", flowMade, "DELETE", "/v1/workflows/w1", adminKey, "", 204},
		{"workflow delete bad parameter", flowMade, "DELETE", "/v1/workflows/w1?force=1", adminKey, "", 400},
		{"workflow delete no key", flowMade, "DELETE", "/v1/workflows/w1", noKey, "", 401},
		{"workflow delete read key", flowMade, "DELETE", "/v1/workflows/w1", readKey, "", 403},
		{"workflow delete unknown", nil, "DELETE", "/v1/workflows/nope", adminKey, "", 404},
		{"workflow delete store down", then(flowMade, failing("DeleteWorkflow", storeDown)), "DELETE", "/v1/workflows/w1", adminKey, "", 500},

		{"workflow paused", flowMade, "POST", "/v1/workflows/w1/pause", adminKey, "", 200},
		{"workflow pause invalid", flowMade, "POST", "/v1/workflows/w1/pause", adminKey, `{"reason":"x"}`, 400},
		{"workflow pause no key", flowMade, "POST", "/v1/workflows/w1/pause", noKey, "", 401},
		{"workflow pause read key", flowMade, "POST", "/v1/workflows/w1/pause", readKey, "", 403},
		{"workflow pause unknown", nil, "POST", "/v1/workflows/nope/pause", adminKey, "", 404},
		{"workflow pause too large", flowMade, "POST", "/v1/workflows/w1/pause", adminKey, bigDef, 413},
		{"workflow pause store down", then(flowMade, failing("SetWorkflowState", storeDown)), "POST", "/v1/workflows/w1/pause", adminKey, "", 500},

		{"workflow resumed", flowPaused, "POST", "/v1/workflows/w1/resume", adminKey, "{}", 200},
		{"workflow resume invalid", flowPaused, "POST", "/v1/workflows/w1/resume", adminKey, `[]`, 400},
		{"workflow resume no key", flowPaused, "POST", "/v1/workflows/w1/resume", noKey, "", 401},
		{"workflow resume read key", flowPaused, "POST", "/v1/workflows/w1/resume", readKey, "", 403},
		{"workflow resume unknown", nil, "POST", "/v1/workflows/nope/resume", adminKey, "", 404},
		{"workflow resume too large", flowPaused, "POST", "/v1/workflows/w1/resume", adminKey, bigDef, 413},
		{"workflow resume store down", then(flowPaused, failing("SetWorkflowState", storeDown)), "POST", "/v1/workflows/w1/resume", adminKey, "", 500},

		{"workflow secret", flowMade, "GET", "/v1/workflows/w1/secret", adminKey, "", 200},
		{"workflow secret bad parameter", flowMade, "GET", "/v1/workflows/w1/secret?all=1", adminKey, "", 400},
		{"workflow secret no key", flowMade, "GET", "/v1/workflows/w1/secret", noKey, "", 401},
		{"workflow secret read key", flowMade, "GET", "/v1/workflows/w1/secret", readKey, "", 403},
		{"workflow secret unknown", nil, "GET", "/v1/workflows/nope/secret", adminKey, "", 404},
		{"workflow secret store down", then(flowMade, failing("FindWorkflow", storeDown)), "GET", "/v1/workflows/w1/secret", adminKey, "", 500},

		{"runs found", runMade, "GET", "/v1/workflows/w1/runs?state=completed&limit=10", readKey, "", 200},
		{"runs bad filter", runMade, "GET", "/v1/workflows/w1/runs?state=done", readKey, "", 400},
		{"runs no key", runMade, "GET", "/v1/workflows/w1/runs", noKey, "", 401},
		{"runs ingest key", runMade, "GET", "/v1/workflows/w1/runs", ingestKey, "", 403},
		{"runs unknown", nil, "GET", "/v1/workflows/nope/runs", readKey, "", 404},
		{"runs store down", then(runMade, failing("FindWorkflowRuns", storeDown)), "GET", "/v1/workflows/w1/runs", readKey, "", 500},

		{"run found", runMade, "GET", "/v1/workflows/w1/runs/run-1", readKey, "", 200},
		{"run bad parameter", runMade, "GET", "/v1/workflows/w1/runs/run-1?steps=1", readKey, "", 400},
		{"run no key", runMade, "GET", "/v1/workflows/w1/runs/run-1", noKey, "", 401},
		{"run ingest key", runMade, "GET", "/v1/workflows/w1/runs/run-1", ingestKey, "", 403},
		{"run unknown", flowMade, "GET", "/v1/workflows/w1/runs/run-nope", readKey, "", 404},
		{"run store down", then(runMade, failing("FindWorkflowRun", storeDown)), "GET", "/v1/workflows/w1/runs/run-1", readKey, "", 500},

		{"export created", nil, "POST", "/v1/exports", adminKey, exportBody, 201},
		{"export invalid", nil, "POST", "/v1/exports", adminKey, `{"export":{"mode":"daily"}}`, 400},
		{"export no key", nil, "POST", "/v1/exports", noKey, exportBody, 401},
		{"export read key", nil, "POST", "/v1/exports", readKey, exportBody, 403},
		{"export too large", nil, "POST", "/v1/exports", adminKey, bigDef, 413},
		{"export store down", failing("CreateWork", storeDown), "POST", "/v1/exports", adminKey, exportBody, 500},

		{"exports listed", exportMade, "GET", "/v1/exports", readKey, "", 200},
		{"exports bad parameter", nil, "GET", "/v1/exports?kind=export", readKey, "", 400},
		{"exports no key", nil, "GET", "/v1/exports", noKey, "", 401},
		{"exports ingest key", nil, "GET", "/v1/exports", ingestKey, "", 403},
		{"exports store down", failing("FindWorks", storeDown), "GET", "/v1/exports", readKey, "", 500},

		{"alert created", nil, "POST", "/v1/alerts", adminKey, lyticsAlert, 201},
		{"alert invalid", nil, "POST", "/v1/alerts", adminKey, `{"alert":{"threshold":0.5}}`, 400},
		{"alert no key", nil, "POST", "/v1/alerts", noKey, lyticsAlert, 401},
		{"alert read key", nil, "POST", "/v1/alerts", readKey, lyticsAlert, 403},
		{"alert too large", nil, "POST", "/v1/alerts", adminKey, bigDef, 413},
		{"alert store down", failing("CreateWork", storeDown), "POST", "/v1/alerts", adminKey, lyticsAlert, 500},

		{"alerts listed", alertMade, "GET", "/v1/alerts", readKey, "", 200},
		{"alerts bad parameter", nil, "GET", "/v1/alerts?kind=alert", readKey, "", 400},
		{"alerts no key", nil, "GET", "/v1/alerts", noKey, "", 401},
		{"alerts ingest key", nil, "GET", "/v1/alerts", ingestKey, "", 403},
		{"alerts store down", failing("FindWorks", storeDown), "GET", "/v1/alerts", readKey, "", 500},

		{"jobs listed", then(exportMade, alertMade), "GET", "/v1/work?kind=export", readKey, "", 200},
		{"jobs bad kind", nil, "GET", "/v1/work?kind=import", readKey, "", 400},
		{"jobs no key", nil, "GET", "/v1/work", noKey, "", 401},
		{"jobs ingest key", nil, "GET", "/v1/work", ingestKey, "", 403},
		{"jobs store down", failing("FindWorks", storeDown), "GET", "/v1/work", readKey, "", 500},

		{"job found", exportMade, "GET", "/v1/work/{work}", readKey, "", 200},
		{"job bad parameter", exportMade, "GET", "/v1/work/{work}?secret=1", readKey, "", 400},
		{"job get no key", exportMade, "GET", "/v1/work/{work}", noKey, "", 401},
		{"job get ingest key", exportMade, "GET", "/v1/work/{work}", ingestKey, "", 403},
		{"job not found", nil, "GET", "/v1/work/work_nope", readKey, "", 404},
		{"job get store down", then(exportMade, failing("FindWork", storeDown)), "GET", "/v1/work/{work}", readKey, "", 500},

		{"job replaced", exportMade, "PUT", "/v1/work/{work}", adminKey, exportBody, 200},
		{"job replace invalid", exportMade, "PUT", "/v1/work/{work}", adminKey, `{"export":{"mode":"daily"}}`, 400},
		{"job replace no key", exportMade, "PUT", "/v1/work/{work}", noKey, exportBody, 401},
		{"job replace read key", exportMade, "PUT", "/v1/work/{work}", readKey, exportBody, 403},
		{"job replace unknown", nil, "PUT", "/v1/work/work_nope", adminKey, exportBody, 404},
		{"job replace too large", exportMade, "PUT", "/v1/work/{work}", adminKey, bigDef, 413},
		{"job replace store down", then(exportMade, failing("UpdateWork", storeDown)), "PUT", "/v1/work/{work}", adminKey, exportBody, 500},

		{"job deleted", exportMade, "DELETE", "/v1/work/{work}", adminKey, "", 204},
		{"job delete bad parameter", exportMade, "DELETE", "/v1/work/{work}?force=1", adminKey, "", 400},
		{"job delete no key", exportMade, "DELETE", "/v1/work/{work}", noKey, "", 401},
		{"job delete read key", exportMade, "DELETE", "/v1/work/{work}", readKey, "", 403},
		{"job delete unknown", nil, "DELETE", "/v1/work/work_nope", adminKey, "", 404},
		{"job delete store down", then(exportMade, failing("DeleteWork", storeDown)), "DELETE", "/v1/work/{work}", adminKey, "", 500},

		{"job paused", exportMade, "POST", "/v1/work/{work}/pause", adminKey, `{"reason":"maintenance"}`, 200},
		{"job pause invalid", exportMade, "POST", "/v1/work/{work}/pause", adminKey, `{"reason":5}`, 400},
		{"job pause no key", exportMade, "POST", "/v1/work/{work}/pause", noKey, "", 401},
		{"job pause read key", exportMade, "POST", "/v1/work/{work}/pause", readKey, "", 403},
		{"job pause unknown", nil, "POST", "/v1/work/work_nope/pause", adminKey, "", 404},
		{"job pause completed", exportCompleted, "POST", "/v1/work/{work}/pause", adminKey, "", 409},
		{"job pause too large", exportMade, "POST", "/v1/work/{work}/pause", adminKey, bigDef, 413},
		{"job pause store down", then(exportMade, failing("SetWorkState", storeDown)), "POST", "/v1/work/{work}/pause", adminKey, "", 500},

		{"job resumed", exportPaused, "POST", "/v1/work/{work}/resume", adminKey, "", 200},
		{"job resume invalid", exportPaused, "POST", "/v1/work/{work}/resume", adminKey, `{"why":"x"}`, 400},
		{"job resume no key", exportPaused, "POST", "/v1/work/{work}/resume", noKey, "", 401},
		{"job resume read key", exportPaused, "POST", "/v1/work/{work}/resume", readKey, "", 403},
		{"job resume unknown", nil, "POST", "/v1/work/work_nope/resume", adminKey, "", 404},
		{"job resume completed", exportCompleted, "POST", "/v1/work/{work}/resume", adminKey, "", 409},
		{"job resume too large", exportPaused, "POST", "/v1/work/{work}/resume", adminKey, bigDef, 413},
		{"job resume store down", then(exportPaused, failing("SetWorkState", storeDown)), "POST", "/v1/work/{work}/resume", adminKey, "", 500},

		{"job run", exportMade, "POST", "/v1/work/{work}/run", adminKey, "", 202},
		{"job run invalid", exportMade, "POST", "/v1/work/{work}/run", adminKey, `{"now":true}`, 400},
		{"job run no key", exportMade, "POST", "/v1/work/{work}/run", noKey, "", 401},
		{"job run read key", exportMade, "POST", "/v1/work/{work}/run", readKey, "", 403},
		{"job run unknown", nil, "POST", "/v1/work/work_nope/run", adminKey, "", 404},
		{"job run alert", alertMade, "POST", "/v1/work/{work}/run", adminKey, "", 409},
		{"job run too large", exportMade, "POST", "/v1/work/{work}/run", adminKey, bigDef, 413},
		{"job run store down", then(exportMade, failing("RunWorkNow", storeDown)), "POST", "/v1/work/{work}/run", adminKey, "", 500},

		{"history found", recordMade, "GET", "/v1/work/{work}/history?limit=10", readKey, "", 200},
		{"history bad filter", recordMade, "GET", "/v1/work/{work}/history?before=x", readKey, "", 400},
		{"history no key", recordMade, "GET", "/v1/work/{work}/history", noKey, "", 401},
		{"history ingest key", recordMade, "GET", "/v1/work/{work}/history", ingestKey, "", 403},
		{"history unknown", nil, "GET", "/v1/work/work_nope/history", readKey, "", 404},
		{"history store down", then(recordMade, failing("FindWorkRecords", storeDown)), "GET", "/v1/work/{work}/history", readKey, "", 500},

		{"job secret", exportMade, "GET", "/v1/work/{work}/secret", adminKey, "", 200},
		{"job secret bad parameter", exportMade, "GET", "/v1/work/{work}/secret?all=1", adminKey, "", 400},
		{"job secret no key", exportMade, "GET", "/v1/work/{work}/secret", noKey, "", 401},
		{"job secret read key", exportMade, "GET", "/v1/work/{work}/secret", readKey, "", 403},
		{"job secret unknown", nil, "GET", "/v1/work/work_nope/secret", adminKey, "", 404},
		{"job secret store down", then(exportMade, failing("FindWork", storeDown)), "GET", "/v1/work/{work}/secret", adminKey, "", 500},

		{"openapi", nil, "GET", "/v1/openapi.json", noKey, "", 200},
		{"openapi bad parameter", nil, "GET", "/v1/openapi.json?v=2", noKey, "", 400},
		{"healthy", nil, "GET", "/healthz", noKey, "", 200},
		{"unhealthy", failing("Ping", storeDown), "GET", "/healthz", noKey, "", 503},
		{"metrics", nil, "GET", "/metrics", noKey, "", 200},
	}

	var mu sync.Mutex
	reached := map[string]bool{}
	t.Run("cases", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t)
				if c.setup != nil {
					c.setup(e)
				}
				path := strings.ReplaceAll(c.path, "{visit}", e.firstVisit("acme"))
				path = strings.ReplaceAll(path, "{sub}", e.firstSubscription("acme"))
				path = strings.ReplaceAll(path, "{work}", e.firstWork("acme"))
				r := e.do(c.method, path, c.key(e), c.body).wantStatus(t, c.want)
				if r.status == 500 {
					checkInternal(t, e, r, storeDown.Error())
				}
				mu.Lock()
				reached[checkDocumented(t, e.server, r)] = true
				mu.Unlock()
			})
		}
	})

	d := loadDoc(t)
	for path, item := range d.Paths {
		for method, op := range item {
			for code := range op.Responses {
				k := strings.ToUpper(method) + " " + path + " " + code
				if !reached[k] {
					t.Errorf("%s is documented but no case reaches it", k)
				}
			}
		}
	}
}

func noKey(*env) string       { return "" }
func bootKey(e *env) string   { return e.boot }
func adminKey(e *env) string  { return e.admin }
func ingestKey(e *env) string { return e.ingest }
func readKey(e *env) string   { return e.read }

// endStreams closes the server's hub, as a server shutting down does.
func endStreams(e *env) { e.server.streams.Close() }

func failing(call string, err error) func(*env) {
	return func(e *env) { e.store.fail(call, err) }
}

var internalDetail = regexp.MustCompile(`^internal error \(ref ([0-9a-f]{16})\)$`)

// checkInternal checks that a 500 shows only a ref, and that the log line
// carrying that ref also carries the real error.
func checkInternal(t *testing.T, e *env, r *response, realError string) {
	t.Helper()
	p := r.problem(t)
	m := internalDetail.FindStringSubmatch(p.Detail)
	if m == nil {
		t.Fatalf("500 detail %q, want only %q", p.Detail, "internal error (ref …)")
	}
	if bytes.Contains(r.body, []byte("SQLITE")) || bytes.Contains(r.body, []byte(realError)) {
		t.Errorf("500 body shows the real error: %s", r.body)
	}
	found := false
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, `"ref":"`+m[1]+`"`) {
			found = true
			if !strings.Contains(line, realError) {
				t.Errorf("log line with ref %s lacks the real error %q: %s", m[1], realError, line)
			}
		}
	}
	if !found {
		t.Errorf("no log line carries ref %s; logs:\n%s", m[1], e.logs.String())
	}
}

// TestOpenAPIServed checks that the document is served as it is embedded.
func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do("GET", "/v1/openapi.json", "", "").wantStatus(t, 200)
	if !bytes.Equal(r.body, openAPIDocument) {
		t.Error("served document differs from the embedded one")
	}
	var v struct {
		OpenAPI string `json:"openapi"`
	}
	r.json(t, &v)
	if !strings.HasPrefix(v.OpenAPI, "3.1.") {
		t.Errorf("openapi %q, want 3.1.x", v.OpenAPI)
	}
}
