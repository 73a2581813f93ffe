package herald

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Ref names a thing of one account: ids of events, lifecycles and profiles
// are unique per account only.
type Ref struct{ AccountID, ID string }

// StoredEvent is what deciding about a resent id needs of a stored event.
type StoredEvent struct {
	Seq        int64
	ReceivedAt time.Time
	Hash       string
	SessionID  string
}

// AppendKeys is what a store must read, inside its write transaction,
// before PlanAppend can decide about a call to AppendEvents.
type AppendKeys struct {
	// Accounts are the accounts written to, sorted: a store that locks
	// them takes the locks in this order, so two calls cannot deadlock.
	Accounts []string
	// Events are the ids sent: which are stored already?
	Events []Ref
	// Lifecycles and Profiles are the ones the events join or update.
	Lifecycles []Ref
	Profiles   []Ref
	// Sessions are the session ids the events name: which exist, and are
	// they open? Visits are the entities whose open visit to read.
	Sessions []Ref
	Visits   []Ref
}

// KeysOf returns what a store must read before PlanAppend(batches, …).
func KeysOf(batches []*AppendBatch) AppendKeys {
	var k AppendKeys
	seenL, seenP, seenS := map[Ref]bool{}, map[Ref]bool{}, map[Ref]bool{}
	add := func(list *[]Ref, seen map[Ref]bool, r Ref) {
		if r.ID != "" && !seen[r] {
			seen[r] = true
			*list = append(*list, r)
		}
	}
	accounts := map[string]bool{}
	for _, b := range batches {
		if len(b.Events) == 0 {
			continue
		}
		accounts[b.AccountID] = true
		for _, e := range b.Events {
			k.Events = append(k.Events, Ref{b.AccountID, e.ID})
			add(&k.Lifecycles, seenL, Ref{b.AccountID, e.EventLifecycleID})
			add(&k.Profiles, seenP, Ref{b.AccountID, e.EntityID()})
			add(&k.Sessions, seenS, Ref{b.AccountID, e.SessionID})
		}
	}
	k.Visits = k.Profiles
	for a := range accounts {
		k.Accounts = append(k.Accounts, a)
	}
	slices.Sort(k.Accounts)
	return k
}

// AppendState is what a store read for the keys of KeysOf.
type AppendState struct {
	// LastSeq holds the seq of the newest event of each account that
	// exists; an account missing here fails the call with ENOTFOUND.
	LastSeq map[string]int64
	// Stored holds the stored events among the ids looked up.
	Stored map[Ref]StoredEvent
	// Lifecycles and Profiles hold the stored ones among those looked up.
	// PlanAppend changes them in place and adds new ones.
	Lifecycles map[Ref]*Lifecycle
	Profiles   map[Ref]*Profile
	// Sessions hold the stored sessions among those looked up, open or
	// not; Visits the open visit of each entity looked up that has one.
	// PlanAppend changes them in place and adds new ones.
	Sessions map[Ref]*Session
	Visits   map[Ref]*Visit
	// Settings holds each account's settings; a missing one has
	// DefaultSettings.
	Settings map[string]*Settings
	// AuditHead holds the hash of each account's newest system event;
	// missing or empty when it has none.
	AuditHead map[string]string
}

// AppendPlan is what a store writes for a call to AppendEvents, in the
// same transaction.
type AppendPlan struct {
	// Events are the events to insert, with Seq and AccountID set, in the
	// order their seqs were given.
	Events []*Event
	// LastSeq is the new last seq of each account that received events.
	LastSeq map[string]int64
	// Lifecycles and Profiles are those to insert or update.
	Lifecycles []*Lifecycle
	Profiles   []*Profile
	// Sessions and Visits are those to insert or update, visits that
	// ended among them.
	Sessions []*Session
	Visits   []*Visit
	// AuditHead is the new head of the audit chain of each account that
	// received system events: the hash of its newest.
	AuditHead map[string]string
}

