package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/heraldhq/herald"
)

// DefaultKeyCacheTTL is how long a key lookup is remembered by default.
//
// The trade-off: without a cache every request costs one store query before
// it does any work, which on the hot ingest path doubles the queries. With
// one, a key deleted through another Herald process (several share one
// PostgreSQL) keeps working in this process for up to the TTL. Two seconds
// keeps that window shorter than any human reaction to a leaked key, while
// a busy client with one key costs one lookup per two seconds instead of
// thousands. A key deleted through this process is forgotten at once.
const DefaultKeyCacheTTL = 2 * time.Second

// defaultKeyCacheSize bounds the cache, so that a flood of made-up keys
// cannot grow it without limit.
const defaultKeyCacheSize = 10000

// keyCache remembers key lookups by hash for a short while: found keys and
// also unknown ones, so a misconfigured client hammering with a wrong key
// does not reach the store on every request either. Store errors are not
// remembered. Concurrent lookups of one hash share one query.
type keyCache struct {
	keys  herald.KeyService
	ttl   time.Duration // <= 0: no caching
	max   int
	now   func() time.Time
	group singleflight.Group

	mu      sync.Mutex
	entries map[string]keyEntry
	gen     uint64 // counts deletions
}

// sharedLookupTimeout bounds a key lookup that no single request owns.
const sharedLookupTimeout = 10 * time.Second

type keyEntry struct {
	key     *herald.APIKey // nil: no key has this hash
	expires time.Time
}

func newKeyCache(keys herald.KeyService, ttl time.Duration, max int, now func() time.Time) *keyCache {
	return &keyCache{keys: keys, ttl: ttl, max: max, now: now, entries: map[string]keyEntry{}}
}

// find returns the key with the given hash, or ENOTFOUND. The key returned
// is shared: callers must not change it.
func (c *keyCache) find(ctx context.Context, hash string) (*herald.APIKey, error) {
	if c.ttl <= 0 {
		return c.lookup(ctx, hash)
	}
	c.mu.Lock()
	e, ok := c.entries[hash]
	gen := c.gen
	c.mu.Unlock()
	if ok && c.now().Before(e.expires) {
		if e.key == nil {
			return nil, herald.Errorf(herald.ENOTFOUND, "no such key")
		}
		return e.key, nil
	}
	v, err, _ := c.group.Do(hash, func() (any, error) {
		// The lookup is shared by every request waiting for this hash, so
		// one of them going away must not fail the others.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedLookupTimeout)
		defer cancel()
		k, err := c.lookup(ctx, hash)
		switch herald.ErrorCode(err) {
		case "":
			c.put(hash, k, gen)
		case herald.ENOTFOUND:
			c.put(hash, nil, gen)
		}
		return k, err
	})
	if err != nil {
		return nil, err
	}
	return v.(*herald.APIKey), nil
}

func (c *keyCache) lookup(ctx context.Context, hash string) (*herald.APIKey, error) {
	k, err := c.keys.FindKeyByHash(ctx, hash)
	if err == nil && k == nil {
		return nil, fmt.Errorf("find key by hash: the store returned neither a key nor an error")
	}
	return k, err
}

// put remembers a lookup that started at generation gen, unless a key was
// deleted since: the lookup may have read that key before it was deleted.
func (c *keyCache) put(hash string, k *herald.APIKey, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	now := c.now()
	if len(c.entries) >= c.max {
		for h, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, h)
			}
		}
		if len(c.entries) >= c.max {
			// All fresh: start over rather than scan on every insert. The
			// cost is a burst of lookups, which the cache exists to bound
			// anyway.
			clear(c.entries)
		}
	}
	c.entries[hash] = keyEntry{key: k, expires: now.Add(c.ttl)}
}

// forget drops a deleted key, so that this process refuses it at once.
func (c *keyCache) forget(accountID, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for h, e := range c.entries {
		if e.key != nil && e.key.AccountID == accountID && e.key.ID == id {
			delete(c.entries, h)
		}
	}
}

type keyContextKey struct{}

// keyFrom returns the key that authenticated the request. Only routes with a
// scope have one.
func keyFrom(ctx context.Context) *herald.APIKey {
	k, _ := ctx.Value(keyContextKey{}).(*herald.APIKey)
	return k
}

// maxKeyLength bounds what is hashed and looked up: no key is longer.
const maxKeyLength = 256

// authenticate finds the request's key and checks it may call rt. When it
// may not, it has answered (401 or 403) and returns false.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, rt route) (*herald.APIKey, bool) {
	unauthorized := func(bearerError, detail string) (*herald.APIKey, bool) {
		challenge := `Bearer realm="herald"`
		if bearerError != "" {
			challenge += `, error="` + bearerError + `"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
		writeProblem(w, r, kindUnauthorized.problem(detail))
		return nil, false
	}

	h := r.Header.Get("Authorization")
	if h == "" {
		return unauthorized("", "this route needs an API key: send the header Authorization: Bearer <key>")
	}
	scheme, secret, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return unauthorized("invalid_request", "the Authorization header must use the Bearer scheme: Authorization: Bearer <key>")
	}
	secret = strings.TrimSpace(secret)
	if len(secret) < herald.MinKeyLength || len(secret) > maxKeyLength {
		return unauthorized("invalid_token", "unknown API key")
	}
	key, err := s.keyCache.find(r.Context(), herald.HashKey(secret))
	switch herald.ErrorCode(err) {
	case "":
	case herald.ENOTFOUND:
		return unauthorized("invalid_token", "unknown API key")
	default:
		s.writeError(w, r, fmt.Errorf("find key: %w", err))
		return nil, false
	}

	infoFrom(r.Context()).account = key.AccountID
	if rt.scope == scopeBootstrap {
		if !key.Bootstrap {
			writeProblem(w, r, kindForbidden.problem(fmt.Sprintf("only the bootstrap key may call %s %s", rt.method, rt.path)))
			return nil, false
		}
		return key, true
	}
	if !key.Can(rt.scope) {
		writeProblem(w, r, kindForbidden.problem(fmt.Sprintf("%s %s needs a key with the %q scope; this key has %s", rt.method, rt.path, rt.scope, scopeList(key.Scopes))))
		return nil, false
	}
	return key, true
}

func scopeList(scopes []string) string {
	if len(scopes) == 0 {
		return "no scopes"
	}
	return `"` + strings.Join(scopes, `", "`) + `"`
}
