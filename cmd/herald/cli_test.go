package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cli runs `herald args… --url … --key …` against s.
func (s *server) cli(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return runHerald(t, append(args, "--url", s.URL, "--key", s.Key)...)
}

// customerEvent is an apiEvent with its customer.
type customerEvent struct {
	apiEvent
	CoreCustomerID string `json:"coreCustomerId"`
}

// customerEvents is eventList with each event's coreCustomerId.
func (s *server) customerEvents(path string) []customerEvent {
	s.t.Helper()
	var page struct {
		Events []customerEvent `json:"events"`
	}
	if err := json.Unmarshal(s.mustDo("GET", path, nil, 200), &page); err != nil {
		s.t.Fatal(err)
	}
	return page.Events
}

// importSummaryOf decodes the --json summary of herald import.
func importSummaryOf(t *testing.T, stdout string) importSummary {
	t.Helper()
	var sum importSummary
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
		t.Fatalf("import summary %q: %v", stdout, err)
	}
	return sum
}

func TestCLIImportNDJSONWithBadLinesResumes(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), randomKey())
	dir := t.TempDir()
	path := filepath.Join(dir, "events.ndjson")
	var b strings.Builder
	for i := 1; i <= 50; i++ {
		switch i {
		case 7: // not JSON: refused before sending
			b.WriteString(`{"category":"imports", this is not json` + "\n")
		case 30: // refused by the server: not a status of the type
			b.WriteString(`{"category":"transactions","type":"transaction","eventStatus":"settled","data":{"external_transaction_id":"tx-30","amount":"1.00","currency":"EUR"}}` + "\n")
		case 12: // a line with its own id keeps it
			b.WriteString(`{"id":"own-12","category":"imports","type":"row","coreCustomerId":"cust-12"}` + "\n")
		default:
			fmt.Fprintf(&b, `{"category":"imports","type":"row","coreCustomerId":"cust-%d","data":{"n":%d}}`+"\n", i, i)
		}
		if i == 20 {
			b.WriteString("\n") // blank lines are skipped but counted
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	stdout, stderr, code := s.cli(t, "import", path, "--batch", "8", "--concurrency", "3")
	if code != 1 {
		t.Fatalf("import with 2 bad lines: exit %d, want 1\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{"created    48", "duplicate  0", "failed     2 (see " + path + ".failed)", "events/s"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the summary lacks %q:\n%s", want, stdout)
		}
	}
	if want := "2 of 50 events failed; see " + path + ".failed"; !strings.Contains(stderr, want) {
		t.Errorf("stderr lacks %q: %s", want, stderr)
	}
	ids := s.allEventIDs()
	if len(ids) != 48 {
		t.Fatalf("%d events stored, want 48", len(ids))
	}
	if _, ok := ids["own-12"]; !ok {
		t.Error("the line with an id was not stored under it")
	}

	failed := readFailed(t, path+".failed")
	if len(failed) != 2 {
		t.Fatalf("failed file has %d lines, want 2: %+v", len(failed), failed)
	}
	byLine := map[int]failedLine{}
	for _, f := range failed {
		byLine[f.Line] = f
	}
	if f, ok := byLine[7]; !ok || !strings.Contains(f.Error, "not a JSON object") ||
		string(f.Input) != `"{\"category\":\"imports\", this is not json"` {
		t.Errorf("failed line 7 = %+v (input %s)", f, f.Input)
	}
	// Line 30 of the file is the 31st line: the blank one after 20 counts.
	if f, ok := byLine[31]; !ok || !strings.Contains(f.Error, `/eventStatus: "settled" is not a status`) ||
		strings.Contains(f.Error, "/events/") || !strings.Contains(string(f.Input), `"tx-30"`) {
		t.Errorf("failed line 31 = %+v (input %s); lines: %+v", f, f.Input, byLine)
	}

	// The same import again stores nothing twice.
	stdout, stderr, code = s.cli(t, "import", path, "--json", "--batch", "5")
	sum := importSummaryOf(t, stdout)
	if code != 1 || sum.Created != 0 || sum.Duplicate != 48 || sum.Failed != 2 {
		t.Fatalf("re-run: exit %d, %+v, want 0 created, 48 duplicate, 2 failed: %s", code, sum, stderr)
	}
	if n := len(s.allEventIDs()); n != 48 {
		t.Fatalf("%d events stored after the re-run, want 48", n)
	}
	if n := len(readFailed(t, path+".failed")); n != 2 {
		t.Fatalf("the re-run's failed file has %d lines, want 2", n)
	}
}

