package httpapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/catalog"
)

// Appender takes one request's events to the store and returns once they
// are committed or have failed, with b.Results filled, one per event. The
// group committer implements it by handing the batches of many concurrent
// requests to herald.EventService.AppendEvents at once.
type Appender interface {
	Append(ctx context.Context, b *herald.AppendBatch) error
}

// Config is what a Server needs. The services are required; every other
// field has a default.
type Config struct {
	Accounts   herald.AccountService
	Keys       herald.KeyService
	Events     herald.EventService
	EventTypes herald.EventTypeService
	Settings   herald.SettingsService
	Lifecycles herald.LifecycleService
	Profiles   herald.ProfileService
	Sessions   herald.SessionService
	Visits     herald.VisitService
	Audit      herald.AuditService
	// Subscriptions and Deliveries serve /v1/subscriptions: the
	// subscriptions with their secrets, and their messages and attempts.
	Subscriptions herald.SubscriptionService
	Deliveries    herald.DeliveryService
	// CompileTemplate checks a subscription's json_template when it is
	// created or replaced; its error, an EINVALID *herald.Error naming
	// /json_template, is the answer. Nil: every template is accepted (the
	// delivery engine then reports a bad one in its attempts).
	CompileTemplate func(src string) error
	// Workflows serves /v1/workflows: the workflows with their secrets,
	// and their runs.
	Workflows herald.WorkflowService
	// Work serves /v1/work, /v1/exports and /v1/alerts: the export and
	// alert jobs with their secrets, and their history.
	Work herald.WorkService
	// CompileTemplateAt checks each Jsonnet program of a workflow or a
	// job (herald.Template) when it is created or replaced; its error,
	// an EINVALID *herald.Error naming pointer, is the answer. Nil: every
	// program is accepted (the engines then report a bad one when they
	// run it).
	CompileTemplateAt func(pointer, text string) error
	// CheckDestination checks what the root package cannot of an
	// export's destination (that its DSN is one the PostgreSQL driver
	// takes); its error, an EINVALID *herald.Error naming the field, is
	// the answer. Nil: the root package's rules alone.
	CheckDestination func(d *herald.Destination) error
	// WorkflowsChanged and WorkChanged are called after the API changed a
	// workflow or a job (created, replaced, paused, resumed, asked to run
	// now, deleted), so that the engines can take the change up at once
	// rather than at their next poll. Nil: nothing is called.
	WorkflowsChanged func()
	WorkChanged      func()
	// Catalog validates ingested events and serves the types and settings
	// routes. Nil: one over EventTypes and Settings, with Now as its
	// clock. Pass the one the rest of the process uses, so that a change
	// made through the API is seen at once by everything that validates.
	Catalog *catalog.Catalog
	// Streams wakes the live streams (GET /v1/events/stream) when events
	// are committed: pass the hub that the process's write paths (and,
	// on PostgreSQL, the other servers' commits) notify, and close it
	// when the server shuts down, which ends the streams. Nil: a hub of
	// the server's own that nobody notifies; streams then see new events
	// at their safety poll (StreamPoll).
	Streams *Hub
	// StreamKeepAlive is how often an idle stream sends a comment to keep
	// proxies from dropping it. Zero: DefaultStreamKeepAlive.
	StreamKeepAlive time.Duration
	// StreamPoll is how often a stream reads the store without a wake-up.
	// Zero: DefaultStreamPoll.
	StreamPoll time.Duration
	// Appender stores ingested events. Nil: each request calls
	// Events.AppendEvents on its own, without group commit.
	Appender Appender
	// Ping checks the store for GET /healthz. Nil: /healthz always
	// answers ok.
	Ping func(ctx context.Context) error
	// Logger receives one line per request. Nil: logs are discarded.
	Logger *slog.Logger
	// Registerer receives the server's metrics. Nil: a private registry.
	// The global registry is never used.
	Registerer prometheus.Registerer
	// Gatherer is what GET /metrics serves. Nil: the Registerer when it is
	// also a Gatherer (as *prometheus.Registry is), else the private
	// registry.
	Gatherer prometheus.Gatherer
	// Now is the clock for receivedAt, createdAt and the key cache.
	// Nil: time.Now.
	Now func() time.Time
	// NewID makes ids for events sent without one. Nil: UUIDv7, which
	// sort by creation time.
	NewID func() string
	// KeyCacheTTL is how long a key lookup is remembered (see keyCache).
	// Zero: DefaultKeyCacheTTL. Negative: no cache.
	KeyCacheTTL time.Duration
	// Console answers the GET and HEAD requests that no API route
	// serves, outside /v1, /healthz and /metrics: the web console
	// (console.Handler). It is not part of the API or its document.
	// Nil: no console; those requests answer 404 like any other.
	Console http.Handler
}

