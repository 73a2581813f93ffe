package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/parquet-go/parquet-go"

	"github.com/heraldhq/herald/notify/notifytest"
)

// These tests walk issue 7 against the real binary, the way README shows
// it: an alert to Slack when a transfer fails, an alert by email over
// STARTTLS, a nightly Parquet export, a continuous export to files that
// survives a crash, a continuous export to a PostgreSQL table, and a
// workflow that a status rule triggers.

// workInfo is a job as the API answers it.
type workInfo struct {
	ID          string `json:"id"`
	Kind        string `json:"kind"`
	State       string `json:"state"`
	StateReason string `json:"stateReason"`
	Runtime     struct {
		Cursor    int64 `json:"cursor"`
		Cycles    int64 `json:"cycles"`
		Units     int64 `json:"units"`
		Events    int64 `json:"events"`
		Firings   int64 `json:"firings"`
		Failures  int64 `json:"failures"`
		LastCycle *struct {
			State  string          `json:"state"`
			Detail json.RawMessage `json:"detail"`
		} `json:"lastCycle"`
	} `json:"runtime"`
}

func (s *server) createWork(path, body string) workInfo {
	s.t.Helper()
	var w workInfo
	if err := json.Unmarshal(s.mustDo("POST", path, []byte(body), 201), &w); err != nil {
		s.t.Fatal(err)
	}
	if w.ID == "" || w.State != "active" {
		s.t.Fatalf("POST %s answered %+v: want an id and state active", path, w)
	}
	return w
}

func (s *server) work(id string) workInfo {
	s.t.Helper()
	var w workInfo
	if err := json.Unmarshal(s.mustDo("GET", "/v1/work/"+id, nil, 200), &w); err != nil {
		s.t.Fatal(err)
	}
	return w
}

// workVerbs returns the verbs of the system events about job id, in
// order.
func (s *server) workVerbs(id string) []string {
	s.t.Helper()
	var verbs []string
	for _, e := range s.audit(map[string][]string{"subjectType": {"work"}, "subjectId": {id}}) {
		verbs = append(verbs, e.Type)
	}
	return verbs
}

func failedTransfer(id string) string {
	return fmt.Sprintf(`{"id":%q,"category":"transactions","type":"transaction","eventStatus":"failed",
		"coreCustomerId":"cust-7","data":{"external_transaction_id":%q,"amount":"250.00","currency":"EUR"}}`, id, id)
}

