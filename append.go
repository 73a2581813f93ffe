package herald

import (
	"fmt"
	"slices"
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
}

// KeysOf returns what a store must read before PlanAppend(batches, …).
func KeysOf(batches []*AppendBatch) AppendKeys {
	var k AppendKeys
	seenL, seenP := map[Ref]bool{}, map[Ref]bool{}
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
		}
	}
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
	p := &planner{
		st:     st,
		plan:   &AppendPlan{LastSeq: map[string]int64{}},
		next:   map[string]int64{},
		known:  map[Ref]StoredEvent{},
		dirtyL: map[Ref]bool{},
		dirtyP: map[Ref]bool{},
	}
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
	for a, seq := range p.next {
		if seq != st.LastSeq[a] {
			p.plan.LastSeq[a] = seq
		}
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
	return p.plan, nil
}

// planner is one PlanAppend under way.
type planner struct {
	st   *AppendState
	plan *AppendPlan
	next map[string]int64 // last seq given, by account
	// known holds the events accepted earlier in the call.
	known          map[Ref]StoredEvent
	dirtyL, dirtyP map[Ref]bool
	orderL, orderP []Ref // dirty refs in the order first changed
	// undoL and undoP, during an atomic batch, hold the lifecycles and
	// profiles as they were before it (nil: they did not exist).
	undoL map[Ref]*Lifecycle
	undoP map[Ref]*Profile
}

func (p *planner) batch(b *AppendBatch, check func(*Event) error) error {
	acct := b.AccountID
	if _, ok := p.next[acct]; !ok {
		p.next[acct] = p.st.LastSeq[acct]
	}
	var (
		mark     = len(p.plan.Events)
		seqMark  = p.next[acct]
		added    []Ref
		failedAt = -1
	)
	if b.Atomic {
		p.undoL, p.undoP = map[Ref]*Lifecycle{}, map[Ref]*Profile{}
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
				*r = AppendResult{Seq: prior.Seq, ReceivedAt: prior.ReceivedAt, Duplicate: true}
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
				p.known[ref] = StoredEvent{Seq: e.Seq, ReceivedAt: e.ReceivedAt, Hash: e.Hash}
				added = append(added, ref)
				p.plan.Events = append(p.plan.Events, e)
				*r = AppendResult{Seq: e.Seq, ReceivedAt: e.ReceivedAt}
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
	undoL, undoP := p.undoL, p.undoP
	p.undoL, p.undoP = nil, nil
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
	for ref, l := range undoL {
		if l == nil {
			delete(p.st.Lifecycles, ref)
		} else {
			p.st.Lifecycles[ref] = l
		}
	}
	for ref, pr := range undoP {
		if pr == nil {
			delete(p.st.Profiles, ref)
		} else {
			p.st.Profiles[ref] = pr
		}
	}
	failed := Errorf(ECONFLICT, "not stored: event %d (id %q) of this atomic batch failed: %s",
		failedAt, b.Events[failedAt].ID, ErrorMessage(b.Results[failedAt].Err))
	for i := range b.Results {
		if b.Results[i].Err == nil {
			b.Results[i] = AppendResult{Err: failed}
		}
	}
	return nil
}

// track applies e, whose Seq is set, to its lifecycle and profile. An
// EINVALID error leaves both unchanged; any other error is internal.
func (p *planner) track(e *Event) error {
	if e.EventLifecycleID != "" {
		ref := Ref{e.AccountID, e.EventLifecycleID}
		l := p.st.Lifecycles[ref]
		if p.undoL != nil {
			if _, saved := p.undoL[ref]; !saved {
				var before *Lifecycle
				if l != nil {
					before = l.Clone()
				}
				p.undoL[ref] = before
			}
		}
		if l == nil {
			l = NewLifecycle(e.AccountID, e.EventLifecycleID)
		}
		if err := l.Apply(e, e.Def); err != nil {
			return err
		}
		if p.st.Lifecycles == nil {
			p.st.Lifecycles = map[Ref]*Lifecycle{}
		}
		p.st.Lifecycles[ref] = l
		if !p.dirtyL[ref] {
			p.dirtyL[ref] = true
			p.orderL = append(p.orderL, ref)
		}
	}
	if id := e.EntityID(); id != "" {
		ref := Ref{e.AccountID, id}
		pr := p.st.Profiles[ref]
		if p.undoP != nil {
			if _, saved := p.undoP[ref]; !saved {
				var before *Profile
				if pr != nil {
					before = pr.Clone()
				}
				p.undoP[ref] = before
			}
		}
		if pr == nil {
			pr = NewProfile(e.AccountID, id)
		}
		if err := pr.Apply(e, e.Def); err != nil {
			return fmt.Errorf("apply event %s: %w", e.ID, err)
		}
		if p.st.Profiles == nil {
			p.st.Profiles = map[Ref]*Profile{}
		}
		p.st.Profiles[ref] = pr
		if !p.dirtyP[ref] {
			p.dirtyP[ref] = true
			p.orderP = append(p.orderP, ref)
		}
	}
	return nil
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
