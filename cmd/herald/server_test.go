package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/lockedbuf"
)

// heraldBin is the real binary, built once by TestMain: these tests run
// Herald as a user does, as a separate process.
var heraldBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "herald-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	heraldBin = filepath.Join(dir, "herald")
	build := exec.Command("go", "build", "-o", heraldBin, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build herald:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is one `herald serve` process under test.
type server struct {
	t      *testing.T
	cmd    *exec.Cmd
	URL    string
	Key    string
	stdout *syncBuffer
	logs   *syncBuffer
	exited chan struct{}
}

// syncBuffer collects output while the test reads it.
type syncBuffer = lockedbuf.Buffer

var listenLine = regexp.MustCompile(`herald is listening"? addr=(http://[0-9.:]+)`)

// startServer runs `herald serve` on a free port with the given data
// folder and extra arguments, and waits until /healthz answers.
func startServer(t *testing.T, dataDir, key string, args ...string) *server {
	t.Helper()
	s := &server{t: t, Key: key, stdout: &syncBuffer{}, logs: &syncBuffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(heraldBin, append([]string{"serve", "--addr", "127.0.0.1:0", "--data", dataDir}, args...)...)
	s.cmd.Env = append(os.Environ(), "HERALD_BOOTSTRAP_KEY="+key)
	if key == "" {
		s.cmd.Env = append(os.Environ(), "HERALD_BOOTSTRAP_KEY=")
	}
	s.cmd.Stdout = s.stdout
	s.cmd.Stderr = s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(s.kill)
	deadline := time.Now().Add(30 * time.Second)
	for s.URL == "" {
		if m := listenLine.FindStringSubmatch(s.logs.String()); m != nil {
			s.URL = m[1]
			break
		}
		select {
		case <-s.exited:
			t.Fatalf("herald serve exited early: %s", s.logs.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("herald serve did not start within 30 s: %s", s.logs.String())
		}
	}
	for {
		resp, err := http.Get(s.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz did not answer 200 within 30 s (last error %v): %s", err, s.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill ends the process with SIGKILL, as a crash would.
func (s *server) kill() {
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// do sends a request with the server's key and returns status and body.
func (s *server) do(method, path, contentType string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(method, s.URL+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.Key)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// mustDo is do that fails the test on a transport error or an unexpected
// status.
func (s *server) mustDo(method, path string, body []byte, want int) []byte {
	s.t.Helper()
	code, b, err := s.do(method, path, "application/json", body)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	if code != want {
		s.t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, b)
	}
	return b
}

// allEventIDs pages through every event the key's account was sent (not
// Herald's own system events).
func (s *server) allEventIDs() map[string]int64 { return s.eventIDs("api") }

// eventIDs pages through the key's account's events of origin, or all of
// them when origin is empty.
func (s *server) eventIDs(origin string) map[string]int64 {
	s.t.Helper()
	ids := map[string]int64{}
	next := ""
	for {
		path := "/v1/events?limit=1000"
		if origin != "" {
			path += "&origin=" + origin
		}
		if next != "" {
			path += "&next=" + next
		}
		var page struct {
			Events []struct {
				ID  string `json:"id"`
				Seq int64  `json:"seq"`
			} `json:"events"`
			Next    string `json:"next"`
			HasMore bool   `json:"hasMore"`
		}
		if err := json.Unmarshal(s.mustDo("GET", path, nil, 200), &page); err != nil {
			s.t.Fatal(err)
		}
		for _, e := range page.Events {
			ids[e.ID] = e.Seq
		}
		next = page.Next
		if !page.HasMore {
			return ids
		}
	}
}

func randomKey() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "hk_test_" + hex.EncodeToString(b)
}

func TestFirstStartGeneratesBootstrapKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServer(t, dir, "")
	path := filepath.Join(dir, "bootstrap.key")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("bootstrap.key: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("bootstrap.key mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	s.Key = strings.TrimSpace(string(b))
	if !strings.Contains(s.stdout.String(), s.Key) {
		t.Fatalf("the generated key was not printed; stdout: %q", s.stdout.String())
	}
	if strings.Contains(s.logs.String(), s.Key) {
		t.Fatal("the generated key appears in the logs")
	}
	s.mustDo("POST", "/v1/events", []byte(`{"id":"first","category":"authentication","type":"userLoggedIn"}`), 201)
	s.mustDo("GET", "/v1/events/first", nil, 200)

	// A second start neither prints nor changes the key.
	s.kill()
	s2 := startServer(t, dir, "")
	s2.Key = s.Key
	if strings.Contains(s2.stdout.String(), "hk_") {
		t.Fatalf("the second start printed a key: %q", s2.stdout.String())
	}
	s2.mustDo("GET", "/v1/events/first", nil, 200)
}

func TestBadDBSchemeNamesTheFix(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(heraldBin, "serve", "--data", t.TempDir(), "--db", "mysql://localhost/x").CombinedOutput()
	if err == nil {
		t.Fatal("herald serve with a mysql URL succeeded")
	}
	if !strings.Contains(string(out), `--db: unsupported scheme "mysql" (use a file path or postgres://`) {
		t.Fatalf("output does not name the fix: %s", out)
	}
}

func TestHelpDescribesFlags(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(heraldBin, "serve", "--help").CombinedOutput()
	if err != nil {
		t.Fatal(err, string(out))
	}
	for _, want := range []string{"--addr", "HERALD_ADDR", "--data", "HERALD_DATA", "--db", "HERALD_DB"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("herald serve --help lacks %q", want)
		}
	}
}

// TestEnvironmentConfiguresServe checks that HERALD_ADDR and HERALD_DB are
// read when no flag is given.
func TestEnvironmentConfiguresServe(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(heraldBin, "serve", "--data", t.TempDir())
	cmd.Env = append(os.Environ(), "HERALD_DB=mysql://nowhere")
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), `unsupported scheme "mysql"`) {
		t.Fatalf("HERALD_DB was not read: %s", out)
	}
}

// sendLoad runs clients that send single and batched events until stop is
// closed, and returns the ids the server acknowledged with a 2xx.
func sendLoad(s *server, clients int, stop <-chan struct{}, count *atomic.Int64) (acked map[string]bool) {
	var mu sync.Mutex
	acked = map[string]bool{}
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var ids []string
				var code int
				var err error
				if i%2 == 0 {
					id := fmt.Sprintf("c%d-%d", c, i)
					ids = []string{id}
					code, _, err = s.do("POST", "/v1/events", "application/json",
						[]byte(fmt.Sprintf(`{"id":%q,"category":"transfers","type":"singleTransferCreated","coreCustomerId":"cust-%d","data":{"amount":"%d.00"}}`, id, c, i)))
				} else {
					var lines []string
					for j := range 10 {
						id := fmt.Sprintf("c%d-%d-%d", c, i, j)
						ids = append(ids, id)
						lines = append(lines, fmt.Sprintf(`{"id":%q,"category":"authentication","type":"userLoggedIn"}`, id))
					}
					code, _, err = s.do("POST", "/v1/events/batch", "application/x-ndjson", []byte(strings.Join(lines, "\n")))
				}
				if err != nil || code/100 != 2 {
					// The server died mid-request: nothing was promised.
					continue
				}
				mu.Lock()
				for _, id := range ids {
					acked[id] = true
				}
				mu.Unlock()
				count.Add(int64(len(ids)))
			}
		}()
	}
	wg.Wait()
	return acked
}