func readFailed(t *testing.T, path string) []failedLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []failedLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l failedLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("failed file line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}

func TestCLIImportJSONArray(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), randomKey())
	path := filepath.Join(t.TempDir(), "events.json")
	body := `[
  {"category":"imports","type":"array","primaryId":"a1"},
  {"category":"imports","type":"array","primaryId":"a2","seq":3},
  {"category":"imports","type":"array","primaryId":"a3"}
]`
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := s.cli(t, "import", path, "--json")
	sum := importSummaryOf(t, stdout)
	if code != 1 || sum.Created != 2 || sum.Failed != 1 {
		t.Fatalf("exit %d, %+v: %s", code, sum, stderr)
	}
	failed := readFailed(t, path+".failed")
	if len(failed) != 1 || failed[0].Line != 2 || !strings.Contains(failed[0].Error, "/seq: is set by the server") {
		t.Fatalf("failed = %+v", failed)
	}
}

func TestCLIImportCSVWithMap(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), randomKey())
	path := filepath.Join(t.TempDir(), "logins.csv")
	csv := "category,type,user,amount,ok,note,city\n" +
		"imports,csv,cust-1,12.50,true,skip me,Paris\n" +
		"imports,csv,cust-2,not a number,false,skip me,Rome\n" +
		"imports,csv,cust-3,7,,,\"Saint-Denis, Réunion\"\n"
	if err := os.WriteFile(path, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := s.cli(t, "import", path, "--json",
		"--map", "user=coreCustomerId,amount=data.amount:number", "--map", "ok=data.flags.ok:bool,note=-")
	sum := importSummaryOf(t, stdout)
	if code != 1 || sum.Created != 2 || sum.Failed != 1 {
		t.Fatalf("exit %d, %+v: %s", code, sum, stderr)
	}
	failed := readFailed(t, path+".failed")
	if len(failed) != 1 || failed[0].Line != 3 || failed[0].Error != `column amount: "not a number" is not a number` ||
		!strings.Contains(string(failed[0].Input), `"city":"Rome"`) {
		t.Fatalf("failed = %+v", failed)
	}

	got := map[string]string{}
	for _, e := range s.customerEvents("/v1/events?type=csv") {
		got[e.CoreCustomerID] = string(e.Data)
	}
	want := map[string]string{
		"cust-1": `{"amount":12.50,"city":"Paris","flags":{"ok":true}}`,
		"cust-3": `{"amount":7,"city":"Saint-Denis, Réunion"}`,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("stored data = %v, want %v", got, want)
	}

	// A map to a column the file lacks names the columns it has.
	_, stderr, code = s.cli(t, "import", path, "--map", "usr=coreCustomerId")
	if code != 1 || !strings.Contains(stderr, `the CSV has no column "usr" (its columns: category, type, user`) {
		t.Fatalf("--map usr: exit %d: %s", code, stderr)
	}
}

func TestCLISend(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), randomKey())

	stdout, stderr, code := s.cli(t, "send", "--category", "authentication", "--type", "userLoggedIn",
		"--id", "login-cli", "--customer", "cust-42", "--data", `{"browser":"firefox"}`)
	if code != 0 || !strings.Contains(stdout, "created  login-cli") || !strings.Contains(stdout, "SESSION") {
		t.Fatalf("send from flags: exit %d: %s%s", code, stdout, stderr)
	}
	e := s.customerEvents("/v1/events?coreCustomerId=cust-42&origin=api")
	if len(e) != 1 || e[0].ID != "login-cli" || e[0].SessionID == "" || string(e[0].Data) != `{"browser":"firefox"}` {
		t.Fatalf("stored: %+v", e)
	}

	envelope := `{"id":"login-cli","category":"authentication","type":"userLoggedIn","coreCustomerId":"cust-42","data":{"browser":"firefox"}}`
	stdout, stderr, code = s.cli(t, "send", "--json", envelope)
	var r sendOutput
	if err := json.Unmarshal([]byte(stdout), &r); code != 0 || err != nil || !r.Duplicate || r.ID != "login-cli" || r.Seq != e[0].Seq {
		t.Fatalf("send --json of the same event: exit %d, %+v (%v): %s%s", code, r, err, stdout, stderr)
	}
	stdout, stderr, code = s.cli(t, "send", "--json", `{"category":"accounts","type":"balanceViewed","sessionId":"`+e[0].SessionID+`"}`)
	r = sendOutput{}
	if err := json.Unmarshal([]byte(stdout), &r); code != 0 || err != nil || r.Duplicate || r.ID == "" || r.Seq <= e[0].Seq {
		t.Fatalf("send --json of a new event: exit %d, %+v (%v): %s%s", code, r, err, stdout, stderr)
	}
}

