package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald"
)

// replayFromStart is the cursor httpapi hands CreateSubscription for a
// replay of the whole log (from=1): a Cursor of 0 already means "from now
// on" there, so "before seq 1" needs a value of its own. The store keeps
// it as 0.
const replayFromStart int64 = -1

// Bounds of the secret rotation's overlap.
const maxSecretOverlap = 30 * 24 * time.Hour

// subscriptionMembers are the members of a subscription a client sets.
var subscriptionMembers = []string{
	"name", "url", "filter", "headers", "json_template", "rateLimit", "ordered",
	"maxInFlight", "retrySchedule", "timeout", "disableAfter",
}

// subscriptionReadOnly are the members Herald sets. PUT accepts and
// ignores them, so that a subscription read with GET can be changed and
// sent back as it is; POST refuses them.
var subscriptionReadOnly = []string{"id", "state", "stateReason", "failingSince", "cursor", "createdAt", "updatedAt"}

// filterMembers are the keys of a filter.
var filterMembers = jsonNames(reflect.TypeFor[herald.Filter]())

// jsonNames lists the JSON member names of a struct type.
func jsonNames(t reflect.Type) []string {
	var names []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}

// subscriptionView is a subscription as the API shows it: lists empty as
// [], and the secret only in the answer that created it.
type subscriptionView struct {
	*herald.Subscription
	Secret string `json:"secret,omitempty"`
}

func viewOf(sub *herald.Subscription, secret string) subscriptionView {
	c := *sub
	if c.RetrySchedule == nil {
		c.RetrySchedule = []herald.Duration{}
	}
	return subscriptionView{Subscription: &c, Secret: secret}
}

type subscriptionList struct {
	Subscriptions []subscriptionView `json:"subscriptions"`
}

// readSubscription decodes the body of POST or PUT /v1/subscriptions[/{id}]:
// a subscription, or a Lytics job body. It names every member at fault
// that decoding finds, and then every rule the subscription breaks; with
// put, the members Herald sets are ignored rather than refused. It
// returns the raw members too, for the checks only PUT makes.
func (s *Server) readSubscription(w http.ResponseWriter, r *http.Request, put bool) (*herald.Subscription, map[string]json.RawMessage, error) {
	members, err := readMembers(w, r, "a subscription")
	if err != nil {
		return nil, nil, err
	}
	lytics := isLyticsJob(members)
	var (
		sub  *herald.Subscription
		errs []herald.FieldError
	)
	if lytics {
		sub, errs = decodeLytics(members)
	} else {
		sub, errs = decodeSubscription(members, put)
	}
	if sub == nil { // nothing to check further
		return nil, nil, fieldErrors(errs)
	}
	sub.AccountID = keyFrom(r.Context()).AccountID
	sub.SetDefaults()
	// What decoded is checked by the rules too, so that one answer names
	// every field at fault; a field that did not decode is named once.
	if err := s.checkSubscription(sub, lytics, errs); err != nil {
		return nil, nil, err
	}
	return sub, members, nil
}

