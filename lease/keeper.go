package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"time"
)

// Worker works on one held item, in a goroutine of the Keeper's, until
// stopped. Its methods other than Run are called with the Keeper's lock
// held: they must not block.
type Worker[V any] interface {
	comparable
	// Run works until stopped (or until the worker gives up, for instance
	// when the store says the item is no longer its to work on).
	Run()
	// Stop asks Run to return; it does not wait.
	Stop()
	// WakeUp tells the worker that its account has news (Notify).
	WakeUp()
	// Renew gives a running worker the item as just leased; refreshed
	// says that Refresh asked for this lease round. It reports false if
	// the worker cannot take the item on: the Keeper stops it and starts
	// a successor.
	Renew(item V, refreshed bool) bool
}

// Gauge is where a Keeper reports how many items it holds: a
// prometheus.Gauge.
type Gauge interface{ Set(float64) }

// Config configures a Keeper. All but Release, Released, Held and Mu are
// required.
type Config[K comparable, V any, W Worker[V]] struct {
	// Name says what is leased, in errors: "subscriptions".
	Name string
	// Owner names this node in leases.
	Owner string
	// TTL is how long a lease lasts unless renewed. The Keeper renews
	// every TTL/3 when nobody calls Refresh, which lets two renewals fail
	// before a lease runs out.
	TTL time.Duration
	// Lease renews Owner's leases and takes free items; it returns every
	// item Owner holds. On an error the round is skipped and the workers
	// run on: Lease reports the error itself (ctx is cancelled when the
	// Keeper closes, which is no error to report).
	Lease func(ctx context.Context) ([]V, error)
	// Release gives every lease of owner up, so that other nodes can
	// take the items over at once; Close calls it once the workers
	// exited, with releaseTimeout to do it.
	Release func(ctx context.Context, owner string) error
	// Key identifies an item; Account is the account of a key, whose
	// workers Notify wakes.
	Key     func(V) K
	Account func(K) string
	// New returns the worker of item, not yet running. prev, if not the
	// zero W, is its predecessor: stopped, maybe still saving; the new
	// worker waits for it to exit and goes on from where it stopped.
	New func(item V, prev W) W
	// Released, if set, is called when an item is no longer held (not
	// when its worker is replaced).
	Released func(K)
	// Held, if set, is given the number of items held after each lease
	// round.
	Held Gauge
	// Mu, if set, is the lock of the Keeper's state, so that its owner
	// can read Running under it; default a lock of the Keeper's own.
	Mu *sync.RWMutex
}

// Keeper leases items and keeps one worker running for each item held,
// from Start until Close.
type Keeper[K comparable, V any, W Worker[V]] struct {
	cfg     Config[K, V, W]
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	start   sync.Once
	refresh chan struct{}

	mu *sync.RWMutex
	// running holds the worker of each item held; retired, workers
	// stopped that have not exited yet (a successor waits for them).
	running   map[K]W
	retired   map[K]W
	byAccount map[string]map[K]W
	// exits is closed for each worker of running or retired once its Run
	// returned.
	exits map[W]chan struct{}
}

