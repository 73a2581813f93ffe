package herald

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"time"

	"github.com/robfig/cron/v3"
)

// Kinds of work job (Lytics' "work"): both read the event log from a
// cursor and act on the events that match their filter.
const (
	WorkExport = "export"
	WorkAlert  = "alert"
)

// States of a work job.
const (
	WorkActive    = "active"
	WorkPaused    = "paused"
	WorkCompleted = "completed" // a one-time export that finished
	WorkFailed    = "failed"    // a cycle failed for good; resume to try again
)

// ValidWorkState reports whether state is one of the states.
func ValidWorkState(state string) bool {
	switch state {
	case WorkActive, WorkPaused, WorkCompleted, WorkFailed:
		return true
	}
	return false
}

// Modes of an export.
const (
	// ExportOnce exports the events that occurred in [From, To) among
	// those stored when it starts, then completes.
	ExportOnce = "once"
	// ExportBatch runs a cycle every Every or by Cron; each cycle exports
	// exactly the matching events stored since the previous cycle.
	ExportBatch = "batch"
	// ExportStream sends matching events as they are stored, in batches
	// of at most BatchSize.
	ExportStream = "stream"
)

// Destination types of an export, and file formats.
const (
	DestinationWebhook  = "webhook"
	DestinationPostgres = "postgres"
	DestinationFiles    = "files"
	FormatNDJSON        = "ndjson"
	FormatCSV           = "csv"
	FormatParquet       = "parquet"
)

// Where a continuous export starts.
const (
	StartBeginning = "beginning" // every matching event stored so far, then new ones
	StartNow       = "now"       // only events stored after the job is created
)

// Work is an export or alert job (DESIGN.md §6). Its definition (name,
// filter, Export or Alert) is what a client sets; State and Runtime are
// the engine's.
type Work struct {
	ID        string `json:"id"`
	AccountID string `json:"-"`
	Kind      string `json:"kind"`
	Name      string `json:"name,omitempty"`
	// Filter selects the events; a job never sees the system events
	// about itself (subject type work, its id).
	Filter Filter        `json:"filter"`
	Export *ExportConfig `json:"export,omitempty"`
	Alert  *AlertConfig  `json:"alert,omitempty"`

	// Secret signs the requests of webhook destinations and targets
	// (Standard Webhooks, whsec_…). The API shows it only at GET …/secret.
	Secret string `json:"-"`

	State       string      `json:"state"`
	StateReason string      `json:"stateReason,omitempty"`
	Runtime     WorkRuntime `json:"runtime"`
	// RunNowAt is when a client last asked for a cycle now; the engine
	// runs one when it is later than Runtime.RanNowAt.
	RunNowAt  *time.Time `json:"runNowAt,omitempty"`
	CreatedAt time.Time  `json:"createdAt"`
	UpdatedAt time.Time  `json:"updatedAt"`
}

// ExportConfig is what an export job exports, when and where.
type ExportConfig struct {
	Mode string `json:"mode"`
	// From and To bound, for ExportOnce, the events' occurredAt: From
	// inclusive, To exclusive; either may be left open.
	From *time.Time `json:"from,omitempty"`
	To   *time.Time `json:"to,omitempty"`
	// Every or Cron (five fields, or @daily, @hourly, …; a CRON_TZ=
	// prefix names a time zone, else UTC) schedule ExportBatch cycles.
	Every Duration `json:"every,omitempty"`
	Cron  string   `json:"cron,omitempty"`
	// Start is where a batch or stream export starts: StartBeginning
	// (default for batch) or StartNow (default for stream).
	Start string `json:"start,omitempty"`
	// BatchSize is the most events in one unit: a file, a request, an
	// insert.
	BatchSize   int         `json:"batchSize"`
	Destination Destination `json:"destination"`
	// RetrySchedule is when a failed unit is tried again; after the
	// last, the job fails.
	RetrySchedule []Duration `json:"retrySchedule"`
}