// decodeSubscription decodes the members of a subscription, each on its
// own, so that a bad one is named by its exact pointer and the others are
// still checked.
func decodeSubscription(members map[string]json.RawMessage, put bool) (*herald.Subscription, []herald.FieldError) {
	errs := checkMembers(members, "", subscriptionMembers, func(name string) string {
		switch {
		case !slices.Contains(subscriptionReadOnly, name):
			return "unknown field"
		case !put:
			return "is set by Herald; leave it out"
		}
		return "" // PUT: ignored
	})
	sub := &herald.Subscription{}
	plain := map[string]any{
		"name": &sub.Name, "url": &sub.URL, "json_template": &sub.JSONTemplate,
		"rateLimit": &sub.RateLimit, "ordered": &sub.Ordered, "maxInFlight": &sub.MaxInFlight,
	}
	for _, name := range slices.Sorted(maps.Keys(plain)) {
		if raw, ok := members[name]; ok {
			if fe := decodeAt(raw, "/"+name, plain[name]); fe != nil {
				errs = append(errs, *fe)
			}
		}
	}
	var fe []herald.FieldError
	sub.Filter, fe = decodeFilter(members["filter"], "/filter")
	errs = append(errs, fe...)
	sub.Headers, fe = decodeHeaders(members["headers"], "/headers")
	errs = append(errs, fe...)
	if raw := members["retrySchedule"]; raw != nil && !isNull(raw) {
		var items []json.RawMessage
		if e := decodeAt(raw, "/retrySchedule", &items); e != nil {
			errs = append(errs, herald.FieldError{Pointer: "/retrySchedule", Detail: "must be an array of durations such as \"5s\" or \"2h\""})
		} else {
			sub.RetrySchedule = make([]herald.Duration, 0, len(items))
			for i, item := range items {
				d, e := decodeDuration(item, fmt.Sprintf("/retrySchedule/%d", i))
				if e != nil {
					errs = append(errs, *e)
				}
				sub.RetrySchedule = append(sub.RetrySchedule, d)
			}
		}
	}
	for _, d := range []struct {
		name string
		to   *herald.Duration
	}{{"timeout", &sub.Timeout}, {"disableAfter", &sub.DisableAfter}} {
		if raw := members[d.name]; raw != nil && !isNull(raw) {
			v, e := decodeDuration(raw, "/"+d.name)
			if e != nil {
				errs = append(errs, *e)
			}
			*d.to = v
		}
	}
	return sub, errs
}

// decodeHeaders decodes an object of header names to values at pointer,
// naming a value that is not a string by its key.
func decodeHeaders(raw json.RawMessage, pointer string) (map[string]string, []herald.FieldError) {
	if raw == nil || isNull(raw) {
		return nil, nil
	}
	members, fe := decodeObject(raw, pointer)
	if fe != nil {
		return nil, []herald.FieldError{*fe}
	}
	var errs []herald.FieldError
	headers := make(map[string]string, len(members))
	for _, name := range slices.Sorted(maps.Keys(members)) {
		var v string
		if fe := decodeAt(members[name], pointer+"/"+escapePointer(name), &v); fe != nil || isNull(members[name]) {
			errs = append(errs, herald.FieldError{Pointer: pointer + "/" + escapePointer(name), Detail: "must be a string"})
			continue
		}
		headers[name] = v
	}
	return headers, errs
}

// checkMembers names the members of an object at pointer that are not
// among known; why says what is wrong with one, "" to let it pass.
func checkMembers(members map[string]json.RawMessage, pointer string, known []string, why func(name string) string) []herald.FieldError {
	var errs []herald.FieldError
	for _, name := range slices.Sorted(maps.Keys(members)) {
		if slices.Contains(known, name) {
			continue
		}
		if detail := why(name); detail != "" {
			errs = append(errs, herald.FieldError{Pointer: pointer + "/" + escapePointer(name), Detail: detail})
		}
	}
	return errs
}

func unknownMember(string) string { return "unknown field" }

// decodeObject decodes raw, at pointer, as a JSON object's members.
func decodeObject(raw json.RawMessage, pointer string) (map[string]json.RawMessage, *herald.FieldError) {
	var members map[string]json.RawMessage
	if fe := decodeAt(raw, pointer, &members); fe != nil || members == nil {
		return nil, &herald.FieldError{Pointer: pointer, Detail: "must be a JSON object"}
	}
	return members, nil
}

// decodeFilter decodes a filter at pointer, naming each unknown key. Null
// or absent is the filter that matches every event.
func decodeFilter(raw json.RawMessage, pointer string) (herald.Filter, []herald.FieldError) {
	var f herald.Filter
	if raw == nil || isNull(raw) {
		return f, nil
	}
	members, fe := decodeObject(raw, pointer)
	if fe != nil {
		return f, []herald.FieldError{*fe}
	}
	if errs := checkMembers(members, pointer, filterMembers, unknownMember); len(errs) > 0 {
		return f, errs
	}
	if fe := decodeAt(raw, pointer, &f); fe != nil {
		return f, []herald.FieldError{*fe}
	}
	return f, nil
}