func TestAlertsSQLite(t *testing.T) {
	t.Parallel()
	slack := newReceiver(t)
	lytics := newReceiver(t)
	broken := newReceiver(t)
	broken.setAnswer(func(hook, int) (int, string) { return 400, "no such hook" })
	mail := notifytest.NewSMTPServer(t)
	s := startServer(t, t.TempDir(), randomKey(), "--allow-private-targets")

	// README: an alert to Slack when a transfer fails.
	alert := s.createWork("/v1/alerts", `{"name":"failed transfers",
		"filter":{"types":["transactions/transaction"],"statuses":["failed"]},
		"alert":{"target":{"kind":"slack","url":"`+slack.URL+`",
			"json_template":"{text: 'Transfer ' + event.data.external_transaction_id + ' of ' + event.data.amount + ' ' + event.data.currency + ' failed (' + event.coreCustomerId + ')'}"}}}`)
	// The Lytics Slack example, as it is, for every failed job.
	lyticsAlert := s.createWork("/v1/alerts", `{"config":{"system_event_type":"failed","webhook_url":"`+lytics.URL+`",
		"json_template":`+mustJSON(t, lyticsSlackTemplate)+`},"workflow":"webhook_system_events"}`)
	// Two failures within a minute mail the risk team, then it stays
	// quiet for an hour.
	password := mail.Password
	emailAlert := s.createWork("/v1/alerts", `{"name":"repeated failures",
		"filter":{"types":["transactions/transaction"],"statuses":["failed"]},
		"alert":{"threshold":2,"window":"1m","cooldown":"1h","target":{"kind":"email",
			"smtp":{"host":"`+mail.Host+`","port":`+fmt.Sprint(mail.Port)+`,"username":"`+mail.Username+`",
				"password":"`+password+`","tls":"starttls","insecureSkipVerify":true},
			"from":"herald@bank.example","to":["risk@bank.example"],
			"json_template":"{subject: 'Failed transfers: ' + alert.count, text: 'Last: ' + event.id}"}}}`)

	s.ingest(failedTransfer("tx-1"))
	s.ingest(`{"category":"transactions","type":"transaction","eventStatus":"approved",
		"data":{"external_transaction_id":"tx-2","amount":"1.00","currency":"EUR"}}`)
	s.ingest(failedTransfer("tx-3"))
	s.ingest(failedTransfer("tx-4"))
	s.ingest(failedTransfer("tx-5"))

	poll(t, 20*time.Second, "four Slack messages", func() bool { return slack.total() >= 4 })
	var texts []string
	for _, h := range slack.all() {
		texts = append(texts, string(h.Body))
		if h.Header.Get("webhook-signature") != "" {
			t.Errorf("a Slack message is signed: Slack takes no signature")
		}
	}
	want := []string{
		`{"text":"Transfer tx-1 of 250.00 EUR failed (cust-7)"}`,
		`{"text":"Transfer tx-3 of 250.00 EUR failed (cust-7)"}`,
		`{"text":"Transfer tx-4 of 250.00 EUR failed (cust-7)"}`,
		`{"text":"Transfer tx-5 of 250.00 EUR failed (cust-7)"}`,
	}
	if !slices.Equal(texts, want) {
		t.Errorf("Slack got %q, want %q", texts, want)
	}
	poll(t, 20*time.Second, "the alert's firings recorded", func() bool { return s.work(alert.ID).Runtime.Firings == 4 })
	if verbs := s.workVerbs(alert.ID); !slices.Equal(verbs, []string{"created", "started", "syncing", "synced", "synced", "synced", "synced"}) {
		t.Errorf("the Slack alert's system events are %v", verbs)
	}

	// One mail for the first two failures; the next two are in the
	// cooldown.
	mails := mail.Wait(t, 1)
	if m := mails[0]; m.Subject != "Failed transfers: 2" || !strings.Contains(m.Text, "Last: tx-3") ||
		m.From != "herald@bank.example" || !slices.Equal(m.To, []string{"risk@bank.example"}) {
		t.Errorf("the mail is %+v", m)
	}
	poll(t, 20*time.Second, "the suppressed failure counted", func() bool {
		var w struct {
			Runtime struct {
				Suppressed int64 `json:"suppressed"`
			} `json:"runtime"`
		}
		json.Unmarshal(s.mustDo("GET", "/v1/work/"+emailAlert.ID, nil, 200), &w)
		return w.Runtime.Suppressed == 1
	})
	if n := len(mail.Messages()); n != 1 {
		t.Errorf("%d mails sent, want 1 (the later failures are in the cooldown)", n)
	}

	// A job that fails for good writes work failed, and the Lytics
	// template turns it into a Slack text with the reason and the job.
	job := s.createWork("/v1/exports", `{"name":"to a broken partner","filter":{"origin":"api"},
		"export":{"mode":"once","destination":{"type":"webhook","url":"`+broken.URL+`"}}}`)
	poll(t, 20*time.Second, "the export failed", func() bool { return s.work(job.ID).State == "failed" })
	poll(t, 20*time.Second, "the Lytics alert posted", func() bool { return lytics.total() >= 1 })
	var got struct{ Text string }
	if err := json.Unmarshal(lytics.all()[0].Body, &got); err != nil {
		t.Fatal(err)
	}
	wantPrefix := "Alert notification: "
	wantSuffix := ". For more info go to: https://activate.getlytics.com/data/integrations/work/" + job.ID + "?aid=default"
	if !strings.HasPrefix(got.Text, wantPrefix) || !strings.HasSuffix(got.Text, wantSuffix) || !strings.Contains(got.Text, "400") {
		t.Errorf("the Lytics alert posted %q, want %q + the reason (with the 400) + %q", got.Text, wantPrefix, wantSuffix)
	}
	if verbs := s.workVerbs(job.ID); !slices.Equal(verbs, []string{"created", "started", "syncing", "failed"}) {
		t.Errorf("the failed export's system events are %v", verbs)
	}
	_ = lyticsAlert

	// The SMTP password is never shown, neither by the API nor in logs.
	for _, path := range []string{"/v1/work/" + emailAlert.ID, "/v1/alerts", "/v1/work", "/v1/audit?limit=1000"} {
		if b := s.mustDo("GET", path, nil, 200); strings.Contains(string(b), password) {
			t.Errorf("GET %s shows the SMTP password", path)
		}
	}
	if strings.Contains(s.logs.String(), password) {
		t.Error("the logs show the SMTP password")
	}
}

