package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/heraldhq/herald"
	"golang.org/x/sync/singleflight"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// DefaultTTL is how long an account's types and settings are cached.
const DefaultTTL = 2 * time.Second

// Options tune a Catalog. Zero values take the defaults.
type Options struct {
	// TTL is how long an account's types and settings are cached.
	// Zero: DefaultTTL. Negative: no cache.
	TTL time.Duration
	// Now is the clock for the cache and for CreatedAt/UpdatedAt. Nil:
	// time.Now.
	Now func() time.Time
}

// Catalog serves the event types and settings of every account. It is safe
// for concurrent use.
type Catalog struct {
	types    herald.EventTypeService
	settings herald.SettingsService
	ttl      time.Duration
	now      func() time.Time
	printer  *message.Printer
	schemas  *schemaCache
	// builtins is the built-in catalog by key, never changed after New:
	// each account's view takes copies.
	builtins map[typeKey]*herald.EventType

	loads singleflight.Group
	mu    sync.RWMutex
	// gen counts changes made through the catalog. A load that started
	// before a change may have read what the change replaced, so its
	// result is used but not cached.
	gen     uint64
	views   map[string]cachedView
	sweepAt int
}

type cachedView struct {
	v       *view
	expires time.Time
}

// sweepMin is the number of cached accounts at which expired ones start
// being dropped.
const sweepMin = 1024

// New returns a Catalog over the stores of types and settings.
func New(types herald.EventTypeService, settings herald.SettingsService, opts Options) *Catalog {
	if opts.TTL == 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := message.NewPrinter(language.English)
	c := &Catalog{
		types:    types,
		settings: settings,
		ttl:      opts.TTL,
		now:      opts.Now,
		printer:  p,
		schemas:  newSchemaCache(p),
		builtins: map[typeKey]*herald.EventType{},
		views:    map[string]cachedView{},
		sweepAt:  sweepMin,
	}
	for _, t := range herald.BuiltinEventTypes() {
		c.builtins[typeKey{t.Category, t.Type}] = t
	}
	return c
}

type typeKey struct{ category, typ string }

// view is one account's catalog as loaded at one moment. It is shared by
// every caller until it expires and must not be changed.
type view struct {
	types    []*entry // by category then type
	byKey    map[typeKey]*entry
	byName   map[string]*entry
	settings *herald.Settings
}

// entry is one type of an account, ready for validating events.
type entry struct {
	def *herald.EventType
	// compiled is nil for a type without a schema.
	compiled *compiled
	// lifecycle holds the reference tokens of def.LifecycleIDPointer
	// below /data, unescaped, so that Prepare need not parse it per
	// event; nil when the type has no pointer.
	lifecycle []string
}

// EventTypes returns the account's types, built-in ones merged with the
// account's own, ordered by category then type.
func (c *Catalog) EventTypes(ctx context.Context, accountID string) ([]*herald.EventType, error) {
	v, err := c.view(ctx, accountID)
	if err != nil {
		return nil, err
	}
	types := make([]*herald.EventType, len(v.types))
	for i, e := range v.types {
		types[i] = clone(e.def)
	}
	return types, nil
}

// EventType returns one type, ENOTFOUND if the account has no such type.
func (c *Catalog) EventType(ctx context.Context, accountID, category, typ string) (*herald.EventType, error) {
	v, err := c.view(ctx, accountID)
	if err != nil {
		return nil, err
	}
	e := v.byKey[typeKey{category, typ}]
	if e == nil {
		return nil, notFound(category, typ)
	}
	return clone(e.def), nil
}

// CreateEventType adds a type: ECONFLICT if the account already has it
// (built-in types included) or has a type of that name in another
// category; EINVALID naming the field for a bad definition.
func (c *Catalog) CreateEventType(ctx context.Context, t *herald.EventType) error {
	if err := c.check(t, nil); err != nil {
		return err
	}
	if c.builtins[typeKey{t.Category, t.Type}] != nil {
		return herald.Errorf(herald.ECONFLICT, "%s is a built-in type: extend it with PUT /v1/event-types/%s", t.Key(), t.Key())
	}
	v, err := c.load(ctx, t.AccountID)
	if err != nil {
		return err
	}
	if v.byKey[typeKey{t.Category, t.Type}] != nil {
		return herald.Errorf(herald.ECONFLICT, "event type %s already exists: change it with PUT", t.Key())
	}
	if err := nameTaken(v, t); err != nil {
		return err
	}
	t.BuiltIn = false
	t.CreatedAt = c.timestamp()
	t.UpdatedAt = t.CreatedAt
	defer c.invalidate(t.AccountID)
	if err := c.types.CreateEventType(ctx, t); err != nil {
		return fmt.Errorf("create event type %s: %w", t.Key(), err)
	}
	return nil
}