// decodeDuration decodes a duration string at pointer.
func decodeDuration(raw json.RawMessage, pointer string) (herald.Duration, *herald.FieldError) {
	var d herald.Duration
	if err := d.UnmarshalJSON(raw); err != nil {
		return 0, &herald.FieldError{Pointer: pointer, Detail: err.Error()}
	}
	return d, nil
}

// checkSubscription checks sub by its rules and compiles its template,
// naming every field at fault after those that did not decode (decoded);
// a rule broken by a field that did not decode is not named again. For a
// Lytics job body, the fields are named where that body has them.
func (s *Server) checkSubscription(sub *herald.Subscription, lytics bool, decoded []herald.FieldError) error {
	ruled, err := ruleErrors(sub.Validate(), "subscription")
	if err != nil {
		return err
	}
	if sub.JSONTemplate != "" && s.compile != nil {
		if err := s.compile(sub.JSONTemplate); err != nil {
			var e *herald.Error
			if errors.As(err, &e) && e.Code == herald.EINVALID && len(decoded) == 0 && len(ruled) == 0 && !lytics {
				return e // the compiler's own words
			}
			fe, err := templateErrors(err, "/json_template")
			if err != nil {
				return err
			}
			ruled = append(ruled, fe...)
		}
	}
	move := unmoved
	if lytics {
		move = lyticsSubscriptionPointers.move
	}
	return fieldErrors(joinErrors(decoded, ruled, move))
}

// parseFrom reads ?from=: a seq (an integer) or an RFC 3339 time.
func parseFrom(q url.Values) (seq int64, at time.Time, set bool, err error) {
	v, ok := q["from"]
	if !ok {
		return 0, time.Time{}, false, nil
	}
	if n, perr := strconv.ParseInt(v[0], 10, 64); perr == nil && n >= 0 {
		return n, time.Time{}, true, nil
	}
	if t, perr := time.Parse(time.RFC3339Nano, v[0]); perr == nil {
		return 0, t, true, nil
	}
	return 0, time.Time{}, false, herald.FieldErrorf(paramPointer("from"),
		"must be a seq (an integer: deliver the events with that seq and later) or an RFC 3339 date-time such as 2026-01-02T15:04:05Z (write + in an offset as %%2B)")
}

// replayCursor turns ?from= into the cursor a new subscription starts at.
//
// from=N delivers the matching events with seq N and later: the cursor is
// N-1. from=<time> delivers from the first event, by seq, that occurred
// at or after the time: every event that occurred since then is at or
// after it, since seq order is storage order and that event is the
// earliest stored that occurred so late; events stored after it that
// occurred earlier (sent late) are delivered too, at least once being
// the promise. When no stored event occurred that late, delivery starts
// with the events stored from now on. Without from, too, delivery starts
// with the events stored from now on (cursor 0 tells the store).
func (s *Server) replayCursor(r *http.Request, accountID string, seq int64, at time.Time) (int64, error) {
	if !at.IsZero() {
		events, err := s.events.FindEvents(r.Context(), accountID, herald.EventFilter{OccurredAfter: at, Limit: 1, BodiesOnly: true})
		if err != nil {
			return 0, fmt.Errorf("find the first event since %s: %w", at.Format(time.RFC3339Nano), err)
		}
		if len(events) == 0 {
			return 0, nil
		}
		seq = events[0].Seq
	}
	if seq <= 1 {
		return replayFromStart, nil
	}
	return seq - 1, nil
}

// createSubscription makes a subscription with its first signing secret,
// which this answer alone shows.
func (s *Server) createSubscription(w http.ResponseWriter, r *http.Request) error {
	key := keyFrom(r.Context())
	fromSeq, fromTime, replay, err := parseFrom(r.URL.Query())
	if err != nil {
		return err
	}
	sub, _, err := s.readSubscription(w, r, false)
	if err != nil {
		return err
	}
	if replay {
		if sub.Cursor, err = s.replayCursor(r, key.AccountID, fromSeq, fromTime); err != nil {
			return err
		}
	}
	now := s.now().UTC().Truncate(timePrecision)
	sub.ID = herald.NewRandomID("sub_")
	sub.CreatedAt, sub.UpdatedAt = now, now
	secret := herald.NewSigningSecret()
	if err := s.subs.CreateSubscription(r.Context(), sub, secret); err != nil {
		return fmt.Errorf("create subscription: %w", err)
	}
	stored, err := s.subs.FindSubscriptionByID(r.Context(), key.AccountID, sub.ID)
	if err != nil {
		return fmt.Errorf("read back subscription %s: %w", sub.ID, err)
	}
	w.Header().Set("Location", "/v1/subscriptions/"+url.PathEscape(sub.ID))
	writeJSON(w, http.StatusCreated, viewOf(stored, secret))
	return nil
}

