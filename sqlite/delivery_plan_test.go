package sqlite

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestDeliveryQueryPlans checks that the reads the delivery engine makes
// over and over use their indexes on a database SQLite knows nothing
// about yet: no full scan of messages or attempts, and the look for an
// earlier message of the same key by its key.
func TestDeliveryQueryPlans(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "herald.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, c := range []struct {
		name, query string
		args        []any
		want        []string
	}{
		{"DueMessages", dueMessages, []any{"acme", "sub_1", 1, 10}, []string{
			"SEARCH m USING INDEX messages_due (account_id=? AND subscription_id=? AND state=? AND next_attempt_at<?)",
			"SEARCH m USING INDEX messages_due (account_id=? AND subscription_id=? AND state=?)",
			"SEARCH o USING INDEX messages_order (account_id=? AND subscription_id=? AND order_key=? AND seq<?)",
		}},
		{"SaveDelivery's done messages", deleteMessages, []any{"acme", "sub_1", "[1]"}, []string{
			"SEARCH messages USING PRIMARY KEY (account_id=? AND subscription_id=? AND seq=?)",
		}},
	} {
		rows, err := s.read.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+c.query, c.args...)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		text := strings.Join(plan, "\n")
		for _, w := range c.want {
			if !strings.Contains(text, w) {
				t.Errorf("%s: plan lacks %q:\n%s", c.name, w, text)
			}
		}
		for _, table := range []string{"messages", "attempts", "m", "o"} {
			if strings.Contains(text, "SCAN "+table+" ") || strings.HasSuffix(text, "SCAN "+table) {
				t.Errorf("%s: plan scans %s:\n%s", c.name, table, text)
			}
		}
	}
}