// Server serves the HTTP API. It is an http.Handler; the caller owns the
// http.Server around it and its shutdown.
type Server struct {
	accounts   herald.AccountService
	keys       herald.KeyService
	events     herald.EventService
	lifecycles herald.LifecycleService
	profiles   herald.ProfileService
	sessions   herald.SessionService
	visits     herald.VisitService
	audit      herald.AuditService
	subs       herald.SubscriptionService
	deliveries herald.DeliveryService
	compile    func(src string) error
	workflows  herald.WorkflowService
	work       herald.WorkService
	compileAt  func(pointer, text string) error
	checkDest  func(d *herald.Destination) error
	onFlows    func() // Config.WorkflowsChanged, never nil
	onWork     func() // Config.WorkChanged, never nil
	catalog    *catalog.Catalog
	appender   Appender
	ping       func(ctx context.Context) error
	logger     *slog.Logger
	now        func() time.Time
	newID      func() string
	console    http.Handler

	// streams, streamKeepAlive and streamPoll are Config.Streams,
	// Config.StreamKeepAlive and Config.StreamPoll, defaults applied.
	streams         *Hub
	streamKeepAlive time.Duration
	streamPoll      time.Duration

	keyCache *keyCache
	metrics  *metrics
	mux      *http.ServeMux
	routes   []route
}

// NewServer returns a Server for cfg. It panics when a required service is
// missing: that is a wiring mistake, not a runtime condition.
func NewServer(cfg Config) *Server {
	var missing []string
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"Accounts", cfg.Accounts != nil}, {"Keys", cfg.Keys != nil}, {"Events", cfg.Events != nil},
		{"EventTypes", cfg.EventTypes != nil}, {"Settings", cfg.Settings != nil},
		{"Lifecycles", cfg.Lifecycles != nil}, {"Profiles", cfg.Profiles != nil},
		{"Sessions", cfg.Sessions != nil}, {"Visits", cfg.Visits != nil}, {"Audit", cfg.Audit != nil},
		{"Subscriptions", cfg.Subscriptions != nil}, {"Deliveries", cfg.Deliveries != nil},
		{"Workflows", cfg.Workflows != nil}, {"Work", cfg.Work != nil},
	} {
		if !f.set {
			missing = append(missing, "Config."+f.name)
		}
	}
	if len(missing) > 0 {
		panic("httpapi.NewServer: " + strings.Join(missing, ", ") + " required")
	}
	s := &Server{
		accounts:   cfg.Accounts,
		keys:       cfg.Keys,
		events:     cfg.Events,
		lifecycles: cfg.Lifecycles,
		profiles:   cfg.Profiles,
		sessions:   cfg.Sessions,
		visits:     cfg.Visits,
		audit:      cfg.Audit,
		subs:       cfg.Subscriptions,
		deliveries: cfg.Deliveries,
		compile:    cfg.CompileTemplate,
		workflows:  cfg.Workflows,
		work:       cfg.Work,
		compileAt:  cfg.CompileTemplateAt,
		checkDest:  cfg.CheckDestination,
		onFlows:    cfg.WorkflowsChanged,
		onWork:     cfg.WorkChanged,
		catalog:    cfg.Catalog,
		appender:   cfg.Appender,
		ping:       cfg.Ping,
		logger:     cfg.Logger,
		now:        cfg.Now,
		newID:      cfg.NewID,
		console:    cfg.Console,
		mux:        http.NewServeMux(),
	}
	if s.appender == nil {
		s.appender = directAppender{cfg.Events}
	}
	s.streams = cfg.Streams
	if s.streams == nil {
		s.streams = NewHub()
	}
	s.streamKeepAlive = cmp.Or(cfg.StreamKeepAlive, DefaultStreamKeepAlive)
	s.streamPoll = cmp.Or(cfg.StreamPoll, DefaultStreamPoll)
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.onFlows == nil {
		s.onFlows = func() {}
	}
	if s.onWork == nil {
		s.onWork = func() {}
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.newID == nil {
		s.newID = newUUIDv7
	}
	if s.catalog == nil {
		s.catalog = catalog.New(cfg.EventTypes, cfg.Settings, catalog.Options{Now: cfg.Now})
	}
	ttl := cfg.KeyCacheTTL
	if ttl == 0 {
		ttl = DefaultKeyCacheTTL
	}
	s.keyCache = newKeyCache(cfg.Keys, ttl, defaultKeyCacheSize, s.now)
	s.metrics = newMetrics(cfg.Registerer, cfg.Gatherer)

	s.routes = s.routeTable()
	for _, rt := range s.routes {
		s.mux.Handle(rt.method+" "+rt.path, s.wrap(rt))
	}
	return s
}