// listSubscriptions lists the account's subscriptions, oldest first.
func (s *Server) listSubscriptions(w http.ResponseWriter, r *http.Request) error {
	key := keyFrom(r.Context())
	subs, err := s.subs.FindSubscriptions(r.Context(), key.AccountID)
	if err != nil {
		return fmt.Errorf("find subscriptions: %w", err)
	}
	out := subscriptionList{Subscriptions: make([]subscriptionView, 0, len(subs))}
	for _, sub := range subs {
		out.Subscriptions = append(out.Subscriptions, viewOf(sub, ""))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func subscriptionNotFound(id string) error {
	return herald.Errorf(herald.ENOTFOUND, "no subscription %q in this account", id)
}

// subscriptionErr maps a store error about subscription id: ENOTFOUND to
// the 404 that names it, anything else wrapped with what was done.
func subscriptionErr(err error, id, doing string) error {
	if herald.ErrorCode(err) == herald.ENOTFOUND {
		return subscriptionNotFound(id)
	}
	return fmt.Errorf("%s subscription %s: %w", doing, id, err)
}

// findSubscription returns the subscription the path names, in the
// caller's account.
func (s *Server) findSubscription(r *http.Request) (*herald.Subscription, error) {
	key := keyFrom(r.Context())
	id := r.PathValue("id")
	if id == "" || len(id) > maxFilterLength {
		return nil, subscriptionNotFound(id) // none could have this id
	}
	sub, err := s.subs.FindSubscriptionByID(r.Context(), key.AccountID, id)
	if err != nil {
		return nil, subscriptionErr(err, id, "find")
	}
	return sub, nil
}

// answerSubscription answers with the subscription as now stored.
func (s *Server) answerSubscription(w http.ResponseWriter, r *http.Request) error {
	sub, err := s.findSubscription(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewOf(sub, ""))
	return nil
}

// getSubscription answers one subscription, without its secret.
func (s *Server) getSubscription(w http.ResponseWriter, r *http.Request) error {
	return s.answerSubscription(w, r)
}

// putSubscription replaces what a client may set of a subscription: a
// member left out takes its default. State, cursor, secrets and times are
// kept; the members Herald sets may be sent back as read and are ignored.
func (s *Server) putSubscription(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	sub, members, err := s.readSubscription(w, r, true)
	if err != nil {
		return err
	}
	if raw, ok := members["id"]; ok {
		var bodyID string
		if json.Unmarshal(raw, &bodyID) != nil || bodyID != id {
			return herald.FieldErrorf("/id", "is %s but the path names subscription %q; leave it out or make them agree", raw, id)
		}
	}
	sub.ID = id
	sub.UpdatedAt = s.now().UTC().Truncate(timePrecision)
	if len(id) > maxFilterLength {
		return subscriptionNotFound(id)
	}
	if err := s.subs.UpdateSubscription(r.Context(), sub); err != nil {
		return subscriptionErr(err, id, "update")
	}
	return s.answerSubscription(w, r)
}

// deleteSubscription deletes a subscription with its secrets, messages and
// attempts.
func (s *Server) deleteSubscription(w http.ResponseWriter, r *http.Request) error {
	key := keyFrom(r.Context())
	id := r.PathValue("id")
	if len(id) > maxFilterLength {
		return subscriptionNotFound(id)
	}
	if err := s.subs.DeleteSubscription(r.Context(), key.AccountID, id); err != nil {
		return subscriptionErr(err, id, "delete")
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// stateInput is the optional body of pause and resume.
type stateInput struct {
	Reason string `json:"reason"`
}

// readStateInput reads the optional body of pause and resume: none, or
// {"reason": "…"}.
func readStateInput(w http.ResponseWriter, r *http.Request) (stateInput, error) {
	var in stateInput
	if err := decodeOptionalJSON(w, r, &in); err != nil {
		return in, err
	}
	if detail := checkName(in.Reason, false); detail != "" {
		return in, herald.FieldErrorf("/reason", "%s", detail)
	}
	return in, nil
}

// pauseSubscription stops deliveries; the subscription keeps its place in
// the log, and what is stored meanwhile is delivered once it is resumed.
func (s *Server) pauseSubscription(w http.ResponseWriter, r *http.Request) error {
	return s.setSubscriptionState(w, r, herald.SubscriptionPaused)
}

// resumeSubscription makes a paused or disabled subscription active again:
// it goes on from where it stopped.
func (s *Server) resumeSubscription(w http.ResponseWriter, r *http.Request) error {
	return s.setSubscriptionState(w, r, herald.SubscriptionActive)
}

func (s *Server) setSubscriptionState(w http.ResponseWriter, r *http.Request, state string) error {
	in, err := readStateInput(w, r)
	if err != nil {
		return err
	}
	sub, err := s.findSubscription(r)
	if err != nil {
		return err
	}
	// Asking again for the state it has changes nothing, and writes no
	// system event.
	if sub.State != state || sub.StateReason != in.Reason {
		if err := s.subs.SetSubscriptionState(r.Context(), sub.AccountID, sub.ID, state, in.Reason); err != nil {
			return subscriptionErr(err, sub.ID, "set the state of")
		}
	}
	return s.answerSubscription(w, r)
}

// secretList answers GET /v1/subscriptions/{id}/secret and its rotation.
type secretList struct {
	Secrets []herald.SigningSecret `json:"secrets"`
}

// getSecrets answers the secrets that sign the subscription's requests
// now: the current one first, then rotated ones until they expire.
func (s *Server) getSecrets(w http.ResponseWriter, r *http.Request) error {
	sub, err := s.findSubscription(r)
	if err != nil {
		return err
	}
	return s.answerSecrets(w, r, sub.AccountID, sub.ID)
}

func (s *Server) answerSecrets(w http.ResponseWriter, r *http.Request, accountID, id string) error {
	secrets, err := s.subs.FindSigningSecrets(r.Context(), accountID, id)
	if err != nil {
		return subscriptionErr(err, id, "find the secrets of")
	}
	if secrets == nil {
		secrets = []herald.SigningSecret{}
	}
	writeJSON(w, http.StatusOK, secretList{Secrets: secrets})
	return nil
}

// rotateSecret makes a new current secret; the one it replaces keeps
// signing beside it for ?overlap= (default herald.DefaultSecretOverlap),
// so that receivers can switch without losing a request.
func (s *Server) rotateSecret(w http.ResponseWriter, r *http.Request) error {
	key := keyFrom(r.Context())
	id := r.PathValue("id")
	overlap := herald.DefaultSecretOverlap
	if v, ok := r.URL.Query()["overlap"]; ok {
		d, err := time.ParseDuration(v[0])
		if err != nil || d < 0 || d > maxSecretOverlap {
			return herald.FieldErrorf(paramPointer("overlap"), "must be a duration from 0s to %s, such as 24h (0s: the old secret stops signing at once)", durationText(maxSecretOverlap))
		}
		overlap = d
	}
	if len(id) > maxFilterLength {
		return subscriptionNotFound(id)
	}
	expires := s.now().UTC().Truncate(timePrecision).Add(overlap)
	if err := s.subs.RotateSigningSecret(r.Context(), key.AccountID, id, herald.NewSigningSecret(), expires); err != nil {
		return subscriptionErr(err, id, "rotate the secret of")
	}
	return s.answerSecrets(w, r, key.AccountID, id)
}

// durationText writes a whole number of hours as Go reads it back: "720h".
func durationText(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}