// crashAndRecover kills the server with SIGKILL while clients are sending,
// restarts it on the same data and checks that every acknowledged event is
// there.
func crashAndRecover(t *testing.T, dataDir string, args ...string) {
	key := randomKey()
	s := startServer(t, dataDir, key, args...)
	stop := make(chan struct{})
	done := make(chan map[string]bool)
	var count atomic.Int64
	go func() { done <- sendLoad(s, 16, stop, &count) }()

	// Let load build up, then crash mid-stream.
	deadline := time.Now().Add(30 * time.Second)
	for count.Load() < 2000 {
		if time.Now().After(deadline) {
			close(stop)
			<-done
			t.Fatalf("only %d events acknowledged within 30 s", count.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.kill()
	close(stop)
	acked := <-done
	if len(acked) == 0 {
		t.Fatal("no event was acknowledged before the crash")
	}

	s2 := startServer(t, dataDir, key, args...)
	stored := s2.eventIDs("")
	var missing []string
	for id := range acked {
		if _, ok := stored[id]; !ok {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d acknowledged events are missing after the crash, e.g. %v", len(missing), len(acked), missing[:min(5, len(missing))])
	}
	// Seqs stay gapless across the crash: the stored events, Herald's
	// system events among them, hold exactly the seqs 1..n, each once.
	seqs := make([]bool, len(stored)+1)
	for id, seq := range stored {
		if seq < 1 || seq > int64(len(stored)) {
			t.Fatalf("seq %d out of 1..%d: a gap", seq, len(stored))
		}
		if seqs[seq] {
			t.Fatalf("seq %d is held by two events (one is %s)", seq, id)
		}
		seqs[seq] = true
	}
	logsHaveNoKey(t, s2)
	t.Logf("%d acknowledged, %d stored after SIGKILL and restart", len(acked), len(stored))
}

func TestCrashLosesNothingSQLite(t *testing.T) {
	t.Parallel()
	crashAndRecover(t, t.TempDir())
}

func TestCrashLosesNothingPostgres(t *testing.T) {
	t.Parallel()
	url := postgresTestURL(t)
	crashAndRecover(t, t.TempDir(), "--db", url)
}

// logsHaveNoKey is checked by tests that see a key: no secret in a log line.
func logsHaveNoKey(t *testing.T, s *server) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(s.logs.String()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), s.Key) {
			t.Fatalf("a log line holds the API key: %s", sc.Text())
		}
	}
}

// TestSIGTERMShutsDownGracefully checks that SIGTERM ends the server with
// exit status 0 after closing the store, and that what was acknowledged
// before is there on the next start.
func TestSIGTERMShutsDownGracefully(t *testing.T) {
	t.Parallel()
	dir, key := t.TempDir(), randomKey()
	s := startServer(t, dir, key)
	s.mustDo("POST", "/v1/events", []byte(`{"id":"before-term","category":"authentication","type":"userLoggedIn"}`), 201)
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("herald serve did not exit within 30 s of SIGTERM: %s", s.logs.String())
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0: %s", code, s.logs.String())
	}
	if !strings.Contains(s.logs.String(), "msg=stopped") {
		t.Fatalf("no 'stopped' log line after SIGTERM: %s", s.logs.String())
	}
	s2 := startServer(t, dir, key)
	s2.mustDo("GET", "/v1/events/before-term", nil, 200)
}