// mustJSON encodes v as JSON text.
func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestExportsSQLite(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	key := randomKey()
	s := startServer(t, data, key)

	// README: a nightly Parquet export, run now rather than at 02:00.
	nightly := s.createWork("/v1/exports", `{"name":"nightly","filter":{"origin":"api"},
		"export":{"mode":"batch","cron":"0 2 * * *","destination":{"type":"files","dir":"nightly","format":"parquet"}}}`)
	// A continuous export of the same events, every second, to NDJSON.
	ndjson := s.createWork("/v1/exports", `{"name":"ndjson","filter":{"origin":"api"},
		"export":{"mode":"batch","every":"1s","destination":{"type":"files","dir":"ndjson","format":"ndjson"}}}`)

	sent := map[string]bool{}
	send := func(n int) {
		for range n {
			id := fmt.Sprintf("evt-%d", len(sent)+1)
			s.ingest(`{"id":"` + id + `","category":"transfers","type":"singleTransferCreated","data":{"amount":"5.00"}}`)
			sent[id] = true
		}
	}
	send(25)
	s.mustDo("POST", "/v1/work/"+nightly.ID+"/run", nil, 202)
	poll(t, 20*time.Second, "the nightly cycle", func() bool { return s.work(nightly.ID).Runtime.Cycles == 1 })
	files, _ := filepath.Glob(filepath.Join(data, "exports", "nightly", "*.parquet"))
	if len(files) != 1 {
		t.Fatalf("the nightly export wrote %v, want one Parquet file", files)
	}
	if n := parquetRows(t, files[0]); n != 25 {
		t.Errorf("the Parquet file has %d rows, want 25", n)
	}
	if verbs := s.workVerbs(nightly.ID); !slices.Equal(verbs, []string{"created", "started", "syncing", "synced", "synccomplete"}) {
		t.Errorf("the nightly export's system events are %v", verbs)
	}

	// A crash between cycles and a restart: every event is exported once.
	poll(t, 20*time.Second, "the first 25 in NDJSON", func() bool { return s.work(ndjson.ID).Runtime.Events >= 25 })
	send(10)
	s.kill()
	s = startServer(t, data, key)
	send(15)
	poll(t, 30*time.Second, "all 50 in NDJSON", func() bool { return s.work(ndjson.ID).Runtime.Events == 50 })
	got := map[string]int{}
	files, _ = filepath.Glob(filepath.Join(data, "exports", "ndjson", "*.ndjson"))
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			var e struct{ ID string }
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			got[e.ID]++
		}
		fh.Close()
	}
	for id := range sent {
		if got[id] != 1 {
			t.Errorf("event %s was exported %d times, want once", id, got[id])
		}
	}
	if len(got) != len(sent) {
		t.Errorf("the NDJSON files hold %d events, want %d", len(got), len(sent))
	}

	// The job's history has its cycles, newest first.
	var page struct {
		Records []struct {
			Kind   string `json:"kind"`
			State  string `json:"state"`
			Events int64  `json:"events"`
		} `json:"records"`
	}
	if err := json.Unmarshal(s.mustDo("GET", "/v1/work/"+ndjson.ID+"/history", nil, 200), &page); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, r := range page.Records {
		if r.Kind != "cycle" || r.State != "succeeded" {
			t.Errorf("a record is %+v", r)
		}
		total += r.Events
	}
	if total != 50 {
		t.Errorf("the history counts %d events, want 50", total)
	}
}

