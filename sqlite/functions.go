package sqlite

import (
	"bytes"
	"context"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"math/big"

	sqlite3 "modernc.org/sqlite"
)

// newDriver returns a driver whose connections have the SQL functions
// Herald's queries use. They are registered on a driver of the Store's
// own, not on the one the sqlite package shares process-wide.
func newDriver() (*sqlite3.Driver, error) {
	d := &sqlite3.Driver{}
	if err := d.RegisterDeterministicScalarFunction("herald_json_equal", 2, jsonEqualFunc); err != nil {
		return nil, err
	}
	return d, nil
}

// connector opens connections to dsn with a driver of the Store's own.
type connector struct {
	driver *sqlite3.Driver
	dsn    string
}

func (c connector) Connect(context.Context) (driver.Conn, error) { return c.driver.Open(c.dsn) }
func (c connector) Driver() driver.Driver                        { return c.driver }

// jsonEqualFunc is herald_json_equal(a, b): 1 when the JSON texts a and b
// hold the same value as PostgreSQL's jsonb compares them (objects whatever
// their key order, numbers by value, strings after their escapes are
// decoded), 0 when they do not, NULL when either is NULL. SQLite's own
// json() keeps key order and number spelling, so it cannot say this.
func jsonEqualFunc(_ *sqlite3.FunctionContext, args []driver.Value) (driver.Value, error) {
	var values [2]any
	for i, arg := range args {
		var text []byte
		switch v := arg.(type) {
		case nil:
			return nil, nil
		case string:
			text = []byte(v)
		case []byte:
			text = v
		default:
			return nil, fmt.Errorf("herald_json_equal: argument %d is not JSON text", i+1)
		}
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.UseNumber()
		if err := dec.Decode(&values[i]); err != nil {
			return nil, fmt.Errorf("herald_json_equal: argument %d: %w", i+1, err)
		}
	}
	if sameJSON(values[0], values[1]) {
		return int64(1), nil
	}
	return int64(0), nil
}

// sameJSON reports whether two values decoded with UseNumber are equal.
func sameJSON(a, b any) bool {
	switch a := a.(type) {
	case json.Number:
		b, ok := b.(json.Number)
		if !ok {
			return false
		}
		x, okA := new(big.Rat).SetString(a.String())
		y, okB := new(big.Rat).SetString(b.String())
		return okA && okB && x.Cmp(y) == 0
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, v := range a {
			w, ok := b[k]
			if !ok || !sameJSON(v, w) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !sameJSON(a[i], b[i]) {
				return false
			}
		}
		return true
	default: // string, bool or nil
		return a == b
	}
}