func newUUIDv7() string {
	// NewV7 fails only when the system's random source does, which
	// crypto/rand no longer allows to happen.
	return uuid.Must(uuid.NewV7()).String()
}

// directAppender appends each request's batch on its own.
type directAppender struct{ events herald.EventService }

func (a directAppender) Append(ctx context.Context, b *herald.AppendBatch) error {
	return a.events.AppendEvents(ctx, []*herald.AppendBatch{b})
}

// scopeBootstrap marks a route only the bootstrap key may call. It is not
// a scope a key can be given.
const scopeBootstrap = "bootstrap"

// route is one entry of the route table: the single list that both
// registers the handlers and that the OpenAPI test compares with the
// document.
type route struct {
	method string
	path   string
	// scope is what the key must grant: "" for a public route (no key),
	// a herald scope, or scopeBootstrap.
	scope string
	// params lists the query parameters the route accepts; any other is
	// refused with 400, like an unknown body field.
	params []string
	// repeatable lists the parameters that may be given more than once;
	// any other is refused when repeated.
	repeatable []string
	// anyParams turns that check off, for the operational endpoints that
	// probes and scrapers call with whatever their configuration adds.
	anyParams bool
	handle    func(w http.ResponseWriter, r *http.Request) error
}

func (s *Server) routeTable() []route {
	return []route{
		{method: "POST", path: "/v1/accounts", scope: scopeBootstrap, handle: s.createAccount},
		{method: "POST", path: "/v1/keys", scope: herald.ScopeAdmin, handle: s.createKey},
		{method: "GET", path: "/v1/keys", scope: herald.ScopeAdmin, handle: s.listKeys},
		{method: "DELETE", path: "/v1/keys/{id}", scope: herald.ScopeAdmin, handle: s.deleteKey},
		{method: "POST", path: "/v1/events", scope: herald.ScopeIngest, handle: s.ingestEvent},
		{method: "POST", path: "/v1/events/batch", scope: herald.ScopeIngest, params: []string{"atomic"}, handle: s.ingestBatch},
		{method: "GET", path: "/v1/events", scope: herald.ScopeRead, params: eventQueryParams, handle: s.findEvents},
		{method: "GET", path: "/v1/events/stream", scope: herald.ScopeRead, params: streamQueryParams, repeatable: streamRepeatable, handle: s.streamEvents},
		{method: "GET", path: "/v1/events/{id}", scope: herald.ScopeRead, handle: s.getEvent},
		{method: "POST", path: "/v1/event-types", scope: herald.ScopeAdmin, handle: s.createEventType},
		{method: "GET", path: "/v1/event-types", scope: herald.ScopeRead, handle: s.listEventTypes},
		{method: "GET", path: "/v1/event-types/{category}/{type}", scope: herald.ScopeRead, handle: s.getEventType},
		{method: "PUT", path: "/v1/event-types/{category}/{type}", scope: herald.ScopeAdmin, handle: s.putEventType},
		{method: "DELETE", path: "/v1/event-types/{category}/{type}", scope: herald.ScopeAdmin, handle: s.deleteEventType},
		{method: "GET", path: "/v1/schemas/{name}", scope: herald.ScopeRead, handle: s.getSchema},
		{method: "GET", path: "/v1/settings", scope: herald.ScopeRead, handle: s.getSettings},
		{method: "PUT", path: "/v1/settings", scope: herald.ScopeAdmin, handle: s.putSettings},
		{method: "GET", path: "/v1/lifecycles", scope: herald.ScopeRead, params: lifecycleQueryParams, handle: s.findLifecycles},
		{method: "GET", path: "/v1/lifecycles/{id}", scope: herald.ScopeRead, handle: s.getLifecycle},
		{method: "GET", path: "/v1/profiles", scope: herald.ScopeRead, params: profileQueryParams, handle: s.findProfiles},
		{method: "GET", path: "/v1/profiles/{id}", scope: herald.ScopeRead, handle: s.getProfile},
		{method: "DELETE", path: "/v1/profiles/{id}", scope: herald.ScopeAdmin, handle: s.eraseProfile},
		{method: "GET", path: "/v1/sessions", scope: herald.ScopeRead, params: journeyQueryParams, handle: s.findSessions},
		{method: "GET", path: "/v1/sessions/{id}", scope: herald.ScopeRead, handle: s.getSession},
		{method: "GET", path: "/v1/visits", scope: herald.ScopeRead, params: journeyQueryParams, handle: s.findVisits},
		{method: "GET", path: "/v1/visits/{id}", scope: herald.ScopeRead, handle: s.getVisit},
		{method: "GET", path: "/v1/audit", scope: herald.ScopeRead, params: auditQueryParams, repeatable: auditRepeatable, handle: s.findAudit},
		{method: "GET", path: "/v1/audit/verify", scope: herald.ScopeRead, handle: s.verifyAudit},
		{method: "POST", path: "/v1/subscriptions", scope: herald.ScopeAdmin, params: []string{"from"}, handle: s.createSubscription},
		{method: "GET", path: "/v1/subscriptions", scope: herald.ScopeAdmin, handle: s.listSubscriptions},
		{method: "GET", path: "/v1/subscriptions/{id}", scope: herald.ScopeAdmin, handle: s.getSubscription},
		{method: "PUT", path: "/v1/subscriptions/{id}", scope: herald.ScopeAdmin, handle: s.putSubscription},
		{method: "DELETE", path: "/v1/subscriptions/{id}", scope: herald.ScopeAdmin, handle: s.deleteSubscription},
		{method: "POST", path: "/v1/subscriptions/{id}/pause", scope: herald.ScopeAdmin, handle: s.pauseSubscription},
		{method: "POST", path: "/v1/subscriptions/{id}/resume", scope: herald.ScopeAdmin, handle: s.resumeSubscription},
		{method: "GET", path: "/v1/subscriptions/{id}/secret", scope: herald.ScopeAdmin, handle: s.getSecrets},
		{method: "POST", path: "/v1/subscriptions/{id}/secret/rotate", scope: herald.ScopeAdmin, params: []string{"overlap"}, handle: s.rotateSecret},
		{method: "GET", path: "/v1/subscriptions/{id}/attempts", scope: herald.ScopeRead, params: attemptQueryParams, handle: s.findAttempts},
		{method: "GET", path: "/v1/subscriptions/{id}/messages", scope: herald.ScopeRead, params: messageQueryParams, handle: s.findMessages},
		{method: "POST", path: "/v1/subscriptions/{id}/retry", scope: herald.ScopeAdmin, handle: s.retryMessages},
		{method: "GET", path: "/v1/subscriptions/{id}/stats", scope: herald.ScopeRead, params: []string{"window"}, handle: s.subscriptionStats},
		{method: "POST", path: "/v1/workflows", scope: herald.ScopeAdmin, handle: s.createWorkflow},
		{method: "GET", path: "/v1/workflows", scope: herald.ScopeRead, handle: s.listWorkflows},
		{method: "GET", path: "/v1/workflows/{name}", scope: herald.ScopeRead, handle: s.getWorkflow},
		{method: "PUT", path: "/v1/workflows/{name}", scope: herald.ScopeAdmin, handle: s.putWorkflow},
		{method: "DELETE", path: "/v1/workflows/{name}", scope: herald.ScopeAdmin, handle: s.deleteWorkflow},
		{method: "POST", path: "/v1/workflows/{name}/pause", scope: herald.ScopeAdmin, handle: s.pauseWorkflow},
		{method: "POST", path: "/v1/workflows/{name}/resume", scope: herald.ScopeAdmin, handle: s.resumeWorkflow},
		{method: "GET", path: "/v1/workflows/{name}/secret", scope: herald.ScopeAdmin, handle: s.getWorkflowSecret},
		{method: "GET", path: "/v1/workflows/{name}/runs", scope: herald.ScopeRead, params: runQueryParams, handle: s.findRuns},
		{method: "GET", path: "/v1/workflows/{name}/runs/{id}", scope: herald.ScopeRead, handle: s.getRun},
		{method: "POST", path: "/v1/exports", scope: herald.ScopeAdmin, handle: s.createExport},
		{method: "GET", path: "/v1/exports", scope: herald.ScopeRead, handle: s.listExports},
		{method: "POST", path: "/v1/alerts", scope: herald.ScopeAdmin, handle: s.createAlert},
		{method: "GET", path: "/v1/alerts", scope: herald.ScopeRead, handle: s.listAlerts},
		{method: "GET", path: "/v1/work", scope: herald.ScopeRead, params: []string{"kind"}, handle: s.listWork},
		{method: "GET", path: "/v1/work/{id}", scope: herald.ScopeRead, handle: s.getWork},
		{method: "PUT", path: "/v1/work/{id}", scope: herald.ScopeAdmin, handle: s.putWork},
		{method: "DELETE", path: "/v1/work/{id}", scope: herald.ScopeAdmin, handle: s.deleteWork},
		{method: "POST", path: "/v1/work/{id}/pause", scope: herald.ScopeAdmin, handle: s.pauseWork},
		{method: "POST", path: "/v1/work/{id}/resume", scope: herald.ScopeAdmin, handle: s.resumeWork},
		{method: "POST", path: "/v1/work/{id}/run", scope: herald.ScopeAdmin, handle: s.runWork},
		{method: "GET", path: "/v1/work/{id}/history", scope: herald.ScopeRead, params: historyQueryParams, handle: s.findWorkHistory},
		{method: "GET", path: "/v1/work/{id}/secret", scope: herald.ScopeAdmin, handle: s.getWorkSecret},
		{method: "GET", path: "/v1/openapi.json", handle: s.openAPI},
		{method: "GET", path: "/healthz", anyParams: true, handle: s.health},
		{method: "GET", path: "/metrics", anyParams: true, handle: s.serveMetrics},
	}
}