// parquetRows opens a Parquet file with the library and returns its rows.
func parquetRows(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		t.Fatalf("%s is not a Parquet file: %v", path, err)
	}
	return pf.NumRows()
}

// postgresTestSchema returns HERALD_TEST_POSTGRES and a fresh schema in
// it, dropped when the test ends, or skips the test when it is unset.
func postgresTestSchema(t *testing.T) (base, schema string) {
	t.Helper()
	u, err := url.Parse(postgresTestURL(t)) // makes the schema, as search_path
	if err != nil {
		t.Fatal(err)
	}
	return os.Getenv("HERALD_TEST_POSTGRES"), u.Query().Get("search_path")
}

// README: a continuous export to a PostgreSQL table, here from a server on
// SQLite; the table is created, and each event is one row however often
// a cycle runs.
func TestExportToPostgresTable(t *testing.T) {
	t.Parallel()
	base, schema := postgresTestSchema(t)
	s := startServer(t, t.TempDir(), randomKey(), "--allow-private-targets")
	table := schema + ".herald_events"
	job := s.createWork("/v1/exports", `{"name":"warehouse","filter":{"origin":"api"},
		"export":{"mode":"batch","every":"1s","batchSize":7,"destination":{"type":"postgres","dsn":`+mustJSON(t, base)+`,"table":"`+table+`"}}}`)
	for i := range 20 {
		s.ingest(failedTransfer(fmt.Sprintf("tx-%02d", i)))
	}
	poll(t, 30*time.Second, "20 rows exported", func() bool { return s.work(job.ID).Runtime.Events == 20 })

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows, distinct int
	var amount string
	err = conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT id), min(data->>'amount') FROM `+table).Scan(&rows, &distinct, &amount)
	if err != nil {
		t.Fatal(err)
	}
	if rows != 20 || distinct != 20 || amount != "250.00" {
		t.Errorf("the table has %d rows, %d distinct ids, amount %q; want 20, 20, 250.00", rows, distinct, amount)
	}
	if w := s.work(job.ID); w.Runtime.Units < 3 {
		t.Errorf("%d units for 20 events by 7, want at least 3", w.Runtime.Units)
	}
}

// README: a workflow that an event type's status rule triggers: a failed
// transaction calls the risk team's webhook and marks the customer.
func workflowByStatusRule(t *testing.T, nodes int, args ...string) {
	risk := newReceiver(t)
	data := t.TempDir()
	key := randomKey()
	servers := []*server{startServer(t, data, key, append([]string{"--allow-private-targets"}, args...)...)}
	for range nodes - 1 {
		servers = append(servers, startServer(t, t.TempDir(), key, append([]string{"--allow-private-targets"}, args...)...))
	}
	s := servers[0]
	s.mustDo("POST", "/v1/workflows", []byte(`{"name":"notify-risk","steps":[
		{"name":"call-risk","kind":"webhook","url":"`+risk.URL+`",
		 "json_template":"{transaction: event.data.external_transaction_id, customer: event.coreCustomerId}"},
		{"name":"flag","kind":"setAttributes","input":"{attributes: {risk_flag: 'failed ' + event.data.external_transaction_id}}"}]}`), 201)
	// The built-in transaction type, with failed naming the workflow.
	var tx map[string]any
	if err := json.Unmarshal(s.mustDo("GET", "/v1/event-types/transactions/transaction", nil, 200), &tx); err != nil {
		t.Fatal(err)
	}
	for _, st := range tx["statuses"].([]any) {
		if st := st.(map[string]any); st["name"] == "failed" {
			st["workflows"] = []string{"notify-risk"}
		}
	}
	for _, k := range []string{"builtIn", "createdAt", "updatedAt", "schemaName"} {
		delete(tx, k)
	}
	s.mustDo("PUT", "/v1/event-types/transactions/transaction", []byte(mustJSON(t, tx)), 200)

	const n = 12
	for i := range n {
		servers[i%len(servers)].ingest(failedTransfer(fmt.Sprintf("tx-%02d", i)))
	}
	s.ingest(`{"category":"transactions","type":"transaction","eventStatus":"approved",
		"data":{"external_transaction_id":"ok-1","amount":"1.00","currency":"EUR"}}`)
	poll(t, 40*time.Second, "every run completed", func() bool {
		var page struct {
			Runs []struct {
				State string `json:"state"`
			} `json:"runs"`
		}
		json.Unmarshal(s.mustDo("GET", "/v1/workflows/notify-risk/runs?state=completed", nil, 200), &page)
		return len(page.Runs) == n
	})
	var secret struct{ Secret string }
	if err := json.Unmarshal(s.mustDo("GET", "/v1/workflows/notify-risk/secret", nil, 200), &secret); err != nil {
		t.Fatal(err)
	}
	risk.checkSigned(t, secret.Secret)
	for id, c := range risk.idCounts() {
		if c != 1 {
			t.Errorf("webhook-id %s came %d times, want once: each run calls once", id, c)
		}
	}
	if risk.total() != n {
		t.Errorf("the risk team got %d calls, want %d (the approved one runs nothing)", risk.total(), n)
	}

	var run struct {
		ID    string `json:"id"`
		State string `json:"state"`
		Steps []struct {
			Name   string          `json:"name"`
			State  string          `json:"state"`
			Output json.RawMessage `json:"output"`
		} `json:"steps"`
	}
	var page struct {
		Runs []json.RawMessage `json:"runs"`
	}
	json.Unmarshal(s.mustDo("GET", "/v1/workflows/notify-risk/runs?limit=1", nil, 200), &page)
	if err := json.Unmarshal(page.Runs[0], &run); err != nil {
		t.Fatal(err)
	}
	if len(run.Steps) != 2 || run.Steps[0].State != "succeeded" || !strings.Contains(string(run.Steps[0].Output), `"status":200`) {
		t.Errorf("the run's steps are %+v", run.Steps)
	}
	var profile struct {
		Attributes map[string]struct {
			Value json.RawMessage `json:"value"`
		} `json:"attributes"`
	}
	json.Unmarshal(s.mustDo("GET", "/v1/profiles/cust-7", nil, 200), &profile)
	if v := string(profile.Attributes["risk_flag"].Value); !strings.HasPrefix(v, `"failed tx-`) {
		t.Errorf("the profile's risk_flag is %s", v)
	}
	var verbs []string
	for _, e := range s.audit(map[string][]string{"subjectType": {"workflow"}, "verb": {"completed"}}) {
		verbs = append(verbs, e.Type)
	}
	if len(verbs) != n {
		t.Errorf("%d workflow completed system events, want %d", len(verbs), n)
	}
	_ = http.StatusOK
}

func TestWorkflowByStatusRuleSQLite(t *testing.T) {
	t.Parallel()
	workflowByStatusRule(t, 1)
}

// Two servers on one PostgreSQL database: each run is performed once.
func TestWorkflowByStatusRulePostgres(t *testing.T) {
	t.Parallel()
	workflowByStatusRule(t, 2, "--db", postgresTestURL(t))
}
