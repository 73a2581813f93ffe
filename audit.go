package herald

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/gowebpki/jcs"
)

// The audit log is the account's system events, chained: each carries as
// hash the hex SHA-256 of the previous system event's hash (the empty
// string for the first) followed by its own canonical JSON (RFC 8785, the
// JSON Canonicalization Scheme) without the hash member. Changing,
// removing or reordering a stored system event breaks the chain from
// there on; the account row keeps the newest hash, so removing the last
// ones breaks it too.

// canonicalJSON returns the RFC 8785 form of b.
func canonicalJSON(b []byte) ([]byte, error) { return jcs.Transform(b) }

// ChainHash returns the hash of the system event whose stored body, without
// its hash member, is body, following the one whose hash is prev.
func ChainHash(prev string, body []byte) (string, error) {
	canon, err := canonicalJSON(body)
	if err != nil {
		return "", fmt.Errorf("canonicalize: %w", err)
	}
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write(canon)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// chain sets e.ChainHash, e being a system event whose every other field
// is final, and returns it.
func chain(prev string, e *Event) (string, error) {
	e.ChainHash, e.prepared = "", nil
	body, err := marshalEvent(e)
	if err != nil {
		return "", err
	}
	if e.ChainHash, err = ChainHash(prev, body); err != nil {
		return "", fmt.Errorf("chain system event %s: %w", e.ID, err)
	}
	return e.ChainHash, nil
}

// AuditRow is a stored system event as the chain's verifier reads it: the
// columns a store filters by, and the body it serves.
type AuditRow struct {
	Seq       int64
	ID        string
	Category  string
	Type      string
	PrimaryID string
	Body      []byte
}

// AuditBreak is where an account's chain first breaks.
type AuditBreak struct {
	Seq int64  `json:"seq"`
	ID  string `json:"id"`
	// Reason says what differs.
	Reason string `json:"reason"`
	// Stored is the hash the event carries, Computed the one its content
	// and the previous link give (when the content could be read).
	Stored   string `json:"storedHash,omitempty"`
	Computed string `json:"computedHash,omitempty"`
}

// AuditReport is the outcome of verifying an account's chain.
type AuditReport struct {
	AccountID string `json:"accountId"`
	// Verified is true when every link holds.
	Verified bool `json:"verified"`
	// Checked is the number of system events whose link held.
	Checked int64 `json:"checked"`
	// LastSeq and Head are the seq and hash of the last event checked.
	LastSeq int64  `json:"lastSeq,omitempty"`
	Head    string `json:"head,omitempty"`
	// Break is where the chain first breaks, when it does.
	Break *AuditBreak `json:"break,omitempty"`
}

// AuditVerifier walks an account's system events in seq order.
type AuditVerifier struct {
	report AuditReport
}

// NewAuditVerifier starts the walk of accountID's chain.
func NewAuditVerifier(accountID string) *AuditVerifier {
	return &AuditVerifier{report: AuditReport{AccountID: accountID, Verified: true}}
}

// Check verifies the next stored system event and reports whether the walk
// should go on: it stops at the first break.
func (v *AuditVerifier) Check(row AuditRow) bool {
	if v.report.Break != nil {
		return false
	}
	broken := func(reason string, stored, computed string) bool {
		v.report.Verified = false
		v.report.Break = &AuditBreak{Seq: row.Seq, ID: row.ID, Reason: reason, Stored: stored, Computed: computed}
		return false
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(row.Body, &members); err != nil {
		return broken("the stored event is not a JSON object", "", "")
	}
	var stored string
	if raw, ok := members["hash"]; !ok || json.Unmarshal(raw, &stored) != nil || stored == "" {
		return broken("the stored event has no hash", "", "")
	}
	// The body must say what the columns, which queries filter by, say.
	var body struct {
		ID        string `json:"id"`
		Seq       int64  `json:"seq"`
		Category  string `json:"category"`
		Type      string `json:"type"`
		PrimaryID string `json:"primaryId"`
		Origin    string `json:"origin"`
	}
	if err := json.Unmarshal(row.Body, &body); err != nil {
		return broken("the stored event cannot be read: "+err.Error(), stored, "")
	}
	for _, c := range []struct{ name, column, body string }{
		{"id", row.ID, body.ID},
		{"seq", fmt.Sprint(row.Seq), fmt.Sprint(body.Seq)},
		{"category", row.Category, body.Category},
		{"type", row.Type, body.Type},
		{"primaryId", row.PrimaryID, body.PrimaryID},
		{"origin", OriginSystem, body.Origin},
	} {
		if c.column != c.body {
			return broken(fmt.Sprintf("%s differs: the row's column says %q, the stored event %q", c.name, c.column, c.body), stored, "")
		}
	}
	delete(members, "hash")
	rest, err := json.Marshal(members)
	if err != nil {
		return broken("the stored event cannot be read: "+err.Error(), stored, "")
	}
	computed, err := ChainHash(v.report.Head, rest)
	if err != nil {
		return broken("the stored event cannot be canonicalized: "+err.Error(), stored, "")
	}
	if computed != stored {
		return broken("the hash does not match: this event's content was changed, "+
			"or a system event before it was removed or changed", stored, computed)
	}
	v.report.Checked++
	v.report.LastSeq, v.report.Head = row.Seq, stored
	return true
}

// Finish checks the walk's end against head, the newest hash the account
// row keeps, and returns the report.
func (v *AuditVerifier) Finish(head string) *AuditReport {
	r := v.report
	if r.Break == nil && head != r.Head {
		r.Verified = false
		r.Break = &AuditBreak{
			Seq: r.LastSeq, Reason: "the chain ends before the newest system event the account recorded: " +
				"system events after this seq were removed",
			Stored: head, Computed: r.Head,
		}
	}
	return &r
}

// AuditService verifies an account's chain of system events. The events
// themselves are read with EventService (origin system).
type AuditService interface {
	// VerifyAudit walks the account's system events in seq order and
	// reports the first broken link; ENOTFOUND if there is no account.
	VerifyAudit(ctx context.Context, accountID string) (*AuditReport, error)
}
