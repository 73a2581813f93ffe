package postgres

import (
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// jsonbProblem must say "" exactly when PostgreSQL reads the value as
// jsonb: the server decides here, for values on both sides of each limit.
func TestJSONBProblemAgreesWithServer(t *testing.T) {
	t.Parallel()
	url := os.Getenv("HERALD_TEST_POSTGRES")
	if url == "" {
		t.Skip("HERALD_TEST_POSTGRES is not set: set it to a PostgreSQL URL, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable, to run the PostgreSQL store tests")
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())

	values := []string{
		`{"a":1}`, `"plain"`, `"caf\u00e9"`, `"\\u0000"`, `"\u0000"`, `{"a\u0000b":1}`, `["x","\u0000"]`,
		`"\ud83d\ude00"`, `"\ud83d"`, `"\ude00"`, `"\ud83dx"`, `"\ud83d\u0041"`, `"\uD83D\uDE00"`,
		`1e131071`, `1e131072`, `-1e131072`, `9.9e131071`, `0.01e131073`, `0.001e131073`,
		`1e-16383`, `1e-16384`, `1.5e-16383`, `1.5E-16382`, `0e999999`, `0e-999999`, `0.0e-16383`,
		`1E+131071`, `1e+131072`, `0e1073741822`, `0e1073741823`, `1e99999999999999999999`,
		`[1e1000, -0, 0.5, 123456789012345678901234567890.12345]`, `{"n":1e999999,"s":"e"}`,
		`true`, `false`, `null`, `{"e":"1e999999"}`,
		"1" + strings.Repeat("0", 131071), "1" + strings.Repeat("0", 131072),
		"0." + strings.Repeat("0", 16382) + "1", "0." + strings.Repeat("0", 16383) + "1",
	}
	for _, v := range values {
		var ok bool
		_, err := conn.Exec(t.Context(), `SELECT $1::text::jsonb`, v)
		ok = err == nil
		name := v
		if len(name) > 40 {
			name = name[:37] + "..."
		}
		if got := jsonbProblem([]byte(v)); (got == "") != ok {
			t.Errorf("jsonbProblem(%s) = %q, but the server says: %v", name, got, err)
		}
	}
}