// PutEventType creates or replaces a type and reports whether it created
// it. A built-in type may be extended but not broken: it keeps its
// schema, lifecycle-id pointer, statuses (terminal or not, as they are)
// and transitions; what the client leaves out is taken from it.
// Extending a built-in type does not create it: created is false.
func (c *Catalog) PutEventType(ctx context.Context, t *herald.EventType) (created bool, err error) {
	builtin := c.builtins[typeKey{t.Category, t.Type}]
	if err := c.check(t, builtin); err != nil {
		return false, err
	}
	v, err := c.load(ctx, t.AccountID)
	if err != nil {
		return false, err
	}
	if err := nameTaken(v, t); err != nil {
		return false, err
	}
	t.UpdatedAt = c.timestamp()
	t.CreatedAt = t.UpdatedAt
	if prev := v.byKey[typeKey{t.Category, t.Type}]; prev != nil && !prev.def.CreatedAt.IsZero() {
		t.CreatedAt = prev.def.CreatedAt
	}
	defer c.invalidate(t.AccountID)
	created, err = c.types.PutEventType(ctx, t)
	if err != nil {
		return false, fmt.Errorf("put event type %s: %w", t.Key(), err)
	}
	return created && builtin == nil, nil
}

// DeleteEventType deletes a type the account defined, or undoes the
// account's changes to a built-in one.
func (c *Catalog) DeleteEventType(ctx context.Context, accountID, category, typ string) error {
	defer c.invalidate(accountID)
	err := c.types.DeleteEventType(ctx, accountID, category, typ)
	switch {
	case err == nil:
		return nil
	case herald.ErrorCode(err) != herald.ENOTFOUND:
		return fmt.Errorf("delete event type %s/%s: %w", category, typ, err)
	case c.builtins[typeKey{category, typ}] != nil:
		return herald.Errorf(herald.ECONFLICT, "%s/%s is a built-in type: built-in types cannot be deleted", category, typ)
	default:
		return notFound(category, typ)
	}
}

// Schema returns the data schema named name ("<type>EventSchema"). A
// registered type without a schema accepts any object, and its schema
// says so.
func (c *Catalog) Schema(ctx context.Context, accountID, name string) (json.RawMessage, error) {
	typ, ok := strings.CutSuffix(name, "EventSchema")
	if !ok || typ == "" {
		return nil, herald.Errorf(herald.ENOTFOUND, "no schema %q: schema names are <type>EventSchema, such as loginEventSchema", name)
	}
	v, err := c.view(ctx, accountID)
	if err != nil {
		return nil, err
	}
	e := v.byName[typ]
	if e == nil {
		return nil, herald.Errorf(herald.ENOTFOUND, "no schema %s: the account has no event type %q", name, typ)
	}
	if len(e.def.Schema) == 0 {
		return json.RawMessage(permissiveSchema), nil
	}
	return bytes.Clone(e.def.Schema), nil
}

// Settings returns the account's settings.
func (c *Catalog) Settings(ctx context.Context, accountID string) (*herald.Settings, error) {
	v, err := c.view(ctx, accountID)
	if err != nil {
		return nil, err
	}
	s := *v.settings
	return &s, nil
}

// PutSettings replaces the account's settings. Empty fields take their
// defaults.
func (c *Catalog) PutSettings(ctx context.Context, accountID string, s *herald.Settings) error {
	fillSettings(s)
	if err := s.Validate(); err != nil {
		return err
	}
	defer c.invalidate(accountID)
	if err := c.settings.PutSettings(ctx, accountID, s); err != nil {
		return fmt.Errorf("put settings: %w", err)
	}
	return nil
}

func fillSettings(s *herald.Settings) {
	d := herald.DefaultSettings()
	if s.UnknownTypes == "" {
		s.UnknownTypes = d.UnknownTypes
	}
	// A zero duration was not given. (A list has no such tell: the API
	// decodes settings over the defaults, and null there means none.)
	for _, f := range []struct{ v, def *herald.Duration }{
		{&s.Sessions.InactivityTimeout, &d.Sessions.InactivityTimeout},
		{&s.Sessions.MaxLength, &d.Sessions.MaxLength},
		{&s.Visits.Timeout, &d.Visits.Timeout},
	} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
}

func notFound(category, typ string) error {
	return herald.Errorf(herald.ENOTFOUND, "no event type %s/%s", category, typ)
}

// nameTaken returns ECONFLICT if another category of the account has a
// type named like t: both would be served as the same <type>EventSchema.
func nameTaken(v *view, t *herald.EventType) error {
	if other := v.byName[t.Type]; other != nil && other.def.Category != t.Category {
		return herald.Errorf(herald.ECONFLICT, "type name %q is taken by %s: type names must be unique across categories, as each names a schema (%s)", t.Type, other.def.Key(), t.SchemaName())
	}
	return nil
}

func (c *Catalog) timestamp() time.Time {
	return c.now().UTC().Truncate(time.Microsecond)
}