// wrap adds to a route's handler what every route does: note the route for
// logs and metrics, authenticate, check the query parameters, and turn a
// returned error into a problem.
func (s *Server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := infoFrom(r.Context())
		info.route = rt.path
		if rt.scope != "" {
			key, ok := s.authenticate(w, r, rt)
			if !ok {
				return
			}
			info.account = key.AccountID
			// The key is also the actor the store names in the system
			// events the request causes.
			ctx := context.WithValue(r.Context(), keyContextKey{}, key)
			r = r.WithContext(herald.NewContextWithActor(ctx, herald.KeyActor(key)))
		}
		if !rt.anyParams {
			if err := checkParams(r, rt.params, rt.repeatable); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		if err := rt.handle(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// ServeHTTP gives the request an id, routes it, and logs and counts it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := r.Header.Get("X-Request-Id")
	if !saneRequestID(id) {
		id = herald.NewRandomID("")
	}
	w.Header().Set("X-Request-Id", id)
	info := &requestInfo{id: id}
	r = r.WithContext(context.WithValue(r.Context(), infoContextKey{}, info))
	rec := &recorder{ResponseWriter: w}

	defer func() {
		v := recover()
		if v != nil && v != http.ErrAbortHandler {
			err := fmt.Errorf("panic: %v\n%s", v, debug.Stack())
			if rec.status == 0 {
				writeProblem(rec, r, s.internal(r, err))
			} else if info.err == nil {
				info.err = err
			}
		}
		s.observe(r, rec, info, time.Since(start))
		if v == http.ErrAbortHandler {
			panic(v)
		}
	}()

	h, pattern := s.mux.Handler(r)
	if pattern == "" {
		if s.servesConsole(r) {
			info.route = consoleRoute
			s.console.ServeHTTP(rec, r)
			return
		}
		s.unmatched(rec, r, h)
		return
	}
	s.mux.ServeHTTP(rec, r)
}

// consoleRoute is the route that logs and metrics name for whatever the
// console serves: one label for all its paths.
const consoleRoute = "console"

// servesConsole reports whether a request no API route matches goes to
// the console: a GET or HEAD outside the API's paths, so that a mistyped
// API URL still answers with a problem.
func (s *Server) servesConsole(r *http.Request) bool {
	if s.console == nil || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return false
	}
	for _, prefix := range []string{"/v1", "/healthz", "/metrics"} {
		if r.URL.Path == prefix || strings.HasPrefix(r.URL.Path, prefix+"/") {
			return false
		}
	}
	return true
}

// unmatched answers a request no route matches, with the mux's verdict
// (404, or 405 with Allow) as a problem rather than as plain text.
func (s *Server) unmatched(w http.ResponseWriter, r *http.Request, h http.Handler) {
	c := &captureWriter{header: http.Header{}}
	h.ServeHTTP(c, r)
	if c.status == http.StatusMethodNotAllowed {
		allow := c.header.Get("Allow")
		w.Header().Set("Allow", allow)
		writeProblem(w, r, kindMethodNotAllowed.problem(fmt.Sprintf("%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow)))
		return
	}
	writeProblem(w, r, kindNotFound.problem(fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path)))
}

// writeError answers with the problem for err. An *herald.Error of a code
// httpapi knows is shown as it is; anything else is internal.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *herald.Error
	if errors.As(err, &e) && kindOf(e.Code) != kindInternal {
		writeProblem(w, r, problemFor(e))
		return
	}
	writeProblem(w, r, s.internal(r, err))
}

// internal records err for the request's log line under a fresh ref and
// returns the problem that shows only the ref.
func (s *Server) internal(r *http.Request, err error) *Problem {
	ref := herald.NewRandomID("")
	info := infoFrom(r.Context())
	if info != nil && info.err == nil {
		info.err, info.ref = err, ref
	} else {
		// A second internal error in one request (a batch item, say) gets
		// its own line, so that each ref can be found.
		s.logger.LogAttrs(r.Context(), slog.LevelError, "internal error",
			slog.String("ref", ref), slog.String("error", err.Error()), slog.String("request_id", requestID(r)))
	}
	return kindInternal.problem("internal error (ref " + ref + ")")
}

// observe logs the request and counts it.
func (s *Server) observe(r *http.Request, rec *recorder, info *requestInfo, d time.Duration) {
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	route := info.route
	if route == "" {
		route = "unmatched" // never the raw path: it would grow the label set without bound
	}
	method := metricMethod(r.Method)
	s.metrics.observe(route, method, status, d)

	level := slog.LevelInfo
	switch {
	case status >= 500:
		level = slog.LevelError
	case status < 400 && (route == "/healthz" || route == "/metrics" || route == consoleRoute):
		level = slog.LevelDebug // probes, scrapes and page loads would drown the rest
	}
	if !s.logger.Enabled(r.Context(), level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("route", route),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Duration("duration", d),
		slog.Int64("bytes", rec.bytes),
		slog.String("request_id", info.id),
	}
	if info.account != "" {
		attrs = append(attrs, slog.String("account", info.account))
	}
	if info.ref != "" {
		attrs = append(attrs, slog.String("ref", info.ref), slog.String("error", info.err.Error()))
	} else if status >= 400 && info.detail != "" {
		attrs = append(attrs, slog.String("problem", info.detail))
	}
	s.logger.LogAttrs(r.Context(), level, "request", attrs...)
}

// requestInfo collects, while a request is served, what its log line and
// metrics need.
type requestInfo struct {
	id      string
	route   string
	account string
	detail  string // the problem's detail, for 4xx lines
	ref     string
	err     error
}

type infoContextKey struct{}

func infoFrom(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(infoContextKey{}).(*requestInfo)
	return info
}

func requestID(r *http.Request) string {
	if info := infoFrom(r.Context()); info != nil {
		return info.id
	}
	return ""
}

// saneRequestID reports whether an incoming X-Request-Id may be kept: short
// and made of characters that need no quoting in logs or headers.
func saneRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.:~+/=", c) >= 0) {
			return false
		}
	}
	return true
}

// knownMethods bounds the method label of the metrics.
var knownMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

func metricMethod(m string) string {
	if slices.Contains(knownMethods, m) {
		return m
	}
	return "OTHER"
}

// recorder notes the status and size of a response.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush passes flushes through (promhttp may flush).
func (w *recorder) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

// captureWriter catches what the mux's own 404 and 405 handlers write.
type captureWriter struct {
	header http.Header
	status int
}

func (w *captureWriter) Header() http.Header { return w.header }
func (w *captureWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *captureWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(b), nil
}