func TestCLIAPIErrorPrintsPointers(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), randomKey())
	stdout, stderr, code := s.cli(t, "send", "--category", "transactions", "--type", "transaction",
		"--status", "settled", "--data", `{"external_transaction_id":"tx-1","amount":"12,50"}`)
	if code != 1 || stdout != "" {
		t.Fatalf("send of an invalid event: exit %d, stdout %q", code, stdout)
	}
	for _, want := range []string{
		"error: ",
		"\n  /data/amount: pattern: \"12,50\" does not match",
		"\n  /data/currency: required: missing property \"currency\"",
		"\n  /eventStatus: \"settled\" is not a status of transactions/transaction",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "herald:") {
		t.Errorf("the error is printed twice:\n%s", stderr)
	}

	// A misspelt field is named before anything is sent, the same way.
	_, stderr, code = s.cli(t, "send", "--json", `{"categroy":"a","type":"b"}`)
	if code != 1 || !strings.Contains(stderr, "\n  /categroy: unknown field") {
		t.Fatalf("send of a misspelt field: exit %d: %s", code, stderr)
	}
	// So is a key the server refuses.
	_, stderr, code = runHerald(t, "events", "list", "--url", s.URL, "--key", "hk_wrong_0123456789abcdef")
	if code != 1 || !strings.HasPrefix(stderr, "error: ") {
		t.Fatalf("a wrong key: exit %d: %s", code, stderr)
	}
}

func TestCLITailReceivesNewEvents(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), randomKey())
	s.mustDo("POST", "/v1/events", []byte(`{"id":"before-tail","category":"tail","type":"old"}`), 201)

	tail := exec.Command(heraldBin, "events", "tail", "--json", "--categories", "tail", "--url", s.URL, "--key", s.Key)
	out, errOut := &syncBuffer{}, &syncBuffer{}
	tail.Stdout, tail.Stderr = out, errOut
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = tail.Wait(); close(exited) }()
	t.Cleanup(func() {
		tail.Process.Kill()
		<-exited
	})

	// The tail starts with the next event stored, and says nothing until
	// then, so send one event after another until it prints one.
	n := 0
	poll(t, 15*time.Second, "herald events tail printing an event sent after it started", func() bool {
		if strings.Contains(out.String(), `"id":"after-tail-`) {
			return true
		}
		n++
		s.mustDo("POST", "/v1/events", fmt.Appendf(nil, `{"id":"after-tail-%d","category":"tail","type":"new"}`, n), 201)
		s.mustDo("POST", "/v1/events", fmt.Appendf(nil, `{"id":"other-%d","category":"elsewhere","type":"new"}`, n), 201)
		return false
	})
	if err := tail.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("tail ended with %v after Ctrl-C: %s", waitErr, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tail did not end within 10 s of Ctrl-C")
	}
	for line := range strings.Lines(strings.TrimSpace(out.String())) {
		var e apiEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("tail printed %q: %v", line, err)
		}
		if e.Category != "tail" || e.Type != "new" || e.Seq == 0 {
			t.Errorf("tail printed %+v: the filter or the start is wrong", e)
		}
	}
}