// view returns the account's catalog, from the cache while it is fresh.
func (c *Catalog) view(ctx context.Context, accountID string) (*view, error) {
	if c.ttl < 0 {
		return c.load(ctx, accountID)
	}
	v, gen := c.cached(accountID)
	if v != nil {
		return v, nil
	}
	// Callers that miss at once share one load. The key holds the
	// generation so that a caller arriving after a change does not join
	// a load that may have read what the change replaced.
	key := accountID + "\x00" + strconv.FormatUint(gen, 10)
	res, err, _ := c.loads.Do(key, func() (any, error) {
		// A load may have ended between this caller's miss and its
		// call: then its result is in the cache.
		if v, _ := c.cached(accountID); v != nil {
			return v, nil
		}
		v, err := c.load(ctx, accountID)
		if err != nil {
			return nil, err
		}
		c.store(accountID, v, gen)
		return v, nil
	})
	if err != nil {
		// The load ran under the context of whichever caller started
		// it; if that one gave up, the others should not.
		if ctx.Err() == nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			return c.load(ctx, accountID)
		}
		return nil, err
	}
	return res.(*view), nil
}

// cached returns the account's cached catalog if it is fresh, and the
// current generation.
func (c *Catalog) cached(accountID string) (*view, uint64) {
	c.mu.RLock()
	cv, ok := c.views[accountID]
	gen := c.gen
	c.mu.RUnlock()
	if ok && c.now().Before(cv.expires) {
		return cv.v, gen
	}
	return nil, gen
}

func (c *Catalog) store(accountID string, v *view, gen uint64) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if len(c.views) >= c.sweepAt {
		for id, cv := range c.views {
			if !now.Before(cv.expires) {
				delete(c.views, id)
			}
		}
		c.sweepAt = max(sweepMin, 2*len(c.views))
	}
	c.views[accountID] = cachedView{v: v, expires: now.Add(c.ttl)}
}

// invalidate drops the account's cached catalog after a change made
// through this Catalog (successful or not: a failed write may still have
// reached the store).
func (c *Catalog) invalidate(accountID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.views, accountID)
}

// load reads the account's catalog from the stores.
func (c *Catalog) load(ctx context.Context, accountID string) (*view, error) {
	stored, err := c.types.FindEventTypes(ctx, accountID)
	if err != nil {
		return nil, fmt.Errorf("find event types of account %s: %w", accountID, err)
	}
	settings, err := c.settings.FindSettings(ctx, accountID)
	if err != nil {
		return nil, fmt.Errorf("find settings of account %s: %w", accountID, err)
	}
	s := *settings
	fillSettings(&s)

	byKey := make(map[typeKey]*herald.EventType, len(c.builtins)+len(stored))
	for k, t := range c.builtins {
		byKey[k] = clone(t)
	}
	for _, t := range stored {
		t = clone(t)
		if b := c.builtins[typeKey{t.Category, t.Type}]; b != nil {
			rebase(t, b)
		}
		markBuiltIn(t, c.builtins[typeKey{t.Category, t.Type}])
		normalize(t)
		byKey[typeKey{t.Category, t.Type}] = t
	}
	v := &view{
		types:    make([]*entry, 0, len(byKey)),
		byKey:    make(map[typeKey]*entry, len(byKey)),
		byName:   make(map[string]*entry, len(byKey)),
		settings: &s,
	}
	for k, t := range byKey {
		t.AccountID = accountID
		e := &entry{def: t}
		if len(t.Schema) > 0 {
			e.compiled = c.schemas.get(t.Schema)
		}
		if t.LifecycleIDPointer != "" {
			e.lifecycle = tokens(strings.TrimPrefix(t.LifecycleIDPointer, "/data"))
		}
		v.types = append(v.types, e)
		v.byKey[k] = e
		v.byName[t.Type] = e
	}
	slices.SortFunc(v.types, func(a, b *entry) int {
		if c := strings.Compare(a.def.Category, b.def.Category); c != 0 {
			return c
		}
		return strings.Compare(a.def.Type, b.def.Type)
	})
	return v, nil
}

// tokens splits a JSON Pointer into its unescaped reference tokens.
func tokens(p string) []string {
	if p == "" {
		return []string{}
	}
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, s := range parts {
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	return parts
}

// markBuiltIn sets the BuiltIn flags of t from the built-in catalog,
// whatever a client sent: builtin is t's built-in counterpart, or nil.
func markBuiltIn(t, builtin *herald.EventType) {
	t.BuiltIn = builtin != nil
	for i := range t.Statuses {
		t.Statuses[i].BuiltIn = builtin != nil && builtin.Status(t.Statuses[i].Name) != nil
	}
}

// clone returns a deep copy of t.
func clone(t *herald.EventType) *herald.EventType {
	c := *t
	c.Schema = bytes.Clone(t.Schema)
	c.Statuses = cloneStatuses(t.Statuses)
	c.TerminalStatuses = slices.Clone(t.TerminalStatuses)
	c.Transitions = cloneTransitions(t.Transitions)
	c.ProfileFields = slices.Clone(t.ProfileFields)
	return &c
}

func cloneStatuses(statuses []herald.StatusDef) []herald.StatusDef {
	c := slices.Clone(statuses)
	for i := range c {
		c[i].Workflows = slices.Clone(c[i].Workflows)
	}
	return c
}

func cloneTransitions(m map[string][]string) map[string][]string {
	if m == nil {
		return nil
	}
	c := make(map[string][]string, len(m))
	for k, v := range m {
		c[k] = slices.Clone(v)
	}
	return c
}