// TestAccountsAreIsolated creates a second account with the bootstrap key
// and checks, on the real server and store, that the two accounts may use
// the same event id and never see each other's events.
func TestAccountsAreIsolated(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), randomKey())
	var created struct {
		Account struct{ ID string } `json:"account"`
		Key     struct {
			Secret string `json:"secret"`
		} `json:"key"`
	}
	if err := json.Unmarshal(s.mustDo("POST", "/v1/accounts", []byte(`{"id":"acme","name":"Acme Bank"}`), 201), &created); err != nil {
		t.Fatal(err)
	}
	acme := &server{t: t, URL: s.URL, Key: created.Key.Secret}
	if created.Account.ID != "acme" || acme.Key == "" {
		t.Fatalf("POST /v1/accounts answered %+v", created)
	}
	// Only the bootstrap key may create accounts.
	acme.mustDo("POST", "/v1/accounts", []byte(`{"name":"Other"}`), 403)

	s.mustDo("POST", "/v1/events", []byte(`{"id":"same","category":"authentication","type":"userLoggedIn","data":{"who":"default"}}`), 201)
	acme.mustDo("POST", "/v1/events", []byte(`{"id":"same","category":"authentication","type":"userLoggedIn","data":{"who":"acme"}}`), 201)
	acme.mustDo("POST", "/v1/events", []byte(`{"id":"acme-only","category":"authentication","type":"userLoggedIn"}`), 201)

	if b := acme.mustDo("GET", "/v1/events/same", nil, 200); !strings.Contains(string(b), `"who":"acme"`) {
		t.Fatalf("acme read another account's event: %s", b)
	}
	s.mustDo("GET", "/v1/events/acme-only", nil, 404)
	if ids := s.allEventIDs(); len(ids) != 1 || ids["same"] == 0 {
		t.Fatalf("the default account lists %v, want only its own event", ids)
	}
	if ids := acme.allEventIDs(); len(ids) != 2 || ids["same"] == 0 || ids["acme-only"] <= ids["same"] {
		t.Fatalf("acme lists %v, want its two events in order", ids)
	}
	// Each account's audit log starts with its own creation.
	var audit struct {
		Events []struct {
			Category, Type, PrimaryID string
			Seq                       int64
		}
	}
	if err := json.Unmarshal(acme.mustDo("GET", "/v1/audit?limit=2", nil, 200), &audit); err != nil {
		t.Fatal(err)
	}
	if len(audit.Events) != 2 || audit.Events[0].Category != "account" || audit.Events[0].PrimaryID != "acme" ||
		audit.Events[0].Seq != 1 || audit.Events[1].Category != "apikey" {
		t.Fatalf("acme's audit log begins %+v", audit.Events)
	}
	// Keys and scopes: a read key cannot ingest.
	var key struct {
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal(acme.mustDo("POST", "/v1/keys", []byte(`{"name":"reader","scopes":["read"]}`), 201), &key); err != nil {
		t.Fatal(err)
	}
	reader := &server{t: t, URL: s.URL, Key: key.Secret}
	reader.mustDo("GET", "/v1/events/same", nil, 200)
	reader.mustDo("POST", "/v1/events", []byte(`{"category":"a","type":"b"}`), 403)
	(&server{t: t, URL: s.URL, Key: "hk_unknown_0123456789"}).mustDo("GET", "/v1/events", nil, 401)
}