// New returns a Keeper; Start starts it.
func New[K comparable, V any, W Worker[V]](cfg Config[K, V, W]) *Keeper[K, V, W] {
	mu := cfg.Mu
	if mu == nil {
		mu = new(sync.RWMutex)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Keeper[K, V, W]{
		cfg:       cfg,
		ctx:       ctx,
		cancel:    cancel,
		refresh:   make(chan struct{}, 1),
		mu:        mu,
		running:   make(map[K]W),
		retired:   make(map[K]W),
		byAccount: make(map[string]map[K]W),
		exits:     make(map[W]chan struct{}),
	}
}

// DefaultOwner names this process in leases: host name, process id and a
// random part, so that two processes on one host differ too.
func DefaultOwner() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

// Start leases and runs the workers in the background; it does nothing
// after the first call or after Close.
func (k *Keeper[K, V, W]) Start() {
	k.start.Do(func() {
		k.wg.Add(1)
		go func() {
			defer k.wg.Done()
			k.loop()
		}()
	})
}

// releaseTimeout bounds Config.Release at Close.
const releaseTimeout = 5 * time.Second

// Close stops every worker, waits for them all and for the loop to
// return, then gives the leases up (Config.Release) and returns its
// error.
func (k *Keeper[K, V, W]) Close() error {
	k.start.Do(func() {}) // a Start after Close starts nothing
	k.cancel()
	k.wg.Wait()
	if k.cfg.Release == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	if err := k.cfg.Release(ctx, k.cfg.Owner); err != nil {
		return fmt.Errorf("release %s of %s: %w", k.cfg.Name, k.cfg.Owner, err)
	}
	return nil
}

// Refresh has the Keeper lease at once, and the workers renewed with
// refreshed true.
func (k *Keeper[K, V, W]) Refresh() {
	select {
	case k.refresh <- struct{}{}:
	default:
	}
}

// Notify wakes the workers of an account.
func (k *Keeper[K, V, W]) Notify(accountID string) {
	k.mu.RLock()
	for _, w := range k.byAccount[accountID] {
		w.WakeUp()
	}
	k.mu.RUnlock()
}

// NotifyOthers wakes the workers of an account but except.
func (k *Keeper[K, V, W]) NotifyOthers(accountID string, except W) {
	k.mu.RLock()
	for _, w := range k.byAccount[accountID] {
		if w != except {
			w.WakeUp()
		}
	}
	k.mu.RUnlock()
}

// Running is the worker of each item held. It is the Keeper's own map,
// kept up to date in place: read it only with Config.Mu held, and never
// change it.
func (k *Keeper[K, V, W]) Running() map[K]W { return k.running }

func (k *Keeper[K, V, W]) loop() {
	t := time.NewTicker(k.cfg.TTL / 3)
	defer t.Stop()
	refreshed := true
	for {
		k.round(refreshed)
		select {
		case <-k.ctx.Done():
			k.mu.Lock()
			for _, w := range k.running {
				w.Stop()
			}
			k.mu.Unlock()
			return
		case <-t.C:
			refreshed = false
		case <-k.refresh:
			refreshed = true
		}
	}
}

// round renews the leases, starts workers for items newly held, stops
// those of items no longer held, and replaces those that exited or cannot
// take their item on.
func (k *Keeper[K, V, W]) round(refreshed bool) {
	items, err := k.cfg.Lease(k.ctx)
	if err != nil {
		return
	}
	held := make(map[K]V, len(items))
	for _, v := range items {
		held[k.cfg.Key(v)] = v
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ctx.Err() != nil {
		// Closing: the loop stops what runs; start nothing more.
		return
	}
	for key, w := range k.running {
		_, ok := held[key]
		if !ok || k.exited(w) {
			k.retire(key, w)
		}
		if !ok && k.cfg.Released != nil {
			k.cfg.Released(key)
		}
	}
	for key, v := range held {
		w, ok := k.running[key]
		switch {
		case !ok:
			k.begin(key, v, k.retired[key])
		case !w.Renew(v, refreshed):
			k.retire(key, w)
			k.begin(key, v, w)
		}
	}
	for key, w := range k.retired {
		if k.exited(w) {
			delete(k.retired, key)
			delete(k.exits, w)
		}
	}
	if k.cfg.Held != nil {
		k.cfg.Held.Set(float64(len(k.running)))
	}
}

// begin starts the worker of an item; prev, if any, is its predecessor,
// stopped and handed over to the new worker, which waits for it.
func (k *Keeper[K, V, W]) begin(key K, v V, prev W) {
	w := k.cfg.New(v, prev)
	if p, ok := k.retired[key]; ok {
		delete(k.retired, key)
		delete(k.exits, p)
	}
	k.running[key] = w
	acct := k.cfg.Account(key)
	if k.byAccount[acct] == nil {
		k.byAccount[acct] = make(map[K]W)
	}
	k.byAccount[acct][key] = w
	exit := make(chan struct{})
	k.exits[w] = exit
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		defer close(exit)
		w.Run()
	}()
}

// retire stops w and keeps it, for a successor to wait for.
func (k *Keeper[K, V, W]) retire(key K, w W) {
	w.Stop()
	delete(k.running, key)
	acct := k.cfg.Account(key)
	if m := k.byAccount[acct]; m != nil {
		delete(m, key)
		if len(m) == 0 {
			delete(k.byAccount, acct)
		}
	}
	k.retired[key] = w
}

func (k *Keeper[K, V, W]) exited(w W) bool {
	select {
	case <-k.exits[w]:
		return true
	default:
		return false
	}
}