// Destination is where an export writes.
type Destination struct {
	Type string `json:"type"`
	// URL, Headers and JSONTemplate are a webhook's: a signed POST of a
	// JSON batch, {"events": [...]}; with a template, each event is
	// rendered, and a batch of one is sent as the rendered body alone.
	URL          string            `json:"url,omitempty"`
	WebhookURL   string            `json:"webhook_url,omitempty"`
	Headers      map[string]string `json:"headers,omitempty"`
	JSONTemplate string            `json:"json_template,omitempty"`
	// DSN (postgres://…) and Table are a PostgreSQL table's. Its
	// password is a secret (see Redact).
	DSN   string `json:"dsn,omitempty"`
	Table string `json:"table,omitempty"`
	// Dir, relative to the server's export directory, and Format are
	// files'.
	Dir    string `json:"dir,omitempty"`
	Format string `json:"format,omitempty"`
}

// AlertConfig is when an alert fires and where it is sent.
type AlertConfig struct {
	// Threshold matching events within Window fire the alert; 1 fires it
	// on any matching event.
	Threshold int      `json:"threshold"`
	Window    Duration `json:"window,omitempty"`
	// Cooldown is how long after firing the alert stays quiet: matching
	// events meanwhile are counted as suppressed.
	Cooldown Duration `json:"cooldown,omitempty"`
	Target   Target   `json:"target"`
	// RetrySchedule is when a message that could not be sent is tried
	// again; after the last, the firing fails (system event failed).
	RetrySchedule []Duration `json:"retrySchedule"`
}

// WorkRuntime is a job's progress, kept by the engine.
type WorkRuntime struct {
	// Cursor is the seq up to which every matching event was handled.
	Cursor int64 `json:"cursor"`
	// StartedAt is the first run (system event started, written once).
	StartedAt *time.Time `json:"startedAt,omitempty"`
	// Syncing is true while a series of cycles runs (system event
	// syncing at its start); a pause ends the series.
	Syncing bool  `json:"syncing"`
	Cycles  int64 `json:"cycles"`
	Units   int64 `json:"units"`
	Events  int64 `json:"events"`
	// Firings and Suppressed count an alert's firings and the matching
	// events its cooldown kept quiet.
	Firings    int64 `json:"firings,omitempty"`
	Suppressed int64 `json:"suppressed,omitempty"`
	Failures   int64 `json:"failures"`
	// LastCycle is the last finished cycle (or firing).
	LastCycle *WorkRecord `json:"lastCycle,omitempty"`
	NextRunAt *time.Time  `json:"nextRunAt,omitempty"`
	RanNowAt  *time.Time  `json:"ranNowAt,omitempty"`
	// Pending is the cycle under way: a cycle that a crash interrupted
	// resumes with the same range, so files and batches come out the
	// same and nothing is exported twice or skipped.
	Pending *WorkCycle `json:"pending,omitempty"`
	// Recent are the receivedAt times of an alert's latest matching
	// events, at most Threshold of them, inside Window.
	Recent      []time.Time `json:"recent,omitempty"`
	LastFiredAt *time.Time  `json:"lastFiredAt,omitempty"`
	// Firing is a firing whose message is not sent yet.
	Firing *AlertFiring `json:"firing,omitempty"`
}

// WorkCycle is one export cycle: the events with AfterSeq < seq <= UpTo.
type WorkCycle struct {
	Number   int64 `json:"number"`
	AfterSeq int64 `json:"afterSeq"`
	UpTo     int64 `json:"upTo"`
	// Done is the seq up to which units are written; Units and Events
	// count them.
	Done      int64     `json:"done"`
	Units     int       `json:"units"`
	Events    int64     `json:"events"`
	StartedAt time.Time `json:"startedAt"`
	// Attempts counts failures of the current unit; NextAttemptAt is its
	// retry.
	Attempts      int       `json:"attempts,omitempty"`
	NextAttemptAt time.Time `json:"nextAttemptAt,omitzero"`
	LastError     string    `json:"lastError,omitempty"`
}

// AlertFiring is one firing on its way out.
type AlertFiring struct {
	Number  int64     `json:"number"`
	At      time.Time `json:"at"`
	EventID string    `json:"eventId"`
	Seq     int64     `json:"seq"`
	// Count is how many matching events were in the window.
	Count         int       `json:"count"`
	Attempts      int       `json:"attempts,omitempty"`
	NextAttemptAt time.Time `json:"nextAttemptAt,omitzero"`
	LastError     string    `json:"lastError,omitempty"`
}

// Kinds and states of a WorkRecord.
const (
	RecordCycle     = "cycle"
	RecordFiring    = "firing"
	RecordSucceeded = "succeeded"
	RecordFailed    = "failed"
)