// PlanAppend decides, for every event of the batches, whether it is new, a
// duplicate or a failure, fills each batch's Results, gives new events
// their seqs, and applies them to their lifecycles and profiles. It is the
// one rule every store follows (see EventService.AppendEvents):
//
//   - An id stored (or accepted earlier in the call) with the same hash is
//     a duplicate and gets the original's seq; with another hash it is an
//     ECONFLICT failure.
//   - An event that may not join its lifecycle (Lifecycle.Apply) fails
//     with EINVALID and takes no seq.
//   - check, when not nil, is a store's own test of an event (text it
//     cannot hold): its error fails the event.
//   - An atomic batch with a failure stores nothing, takes no seq and
//     leaves lifecycles and profiles as they were; its other events fail
//     with ECONFLICT naming the one that failed.
//
// Seqs follow on from st.LastSeq without gaps. An error means the call
// cannot be decided at all (an account that does not exist).
func PlanAppend(batches []*AppendBatch, st *AppendState, check func(*Event) error) (*AppendPlan, error) {
	p := newPlanner(st)
	for _, b := range batches {
		b.Results = make([]AppendResult, len(b.Events))
	}
	for _, b := range batches {
		if len(b.Events) == 0 {
			continue
		}
		if _, ok := st.LastSeq[b.AccountID]; !ok {
			return nil, Errorf(ENOTFOUND, "account %q not found", b.AccountID)
		}
		if err := p.batch(b, check); err != nil {
			return nil, err
		}
	}
	return p.finish()
}

// PlanExpiry ends the sessions and visits of st (read as for AppendKeys
// with only Accounts, Sessions and Visits) whose time ran out by now,
// with their system events: the sweep of JourneySweeper. A session or
// visit in st that is not due is left alone, so a sweep that raced an
// append which kept it alive ends nothing.
func PlanExpiry(st *AppendState, now time.Time) (*AppendPlan, error) {
	p := newPlanner(st)
	now = now.UTC().Truncate(time.Microsecond)
	for _, ref := range sortedRefs(st.Sessions) {
		if _, ok := st.LastSeq[ref.AccountID]; !ok {
			continue
		}
		p.startAccount(ref.AccountID)
		if s := st.Sessions[ref]; s.Open() {
			p.expireSession(ref, s, now, SystemActor)
		}
	}
	for _, ref := range sortedRefs(st.Visits) {
		if _, ok := st.LastSeq[ref.AccountID]; !ok {
			continue
		}
		p.startAccount(ref.AccountID)
		if v := st.Visits[ref]; v != nil {
			p.expireVisit(ref, v, now, SystemActor)
		}
	}
	return p.finish()
}

