package herald

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"time"
)

// DefaultAccountID is the account Herald creates on first start.
const DefaultAccountID = "default"

// Account is a tenant. Everything else belongs to exactly one account, and
// no API key ever sees another account's data.
type Account struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
}

// Scopes an API key may carry. ScopeAdmin includes the other two.
const (
	ScopeIngest = "ingest"
	ScopeRead   = "read"
	ScopeAdmin  = "admin"
)

// Scopes lists every scope, in the order they are documented.
var Scopes = []string{ScopeIngest, ScopeRead, ScopeAdmin}

// APIKey authenticates requests to one account. Only the SHA-256 of the
// secret is stored: the secret is 32 random bytes, so a fast hash is as
// safe as a slow KDF and costs nothing per request.
type APIKey struct {
	ID        string `json:"id"`
	AccountID string `json:"accountId"`
	Name      string `json:"name,omitempty"`
	// Prefix is the start of the secret, to tell keys apart in a list.
	Prefix string   `json:"prefix"`
	Scopes []string `json:"scopes"`
	// Bootstrap marks the operator's key made at first start: the only one
	// that may create accounts.
	Bootstrap bool      `json:"bootstrap,omitempty"`
	CreatedAt time.Time `json:"createdAt"`

	// Hash is HashKey of the secret.
	Hash string `json:"-"`
}

// Can reports whether the key grants scope.
func (k *APIKey) Can(scope string) bool {
	return slices.Contains(k.Scopes, ScopeAdmin) || slices.Contains(k.Scopes, scope)
}

// MinKeyLength is the shortest secret accepted, also for a bootstrap key an
// operator chooses.
const MinKeyLength = 16

// keyPrefixLength is how much of a secret is kept in the clear.
const keyPrefixLength = 10

// NewKeySecret returns a fresh secret and the prefix and hash to store.
func NewKeySecret() (secret, prefix, hash string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	secret = "hk_" + hex.EncodeToString(b)
	return secret, KeyPrefix(secret), HashKey(secret)
}

// KeyPrefix returns the part of a secret kept in the clear.
func KeyPrefix(secret string) string {
	if len(secret) <= keyPrefixLength {
		return ""
	}
	return secret[:keyPrefixLength]
}

// HashKey returns the stored form of a secret.
func HashKey(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// NewRandomID returns prefix followed by 16 random hex digits, for ids of
// things that are not events (keys, generated account ids).
func NewRandomID(prefix string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// AccountService manages accounts.
type AccountService interface {
	// CreateAccount stores a new account together with its first key, in
	// one transaction. ECONFLICT if the id is taken.
	CreateAccount(ctx context.Context, a *Account, firstKey *APIKey) error
	// FindAccountByID returns ENOTFOUND if there is no such account.
	FindAccountByID(ctx context.Context, id string) (*Account, error)
}

// KeyService manages API keys.
type KeyService interface {
	// CreateKey stores k. ECONFLICT if its id or hash is taken.
	CreateKey(ctx context.Context, k *APIKey) error
	// FindKeyByHash returns ENOTFOUND if no key has that hash.
	FindKeyByHash(ctx context.Context, hash string) (*APIKey, error)
	// FindKeys returns the account's keys, oldest first.
	FindKeys(ctx context.Context, accountID string) ([]*APIKey, error)
	// DeleteKey returns ENOTFOUND if the account has no such key.
	DeleteKey(ctx context.Context, accountID, id string) error
}