func TestCLIManagement(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), randomKey())
	dir := t.TempDir()

	stdout, stderr, code := s.cli(t, "types", "list")
	if code != 0 || !strings.Contains(stdout, "authentication/login") || !strings.Contains(stdout, "attempted,succeeded,failed") {
		t.Fatalf("types list: exit %d: %s%s", code, stdout, stderr)
	}
	stdout, _, code = s.cli(t, "types", "get", "transactions/transaction", "--json")
	var et struct{ Category, Type string }
	if err := json.Unmarshal([]byte(stdout), &et); code != 0 || err != nil || et.Type != "transaction" {
		t.Fatalf("types get: exit %d (%v): %s", code, err, stdout)
	}

	sub := filepath.Join(dir, "sub.json")
	os.WriteFile(sub, []byte(`{"name":"risk partner","url":"https://partner.example/hooks/herald","filter":{"types":["single*"]}}`), 0o600)
	stdout, stderr, code = s.cli(t, "subscriptions", "create", "--file", sub, "--json")
	var created struct{ ID, Secret string }
	if err := json.Unmarshal([]byte(stdout), &created); code != 0 || err != nil || created.ID == "" || !strings.HasPrefix(created.Secret, "whsec_") {
		t.Fatalf("subscriptions create: exit %d (%v): %s%s", code, err, stdout, stderr)
	}
	stdout, _, code = s.cli(t, "subscriptions", "list")
	if code != 0 || !strings.Contains(stdout, created.ID) || !strings.Contains(stdout, "risk partner") || !strings.Contains(stdout, "active") {
		t.Fatalf("subscriptions list: exit %d: %s", code, stdout)
	}
	stdout, _, code = s.cli(t, "subscriptions", "pause", created.ID)
	if code != 0 || !strings.Contains(stdout, "paused (state paused)") {
		t.Fatalf("subscriptions pause: exit %d: %s", code, stdout)
	}
	// A body the server refuses names the field.
	os.WriteFile(sub, []byte(`{"name":"x","url":"https://partner.example/","filtr":{}}`), 0o600)
	_, stderr, code = s.cli(t, "subscriptions", "create", "--file", sub)
	if code != 1 || !strings.Contains(stderr, "\n  /filtr: ") {
		t.Fatalf("subscriptions create with a misspelt field: exit %d: %s", code, stderr)
	}

	stdout, stderr, code = s.cli(t, "keys", "create", "--name", "ingest-app", "--scopes", "ingest,read", "--json")
	var key struct {
		ID, Secret string
		Scopes     []string
	}
	if err := json.Unmarshal([]byte(stdout), &key); code != 0 || err != nil || key.Secret == "" || len(key.Scopes) != 2 {
		t.Fatalf("keys create: exit %d (%v): %s%s", code, err, stdout, stderr)
	}
	// The new key works with the CLI.
	if out, errs, code := runHerald(t, "send", "--category", "keys", "--type", "tried", "--url", s.URL, "--key", key.Secret); code != 0 {
		t.Fatalf("send with the new key: exit %d: %s%s", code, out, errs)
	}
	stdout, _, code = s.cli(t, "keys", "list")
	if code != 0 || !strings.Contains(stdout, key.ID) || !strings.Contains(stdout, "ingest-app") || !strings.Contains(stdout, "ingest,read") {
		t.Fatalf("keys list: exit %d: %s", code, stdout)
	}
	stdout, _, code = s.cli(t, "keys", "delete", key.ID)
	if code != 0 || !strings.Contains(stdout, "key "+key.ID+" deleted") {
		t.Fatalf("keys delete: exit %d: %s", code, stdout)
	}
	stdout, _, _ = s.cli(t, "keys", "list", "--json")
	if strings.Contains(stdout, key.ID) || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("keys list --json after the delete:\n%s", stdout)
	}

	stdout, _, code = s.cli(t, "events", "list", "--origin", "system", "--limit", "3", "--json")
	if code != 0 || strings.Count(stdout, "\n") != 3 || !strings.Contains(stdout, `"origin":"system"`) {
		t.Fatalf("events list --limit 3 --json: exit %d:\n%s", code, stdout)
	}
}

func TestCLIAuditVerifyUsesClient(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), randomKey())
	stdout, stderr, code := s.cli(t, "audit", "verify", "--json")
	var r auditReport
	if err := json.Unmarshal([]byte(stdout), &r); code != 0 || err != nil || !r.Verified || r.Checked == 0 {
		t.Fatalf("audit verify --json: exit %d, %+v (%v): %s", code, r, err, stderr)
	}
	_, stderr, code = runHerald(t, "audit", "verify", "--url", s.URL, "--key", "hk_wrong_0123456789abcdef")
	if code != 1 || !strings.HasPrefix(stderr, "error: ") {
		t.Fatalf("audit verify with a wrong key: exit %d: %s", code, stderr)
	}
}

func TestCompletionBash(t *testing.T) {
	t.Parallel()
	stdout, stderr, code := runHerald(t, "completion", "bash")
	if code != 0 || !strings.Contains(stdout, "bash completion") || !strings.Contains(stdout, "__start_herald") {
		t.Fatalf("herald completion bash: exit %d: %.300s%s", code, stdout, stderr)
	}
	// Completion knows the commands.
	stdout, _, code = runHerald(t, "__complete", "sub")
	if code != 0 || !strings.Contains(stdout, "subscriptions") {
		t.Fatalf("herald __complete sub: exit %d: %s", code, stdout)
	}
}