// WorkRecord is a job's history: one finished cycle or firing.
type WorkRecord struct {
	ID         int64     `json:"id"`
	WorkID     string    `json:"workId"`
	Kind       string    `json:"kind"`
	Number     int64     `json:"number"`
	State      string    `json:"state"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`
	Events     int64     `json:"events"`
	Units      int       `json:"units"`
	AfterSeq   int64     `json:"afterSeq,omitempty"`
	UpTo       int64     `json:"upTo,omitempty"`
	Attempts   int       `json:"attempts,omitempty"`
	Error      string    `json:"error,omitempty"`
	// Detail says what was written or sent: files, status codes.
	Detail json.RawMessage `json:"detail,omitempty"`
}

// WorkRecordFilter pages a job's history, newest first.
type WorkRecordFilter struct {
	BeforeID int64
	Limit    int
}

// WorkProgress is what the engine saves of a job in one commit.
type WorkProgress struct {
	AccountID string
	WorkID    string
	Owner     string
	Runtime   WorkRuntime
	// State and StateReason, when State is set, move the job (to
	// completed or failed).
	State       string
	StateReason string
	Records     []*WorkRecord
	// Events are the job's system events (started, syncing, synced,
	// synccomplete, completed, failed).
	Events []*Event
}

var tableRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$`)

// SetDefaults fills what was left out.
func (w *Work) SetDefaults() {
	if w.State == "" {
		w.State = WorkActive
	}
	if x := w.Export; x != nil {
		if x.Start == "" {
			x.Start = StartBeginning
			if x.Mode == ExportStream {
				x.Start = StartNow
			}
		}
		if x.BatchSize == 0 {
			x.BatchSize = 1000
			if x.Destination.Type == DestinationWebhook {
				x.BatchSize = 100
			}
			if x.Destination.Type == DestinationFiles {
				x.BatchSize = 100000
			}
		}
		if x.Destination.URL == "" {
			x.Destination.URL = x.Destination.WebhookURL
		}
		x.Destination.WebhookURL = ""
		if x.RetrySchedule == nil {
			x.RetrySchedule = DefaultStepRetrySchedule()
		}
	}
	if a := w.Alert; a != nil {
		if a.Threshold == 0 {
			a.Threshold = 1
		}
		a.Target.SetDefaults()
		if a.RetrySchedule == nil {
			a.RetrySchedule = DefaultStepRetrySchedule()
		}
	}
}

// Validate checks what a client may set, naming the field at fault. The
// templates are compiled by the API (Templates lists them).
func (w *Work) Validate() error {
	var errs []FieldError
	fail := func(pointer, format string, args ...any) {
		errs = append(errs, FieldError{Pointer: pointer, Detail: fmt.Sprintf(format, args...)})
	}
	if len(w.Name) > 200 {
		fail("/name", "must be at most 200 characters")
	}
	if err := w.Filter.Validate("/filter"); err != nil {
		errs = append(errs, err.(*Error).Fields...)
	}
	switch w.Kind {
	case WorkExport:
		if w.Export == nil {
			fail("/export", "is required for an export job")
		} else {
			errs = append(errs, w.Export.validate("/export")...)
		}
		if w.Alert != nil {
			fail("/alert", "must be left out of an export job")
		}
	case WorkAlert:
		if w.Alert == nil {
			fail("/alert", "is required for an alert job")
		} else {
			errs = append(errs, w.Alert.validate("/alert")...)
		}
		if w.Export != nil {
			fail("/export", "must be left out of an alert job")
		}
	default:
		fail("/kind", "must be %q or %q", WorkExport, WorkAlert)
	}
	return invalid(errs)
}

func (x *ExportConfig) validate(p string) []FieldError {
	var errs []FieldError
	fail := func(pointer, format string, args ...any) {
		errs = append(errs, FieldError{Pointer: p + pointer, Detail: fmt.Sprintf(format, args...)})
	}
	switch x.Mode {
	case ExportOnce:
		if x.From != nil && x.To != nil && !x.To.After(*x.From) {
			fail("/to", "must be after from")
		}
		if x.Every != 0 || x.Cron != "" {
			fail("/mode", "is %q: every and cron are for %q", ExportOnce, ExportBatch)
		}
	case ExportBatch:
		switch {
		case x.Every != 0 && x.Cron != "":
			fail("/cron", "must be left out when every is set: one schedule only")
		case x.Every == 0 && x.Cron == "":
			fail("/every", "is required for a batch export (or cron), such as \"1h\"")
		case x.Every != 0 && (x.Every < Duration(time.Second) || x.Every > Duration(31*24*time.Hour)):
			fail("/every", "must be between 1s and 744h")
		case x.Cron != "":
			if _, err := ParseCron(x.Cron); err != nil {
				fail("/cron", "%s", err)
			}
		}
	case ExportStream:
		if x.Cron != "" {
			fail("/cron", "must be left out of a stream export, which sends events as they are stored")
		}
		if x.Every != 0 && (x.Every < Duration(time.Second) || x.Every > Duration(24*time.Hour)) {
			fail("/every", "must be between 1s and 24h: how often a stream reports synced and synccomplete")
		}
	default:
		fail("/mode", "must be %q, %q or %q", ExportOnce, ExportBatch, ExportStream)
	}
	if x.Mode != ExportOnce && (x.From != nil || x.To != nil) {
		fail("/from", "is for %q exports only", ExportOnce)
	}
	if x.Start != StartBeginning && x.Start != StartNow {
		fail("/start", "must be %q or %q", StartBeginning, StartNow)
	}
	if x.BatchSize < 1 || x.BatchSize > 1000000 {
		fail("/batchSize", "must be between 1 and 1000000")
	}
	errs = append(errs, checkRetrySchedule(p+"/retrySchedule", x.RetrySchedule)...)
	d, dp := &x.Destination, p+"/destination"
	switch d.Type {
	case DestinationWebhook:
		if msg := checkHTTPURL(d.URL); msg != "" {
			errs = append(errs, FieldError{dp + "/url", msg})
		}
		errs = append(errs, checkHeaders(dp, d.Headers)...)
		if x.BatchSize > 10000 {
			fail("/batchSize", "must be at most 10000 for a webhook")
		}
	case DestinationPostgres:
		if msg := checkDSN(d.DSN); msg != "" {
			errs = append(errs, FieldError{dp + "/dsn", msg})
		}
		if !tableRE.MatchString(d.Table) {
			errs = append(errs, FieldError{dp + "/table", "must be a table name, optionally schema-qualified: letters, digits and _ (herald_events, audit.events)"})
		}
	case DestinationFiles:
		if d.Dir == "" || !filepath.IsLocal(d.Dir) {
			errs = append(errs, FieldError{dp + "/dir", "must be a relative path inside the server's export directory, without .."})
		}
		switch d.Format {
		case FormatNDJSON, FormatCSV, FormatParquet:
		default:
			errs = append(errs, FieldError{dp + "/format", fmt.Sprintf("must be %q, %q or %q", FormatNDJSON, FormatCSV, FormatParquet)})
		}
	default:
		errs = append(errs, FieldError{dp + "/type", fmt.Sprintf("must be %q, %q or %q", DestinationWebhook, DestinationPostgres, DestinationFiles)})
	}
	if d.Type != DestinationWebhook && (d.URL != "" || len(d.Headers) > 0 || d.JSONTemplate != "") {
		errs = append(errs, FieldError{dp + "/url", "url, headers and json_template are for webhook destinations"})
	}
	return errs
}

// checkDSN returns why dsn is not a PostgreSQL URL, or "".
func checkDSN(dsn string) string {
	u, err := url.Parse(dsn)
	switch {
	case dsn == "":
		return "is required: postgres://user:password@host:5432/database"
	case err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "":
		return "must be a URL such as postgres://user:password@host:5432/database"
	case len(dsn) > 2048:
		return "must be at most 2048 characters"
	}
	return ""
}

func (a *AlertConfig) validate(p string) []FieldError {
	var errs []FieldError
	fail := func(pointer, format string, args ...any) {
		errs = append(errs, FieldError{Pointer: p + pointer, Detail: fmt.Sprintf(format, args...)})
	}
	if a.Threshold < 1 || a.Threshold > 100000 {
		fail("/threshold", "must be between 1 and 100000")
	}
	if a.Threshold > 1 && (a.Window < Duration(time.Second) || a.Window > Duration(31*24*time.Hour)) {
		fail("/window", "must be between 1s and 744h when threshold is above 1")
	}
	if a.Cooldown < 0 || a.Cooldown > Duration(31*24*time.Hour) {
		fail("/cooldown", "must be between 0s and 744h")
	}
	errs = append(errs, a.Target.Validate(p+"/target")...)
	errs = append(errs, checkRetrySchedule(p+"/retrySchedule", a.RetrySchedule)...)
	return errs
}

// Templates lists the job's Jsonnet programs with their pointers.
func (w *Work) Templates() []Template {
	var list []Template
	if w.Export != nil && w.Export.Destination.JSONTemplate != "" {
		list = append(list, Template{"/export/destination/json_template", w.Export.Destination.JSONTemplate})
	}
	if w.Alert != nil && w.Alert.Target.JSONTemplate != "" {
		list = append(list, Template{"/alert/target/json_template", w.Alert.Target.JSONTemplate})
	}
	return list
}

// Redact returns a copy of w without secrets (the DSN's password, SMTP
// password, header values): what the API returns and system events
// record.
func (w *Work) Redact() *Work {
	if w == nil {
		return nil
	}
	c := *w
	if w.Export != nil {
		x := *w.Export
		x.Destination.DSN = redactDSN(x.Destination.DSN)
		x.Destination.Headers = Target{Headers: x.Destination.Headers}.Redact().Headers
		c.Export = &x
	}
	if w.Alert != nil {
		a := *w.Alert
		a.Target = a.Target.Redact()
		c.Alert = &a
	}
	return &c
}

// AuditView is what system events record of a job: its definition,
// without secrets; the runtime changes too often to be worth recording.
func (w *Work) AuditView() any {
	c := w.Redact()
	if c != nil {
		c.Runtime, c.RunNowAt = WorkRuntime{}, nil
	}
	return c
}

// workRuntimeMembers are the members of a Work that stores keep in
// columns of their own, not in its definition.
var workRuntimeMembers = []string{"id", "kind", "state", "stateReason", "runtime", "runNowAt", "createdAt", "updatedAt"}

// Definition returns what a client set of w (name, filter, export or
// alert) as JSON, as Subscription.Definition does; json.Unmarshal reads it
// back into a Work.
func (w *Work) Definition() ([]byte, error) { return definitionOf(w, workRuntimeMembers) }

// KeepSecrets puts back the secrets of old that w, sent on an update,
// left out or sent back redacted.
func (w *Work) KeepSecrets(old *Work) {
	if w.Export != nil && old.Export != nil {
		d, o := &w.Export.Destination, &old.Export.Destination
		if d.DSN != "" && d.DSN == redactDSN(o.DSN) {
			d.DSN = o.DSN
		}
		t := Target{Headers: d.Headers}
		t.KeepSecrets(Target{Headers: o.Headers})
	}
	if w.Alert != nil && old.Alert != nil {
		w.Alert.Target.KeepSecrets(old.Alert.Target)
	}
}

// redactDSN masks the password of a PostgreSQL URL.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	if _, ok := u.User.Password(); !ok {
		return dsn
	}
	return u.Redacted()
}

// PrepareCreate settles, as CreateWork stores it, where the job starts
// (the account's last seq, for a stream or batch export that starts now;
// else 0) and its times, kept to the microsecond.
func (w *Work) PrepareCreate(lastSeq int64, now time.Time) {
	w.Runtime = WorkRuntime{}
	if w.Kind == WorkAlert || (w.Export != nil && w.Export.Mode != ExportOnce && w.Export.Start == StartNow) {
		w.Runtime.Cursor = lastSeq
	}
	if w.CreatedAt.IsZero() {
		w.CreatedAt = now
	}
	w.CreatedAt = w.CreatedAt.UTC().Truncate(time.Microsecond)
	w.UpdatedAt = w.CreatedAt
}

// ChangeState moves w to state, with reason, at now, as SetWorkState
// stores it, and reports whether that changed anything. Resumed (active),
// a job has no reason, and its runtime is left as it is: a failed job
// tries its Pending cycle again. Stopped (any other state), its series of
// cycles ends (Runtime.Syncing false), so that the engine writes syncing
// again when it resumes.
func (w *Work) ChangeState(state, reason string, now time.Time) bool {
	if state == WorkActive {
		reason = ""
	}
	if w.State == state && w.StateReason == reason {
		return false
	}
	w.State, w.StateReason, w.UpdatedAt = state, reason, now.UTC().Truncate(time.Microsecond)
	if state != WorkActive {
		w.Runtime.Syncing = false
	}
	return true
}

// Schedule says when batch cycles run.
type Schedule interface {
	// Next returns the first time after t.
	Next(t time.Time) time.Time
}

// ParseCron parses a cron expression: five fields or a descriptor
// (@hourly, @daily, …), in UTC unless it starts with CRON_TZ=<zone>.
func ParseCron(spec string) (Schedule, error) {
	if len(spec) > 200 {
		return nil, fmt.Errorf("must be at most 200 characters")
	}
	parser := cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	s, err := parser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("must be a cron expression such as \"0 2 * * *\" (02:00 every day) or @daily: %v", err)
	}
	return utcSchedule{s}, nil
}

// utcSchedule reads a schedule without CRON_TZ in UTC, not in the
// server's local time zone, so that two servers agree.
type utcSchedule struct{ s cron.Schedule }

func (u utcSchedule) Next(t time.Time) time.Time {
	if sc, ok := u.s.(*cron.SpecSchedule); ok && sc.Location == time.Local {
		c := *sc
		c.Location = time.UTC
		return c.Next(t)
	}
	return u.s.Next(t)
}

// NextRun returns when the batch export x runs next after its last cycle
// started at last (zero: never ran, which is now).
func (x *ExportConfig) NextRun(last, now time.Time) time.Time {
	switch {
	case x.Mode != ExportBatch:
		return now
	case x.Cron != "":
		s, err := ParseCron(x.Cron)
		if err != nil {
			return time.Time{}
		}
		if last.IsZero() {
			last = now
		}
		return s.Next(last)
	case last.IsZero():
		return now
	default:
		return last.Add(time.Duration(x.Every))
	}
}

// WorkService stores work jobs. Each change writes its system event
// (subject type work, subject id the job's id) in the same commit.
type WorkService interface {
	// CreateWork stores w (w.ID set by the caller) with its runtime from
	// PrepareCreate.
	CreateWork(ctx context.Context, w *Work) error
	// FindWork returns ENOTFOUND if the account has no such job.
	FindWork(ctx context.Context, accountID, id string) (*Work, error)
	// FindWorks returns the account's jobs of kind ("" for all), oldest
	// first.
	FindWorks(ctx context.Context, accountID, kind string) ([]*Work, error)
	// UpdateWork replaces what a client sets (name, filter, export,
	// alert); kind, state, runtime and times are kept.
	UpdateWork(ctx context.Context, w *Work) error
	// SetWorkState pauses or resumes a job (system event updated); a
	// resumed failed job tries its cycle again.
	SetWorkState(ctx context.Context, accountID, id, state, reason string) error
	// RunWorkNow asks for a cycle now (sets RunNowAt to at).
	RunWorkNow(ctx context.Context, accountID, id string, at time.Time) error
	// DeleteWork removes the job and its history.
	DeleteWork(ctx context.Context, accountID, id string) error
	// FindWorkRecords lists the job's history, newest first.
	FindWorkRecords(ctx context.Context, accountID, id string, f WorkRecordFilter) ([]*WorkRecord, error)
}

// WorkQueue is what the work engine needs of a store.
type WorkQueue interface {
	// LeaseWork returns the active jobs of all accounts that owner holds
	// after the call, as LeaseSubscriptions.
	LeaseWork(ctx context.Context, owner string, now time.Time, ttl time.Duration, max int) ([]*Work, error)
	// ReleaseWork gives owner's leases up.
	ReleaseWork(ctx context.Context, owner string) error
	// SaveWorkProgress stores p in one commit: the runtime, a new state,
	// the records (which get their ids) and the system events. ECONFLICT
	// if p.Owner does not hold the job's lease, or the job is no longer
	// active (paused or deleted meanwhile).
	SaveWorkProgress(ctx context.Context, p *WorkProgress) error
	// LastSeq returns the account's newest seq (0 for none): where a cycle
	// that starts now ends.
	LastSeq(ctx context.Context, accountID string) (int64, error)
}