// sortedRefs returns the keys of m in order, so that a sweep writes its
// system events in the same order whatever the map's.
func sortedRefs[T any](m map[Ref]T) []Ref {
	refs := make([]Ref, 0, len(m))
	for r := range m {
		refs = append(refs, r)
	}
	slices.SortFunc(refs, func(a, b Ref) int {
		if c := strings.Compare(a.AccountID, b.AccountID); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return refs
}

// planner is one PlanAppend under way.
type planner struct {
	st   *AppendState
	plan *AppendPlan
	next map[string]int64 // last seq given, by account
	// known holds the events accepted earlier in the call.
	known          map[Ref]StoredEvent
	dirtyL, dirtyP map[Ref]bool
	dirtyS, dirtyV map[Ref]bool
	orderL, orderP []Ref // dirty refs in the order first changed
	orderS, orderV []Ref
	// ended holds the visits that ended: st.Visits keeps open ones only.
	ended []*Visit
	// newProfile is set by track when the event it applied began a
	// profile.
	newProfile bool
	// undo, during an atomic batch, holds what was before it.
	undo *undo
}

// undo holds the lifecycles, profiles, sessions and visits as they were
// before an atomic batch (nil: they did not exist).
type undo struct {
	l     map[Ref]*Lifecycle
	p     map[Ref]*Profile
	s     map[Ref]*Session
	v     map[Ref]*Visit
	ended int
}

func newPlanner(st *AppendState) *planner {
	for _, m := range []*map[Ref]*Session{&st.Sessions} {
		if *m == nil {
			*m = map[Ref]*Session{}
		}
	}
	if st.Visits == nil {
		st.Visits = map[Ref]*Visit{}
	}
	if st.Lifecycles == nil {
		st.Lifecycles = map[Ref]*Lifecycle{}
	}
	if st.Profiles == nil {
		st.Profiles = map[Ref]*Profile{}
	}
	return &planner{
		st:     st,
		plan:   &AppendPlan{LastSeq: map[string]int64{}, AuditHead: map[string]string{}},
		next:   map[string]int64{},
		known:  map[Ref]StoredEvent{},
		dirtyL: map[Ref]bool{},
		dirtyP: map[Ref]bool{},
		dirtyS: map[Ref]bool{},
		dirtyV: map[Ref]bool{},
	}
}

func (p *planner) startAccount(acct string) {
	if _, ok := p.next[acct]; !ok {
		p.next[acct] = p.st.LastSeq[acct]
	}
}

// finish chains the system events to be stored and lists what changed.
func (p *planner) finish() (*AppendPlan, error) {
	st := p.st
	for a, seq := range p.next {
		if seq != st.LastSeq[a] {
			p.plan.LastSeq[a] = seq
		}
	}
	for _, e := range p.plan.Events {
		if e.Origin != OriginSystem {
			continue
		}
		prev, ok := p.plan.AuditHead[e.AccountID]
		if !ok {
			prev = st.AuditHead[e.AccountID]
		}
		h, err := chain(prev, e)
		if err != nil {
			return nil, err
		}
		p.plan.AuditHead[e.AccountID] = h
	}
	for _, r := range p.orderL {
		if l := st.Lifecycles[r]; p.dirtyL[r] && l != nil && l.EventCount > 0 {
			p.plan.Lifecycles = append(p.plan.Lifecycles, l)
		}
	}
	for _, r := range p.orderP {
		if pr := st.Profiles[r]; p.dirtyP[r] && pr != nil && pr.EventCount > 0 {
			p.plan.Profiles = append(p.plan.Profiles, pr)
		}
	}
	for _, r := range p.orderS {
		if s := st.Sessions[r]; p.dirtyS[r] && s != nil {
			p.plan.Sessions = append(p.plan.Sessions, s)
		}
	}
	p.plan.Visits = append(p.plan.Visits, p.ended...)
	for _, r := range p.orderV {
		if v := st.Visits[r]; p.dirtyV[r] && v != nil {
			p.plan.Visits = append(p.plan.Visits, v)
		}
	}
	return p.plan, nil
}

func (p *planner) batch(b *AppendBatch, check func(*Event) error) error {
	acct := b.AccountID
	p.startAccount(acct)
	var (
		mark     = len(p.plan.Events)
		seqMark  = p.next[acct]
		added    []Ref
		failedAt = -1
	)
	if b.Atomic {
		p.undo = &undo{l: map[Ref]*Lifecycle{}, p: map[Ref]*Profile{}, s: map[Ref]*Session{}, v: map[Ref]*Visit{}, ended: len(p.ended)}
	}
	for i, e := range b.Events {
		r := &b.Results[i]
		ref := Ref{acct, e.ID}
		var err error
		if check != nil {
			err = check(e)
		}
		if err == nil {
			prior, ok := p.known[ref]
			if !ok {
				prior, ok = p.st.Stored[ref]
			}
			switch {
			case ok && prior.Hash == e.Hash:
				*r = AppendResult{Seq: prior.Seq, ReceivedAt: prior.ReceivedAt, Duplicate: true, SessionID: prior.SessionID}
			case ok:
				err = Errorf(ECONFLICT, "event id %q is taken by an event with different content", e.ID)
			default:
				e.Seq, e.AccountID = p.next[acct]+1, acct
				if err = p.track(e); err != nil {
					e.Seq = 0
					if ErrorCode(err) == EINTERNAL {
						return err
					}
					break
				}
				p.next[acct] = e.Seq
				p.plan.Events = append(p.plan.Events, e)
				if e.Origin != OriginSystem {
					if err := p.journey(e, b.By); err != nil {
						return err
					}
				}
				p.known[ref] = StoredEvent{Seq: e.Seq, ReceivedAt: e.ReceivedAt, Hash: e.Hash, SessionID: e.SessionID}
				added = append(added, ref)
				*r = AppendResult{Seq: e.Seq, ReceivedAt: e.ReceivedAt, SessionID: e.SessionID, Flags: e.Flags}
			}
		}
		if err != nil {
			r.Err = err
			if failedAt < 0 {
				failedAt = i
			}
		}
	}
	if !b.Atomic {
		return nil
	}
	u := p.undo
	p.undo = nil
	if failedAt < 0 {
		return nil
	}
	// All or none: forget what the batch did.
	for _, ref := range added {
		delete(p.known, ref)
	}
	for _, e := range p.plan.Events[mark:] {
		e.Seq = 0
	}
	p.plan.Events = p.plan.Events[:mark]
	p.next[acct] = seqMark
	restore(p.st.Lifecycles, u.l)
	restore(p.st.Profiles, u.p)
	restore(p.st.Sessions, u.s)
	restore(p.st.Visits, u.v)
	p.ended = p.ended[:u.ended]
	failed := Errorf(ECONFLICT, "not stored: event %d (id %q) of this atomic batch failed: %s",
		failedAt, b.Events[failedAt].ID, ErrorMessage(b.Results[failedAt].Err))
	for i := range b.Results {
		if b.Results[i].Err == nil {
			b.Results[i] = AppendResult{Err: failed}
		}
	}
	return nil
}

// restore puts back into m what saved says each ref was before.
func restore[T any](m map[Ref]*T, saved map[Ref]*T) {
	for ref, v := range saved {
		if v == nil {
			delete(m, ref)
		} else {
			m[ref] = v
		}
	}
}

// save notes, during an atomic batch, what ref was before the batch first
// changed it.
func save[T any](saved map[Ref]*T, ref Ref, cur *T, clone func(*T) *T) {
	if _, ok := saved[ref]; ok {
		return
	}
	var before *T
	if cur != nil {
		before = clone(cur)
	}
	saved[ref] = before
}

// touch marks ref changed, keeping the order of first changes.
func touch(dirty map[Ref]bool, order *[]Ref, ref Ref) {
	if !dirty[ref] {
		dirty[ref] = true
		*order = append(*order, ref)
	}
}

// track applies e, whose Seq is set, to its lifecycle and profile. An
// EINVALID error leaves both unchanged; any other error is internal.
func (p *planner) track(e *Event) error {
	p.newProfile = false
	if e.EventLifecycleID != "" {
		ref := Ref{e.AccountID, e.EventLifecycleID}
		l := p.st.Lifecycles[ref]
		if p.undo != nil {
			save(p.undo.l, ref, l, (*Lifecycle).Clone)
		}
		if l == nil {
			l = NewLifecycle(e.AccountID, e.EventLifecycleID)
		}
		if err := l.Apply(e, e.Def); err != nil {
			return err
		}
		p.st.Lifecycles[ref] = l
		touch(p.dirtyL, &p.orderL, ref)
	}
	if id := e.EntityID(); id != "" {
		ref := Ref{e.AccountID, id}
		pr := p.st.Profiles[ref]
		if p.undo != nil {
			save(p.undo.p, ref, pr, (*Profile).Clone)
		}
		if pr == nil {
			pr = NewProfile(e.AccountID, id)
		}
		p.newProfile = pr.EventCount == 0
		if err := pr.Apply(e, e.Def); err != nil {
			return fmt.Errorf("apply event %s: %w", e.ID, err)
		}
		p.st.Profiles[ref] = pr
		touch(p.dirtyP, &p.orderP, ref)
	}
	return nil
}

// settings returns the settings of acct.
func (p *planner) settings(acct string) *Settings {
	if s := p.st.Settings[acct]; s != nil {
		return s
	}
	if p.st.Settings == nil {
		p.st.Settings = map[string]*Settings{}
	}
	s := DefaultSettings()
	p.st.Settings[acct] = s
	return s
}

// emit adds a system event to the plan, after those already there.
func (p *planner) emit(s SystemEvent) error {
	e, err := s.Event()
	if err != nil {
		return err
	}
	e.Seq = p.next[s.AccountID] + 1
	p.next[s.AccountID] = e.Seq
	p.plan.Events = append(p.plan.Events, e)
	return nil
}

// journey keeps the session and visit of e, a new event that has its seq,
// and writes the journey system events it causes, after it.
func (p *planner) journey(e *Event, by Actor) error {
	acct, now := e.AccountID, e.ReceivedAt
	set := p.settings(acct)
	if by.ID == "" {
		by = SystemActor
	}
	var entityRef Ref
	var visit *Visit
	if id := e.EntityID(); id != "" {
		entityRef = Ref{acct, id}
		visit = p.st.Visits[entityRef]
		if p.undo != nil {
			save(p.undo.v, entityRef, visit, (*Visit).Clone)
		}
		if visit != nil {
			if err := p.expireVisit(entityRef, visit, now, by); err != nil {
				return err
			}
			visit = p.st.Visits[entityRef]
		}
	}

	login := isType(set.Sessions.LoginTypes, e.Category, e.Type)
	logout := isType(set.Sessions.LogoutTypes, e.Category, e.Type)
	if login && e.SessionID == "" {
		e.SessionID, e.prepared = NewEventID(), nil
	}
	var sessionRef Ref
	var session *Session
	if e.SessionID != "" {
		sessionRef = Ref{acct, e.SessionID}
		session = p.st.Sessions[sessionRef]
		if p.undo != nil {
			save(p.undo.s, sessionRef, session, (*Session).Clone)
		}
		if session != nil && session.Open() {
			if err := p.expireSession(sessionRef, session, now, by); err != nil {
				return err
			}
		}
	}

	if p.newProfile && set.JourneyEvents.ProfileCreated {
		err := p.emit(SystemEvent{
			AccountID: acct, SubjectType: SubjectEntity, SubjectID: entityRef.ID, Verb: VerbCreated,
			By: by, At: now, Fields: map[string]any{"eventId": e.ID},
		})
		if err != nil {
			return err
		}
	}
	if entityRef.ID != "" {
		if visit == nil {
			visit = &Visit{ID: NewEventID(), AccountID: acct, EntityID: entityRef.ID, StartedAt: now, FirstSeq: e.Seq}
			if set.JourneyEvents.VisitStarted {
				err := p.emit(SystemEvent{
					AccountID: acct, SubjectType: SubjectVisit, SubjectID: visit.ID, Verb: VerbStarted,
					By: by, At: now, Fields: map[string]any{"entityId": visit.EntityID, "eventId": e.ID},
				})
				if err != nil {
					return err
				}
			}
		}
		if now.After(visit.LastActivityAt) {
			visit.LastActivityAt = now
		}
		visit.EventCount++
		visit.LastSeq = e.Seq
		visit.ExpiresAt = visit.LastActivityAt.Add(time.Duration(set.Visits.Timeout))
		p.st.Visits[entityRef] = visit
		touch(p.dirtyV, &p.orderV, entityRef)
	}

	if e.SessionID == "" {
		return nil
	}
	switch {
	case session == nil && login:
		session = &Session{
			ID: e.SessionID, AccountID: acct, EntityID: entityRef.ID, StartedAt: now,
			StartEventID: e.ID, StartSeq: e.Seq,
		}
		if set.JourneyEvents.SessionStarted {
			err := p.emit(SystemEvent{
				AccountID: acct, SubjectType: SubjectSession, SubjectID: session.ID, Verb: VerbStarted,
				By: by, At: now, Fields: map[string]any{"entityId": session.EntityID, "eventId": e.ID},
			})
			if err != nil {
				return err
			}
		}
	case session == nil:
		e.Flags, e.prepared = append(e.Flags, FlagSessionUnknown), nil
		return nil
	case !session.Open():
		e.Flags, e.prepared = append(e.Flags, FlagSessionEnded), nil
		return nil
	}
	if now.After(session.LastActivityAt) {
		session.LastActivityAt = now
	}
	session.EventCount++
	session.LastSeq = e.Seq
	session.ExpiresAt, _ = sessionExpiry(session, set)
	p.st.Sessions[sessionRef] = session
	touch(p.dirtyS, &p.orderS, sessionRef)
	if logout {
		return p.endSession(sessionRef, session, now, EndLogout, now, by)
	}
	return nil
}

// sessionExpiry returns when s ends if nothing more happens, and why.
func sessionExpiry(s *Session, set *Settings) (time.Time, string) {
	idle := s.LastActivityAt.Add(time.Duration(set.Sessions.InactivityTimeout))
	limit := s.StartedAt.Add(time.Duration(set.Sessions.MaxLength))
	if !limit.After(idle) {
		return limit, EndMaxLength
	}
	return idle, EndTimeout
}

// expireSession ends the open session s if its time ran out by now, by the
// account's settings as they are now.
func (p *planner) expireSession(ref Ref, s *Session, now time.Time, by Actor) error {
	at, reason := sessionExpiry(s, p.settings(ref.AccountID))
	if at.After(now) {
		if !at.Equal(s.ExpiresAt) {
			// The settings changed since: keep the sweeper's index true.
			s.ExpiresAt = at
			touch(p.dirtyS, &p.orderS, ref)
		}
		return nil
	}
	return p.endSession(ref, s, at, reason, now, by)
}

// endSession ends s at the given time and writes its system event: ended
// for a logout, terminated for a timeout or the maximum length.
func (p *planner) endSession(ref Ref, s *Session, at time.Time, reason string, now time.Time, by Actor) error {
	s.EndedAt, s.EndReason, s.ExpiresAt = &at, reason, time.Time{}
	p.st.Sessions[ref] = s
	touch(p.dirtyS, &p.orderS, ref)
	set := p.settings(ref.AccountID)
	verb, on, notes := VerbEnded, set.JourneyEvents.SessionEnded, "the session ended with a logout"
	if reason != EndLogout {
		verb, on = VerbTerminated, set.JourneyEvents.SessionTerminated
		notes = "the session was terminated: " + endNotes[reason]
	}
	if !on {
		return nil
	}
	return p.emit(SystemEvent{
		AccountID: ref.AccountID, SubjectType: SubjectSession, SubjectID: s.ID, Verb: verb,
		By: by, At: at, Received: now, Notes: notes,
		Fields: map[string]any{
			"reason": reason, "entityId": s.EntityID, "startedAt": s.StartedAt, "eventCount": s.EventCount,
		},
	})
}

var endNotes = map[string]string{
	EndTimeout:   "no event for the inactivity timeout",
	EndMaxLength: "it reached its maximum length",
}

// expireVisit ends the open visit v if its entity has been idle for the
// visit timeout by now.
func (p *planner) expireVisit(ref Ref, v *Visit, now time.Time, by Actor) error {
	set := p.settings(ref.AccountID)
	at := v.LastActivityAt.Add(time.Duration(set.Visits.Timeout))
	if at.After(now) {
		if !at.Equal(v.ExpiresAt) {
			v.ExpiresAt = at
			touch(p.dirtyV, &p.orderV, ref)
		}
		return nil
	}
	v.EndedAt, v.EndReason, v.ExpiresAt = &at, EndTimeout, time.Time{}
	p.ended = append(p.ended, v)
	delete(p.st.Visits, ref)
	if !set.JourneyEvents.VisitEnded {
		return nil
	}
	return p.emit(SystemEvent{
		AccountID: ref.AccountID, SubjectType: SubjectVisit, SubjectID: v.ID, Verb: VerbEnded,
		By: by, At: at, Received: now, Notes: "the visit ended: no event for the visit timeout",
		Fields: map[string]any{
			"reason": EndTimeout, "entityId": v.EntityID, "startedAt": v.StartedAt, "eventCount": v.EventCount,
		},
	})
}

// Tracker builds lifecycles and profiles from events already stored,
// applied in seq order as AppendEvents applied them: for a store's
// migration that builds them for the events stored before it kept them.
// No type was known for those events, so each is applied as of an
// unregistered type; one that may not join its lifecycle (another type's)
// stays out of it, as AppendEvents would have refused it.
type Tracker struct {
	lifecycles map[Ref]*Lifecycle
	profiles   map[Ref]*Profile
	orderL     []*Lifecycle
	orderP     []*Profile
}

// NewTracker returns an empty Tracker.
func NewTracker() *Tracker {
	return &Tracker{lifecycles: map[Ref]*Lifecycle{}, profiles: map[Ref]*Profile{}}
}

// Add applies the stored event e (Seq and AccountID set); events must come
// in seq order within an account.
func (t *Tracker) Add(e *Event) error {
	if e.EventLifecycleID != "" {
		ref := Ref{e.AccountID, e.EventLifecycleID}
		l := t.lifecycles[ref]
		if l == nil {
			l = NewLifecycle(e.AccountID, e.EventLifecycleID)
		}
		switch err := l.Apply(e, nil); {
		case err == nil && t.lifecycles[ref] == nil:
			t.lifecycles[ref] = l
			t.orderL = append(t.orderL, l)
		case err != nil && ErrorCode(err) != EINVALID:
			return fmt.Errorf("event %s of %s: %w", e.ID, e.AccountID, err)
		}
	}
	if id := e.EntityID(); id != "" {
		ref := Ref{e.AccountID, id}
		p := t.profiles[ref]
		if p == nil {
			p = NewProfile(e.AccountID, id)
			t.profiles[ref] = p
			t.orderP = append(t.orderP, p)
		}
		if err := p.Apply(e, nil); err != nil {
			return fmt.Errorf("event %s of %s: %w", e.ID, e.AccountID, err)
		}
	}
	return nil
}

// Lifecycles returns the lifecycles built, in the order they began.
func (t *Tracker) Lifecycles() []*Lifecycle { return t.orderL }

// Profiles returns the profiles built, in the order they began.
func (t *Tracker) Profiles() []*Profile { return t.orderP }
