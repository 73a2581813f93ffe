package herald

import (
	_ "embed"
	"encoding/json"
	"fmt"
)

// builtinTypes is the built-in catalog (DESIGN.md §2): the login and
// transaction lifecycles of the Alloy document and the banking set of the
// Apiture document.
//
//go:embed builtin_types.json
var builtinTypes []byte

// BuiltinEventTypes returns the built-in catalog, a fresh copy on every
// call so that callers may change what they get.
func BuiltinEventTypes() []*EventType {
	var types []*EventType
	if err := json.Unmarshal(builtinTypes, &types); err != nil {
		panic(fmt.Sprintf("herald: built-in catalog: %v", err)) // caught by the package's tests
	}
	for _, t := range types {
		t.BuiltIn = true
		for i := range t.Statuses {
			t.Statuses[i].BuiltIn = true
		}
	}
	return types
}
