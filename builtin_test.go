package herald_test

import (
	"testing"

	"github.com/heraldhq/herald"
)

func TestBuiltinEventTypesAreValid(t *testing.T) {
	types := herald.BuiltinEventTypes()
	want := []string{"authentication/login", "transactions/transaction", "authentication/userLoggedIn",
		"authentication/userLoggedOut", "transfers/singleTransferCreated", "authentication/sessionEnded", "profiles/profileAttributesSet"}
	if len(types) != len(want) {
		t.Fatalf("got %d built-in types, want %d", len(types), len(want))
	}
	for i, typ := range types {
		if typ.Key() != want[i] {
			t.Errorf("type %d is %s, want %s", i, typ.Key(), want[i])
		}
		if err := typ.Validate(); err != nil {
			t.Errorf("%s: %v", typ.Key(), err)
		}
		if !typ.BuiltIn {
			t.Errorf("%s is not marked built-in", typ.Key())
		}
	}
}
