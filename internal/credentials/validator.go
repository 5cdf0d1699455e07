package credentials

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/uuid"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"github.com/ss3dev/integration-operator/internal/store"
)

// Outcome says how a validation ended. Callers see only valid or not; the
// outcome is for metrics and logs.
type Outcome string

// Validation outcomes.
const (
	OutcomeValid       Outcome = "valid"
	OutcomeMalformed   Outcome = "malformed"
	OutcomeUnknown     Outcome = "unknown_client"
	OutcomeWrongSecret Outcome = "wrong_secret"
	OutcomeInactive    Outcome = "inactive"
	OutcomeExpired     Outcome = "expired"
	OutcomeRevoked     Outcome = "revoked"
	OutcomeThrottled   Outcome = "throttled"
	OutcomeBadToken    Outcome = "bad_token"
)

// Principal is who a valid credential speaks for.
type Principal struct {
	CredentialID uuid.UUID
	ClientID     string
	StoreID      string
	Scopes       []string
	Type         string
}

// ValidatorConfig tunes the hot path.
type ValidatorConfig struct {
	// CacheTTL bounds how long a verified credential is served from memory
	// (changes arrive sooner, by notification).
	CacheTTL  time.Duration
	CacheSize int
	// FailuresPerMinute and FailureBurst limit wrong secrets per client id.
	FailuresPerMinute float64
	FailureBurst      int
	// UsageFlushInterval is how often last_used_at is written, in one batch.
	UsageFlushInterval time.Duration
}

func (c *ValidatorConfig) defaults() {
	if c.CacheTTL == 0 {
		c.CacheTTL = 5 * time.Minute
	}
	if c.CacheSize == 0 {
		c.CacheSize = 100_000
	}
	if c.FailuresPerMinute == 0 {
		c.FailuresPerMinute = 10
	}
	if c.FailureBurst == 0 {
		c.FailureBurst = 10
	}
	if c.UsageFlushInterval == 0 {
		c.UsageFlushInterval = time.Second
	}
}

// Validator answers "is this credential valid, for which store and scopes"
// from memory, going to Postgres and bcrypt only on a miss.
type Validator struct {
	store   *store.Store
	cfg     ValidatorConfig
	now     func() time.Time
	metrics *Metrics
	log     logr.Logger

	// cache maps client id to what we know of it; entries are dropped on a
	// change notification, so revocation is seen within a second.
	cache    *expirable.LRU[string, *entry]
	failures *lru.Cache[string, *rate.Limiter]
	bcrypts  singleflight.Group
	// digestKey keys the digests of verified secrets, so memory never
	// holds a secret or an unkeyed hash of one.
	digestKey []byte
	listening atomic.Bool
	// invalidations counts notifications, so a row read before one is not
	// cached after it.
	invalidations atomic.Uint64

	usageMu sync.Mutex
	usage   map[uuid.UUID]time.Time
}

// entry is a credential row as validation needs it, plus the digests of
// secrets already verified against it.
type entry struct {
	found bool
	row   store.Credential

	mu       sync.Mutex
	verified map[[32]byte]bool // digest -> verified against the previous secret
}

// NewValidator builds a validator; run Listen and FlushUsage alongside it.
func NewValidator(st *store.Store, cfg ValidatorConfig, metrics *Metrics, log logr.Logger) (*Validator, error) {
	cfg.defaults()
	failures, err := lru.New[string, *rate.Limiter](cfg.CacheSize)
	if err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return &Validator{
		store: st, cfg: cfg, now: time.Now, metrics: metrics, log: log,
		cache:     expirable.NewLRU[string, *entry](cfg.CacheSize, nil, cfg.CacheTTL),
		failures:  failures,
		digestKey: key,
		usage:     map[uuid.UUID]time.Time{},
	}, nil
}

// ValidateSecret checks a client id and secret (an API key's parts, or an
// OAuth client's id and secret).
func (v *Validator) ValidateSecret(ctx context.Context, clientID, secret string) (Principal, Outcome, error) {
	e, err := v.lookup(ctx, clientID)
	if err != nil {
		return Principal{}, "", err
	}
	if outcome := v.usable(e); outcome != OutcomeValid {
		return Principal{}, outcome, nil
	}
	digest := v.digest(clientID, secret)
	e.mu.Lock()
	asPrevious, hit := e.verified[digest]
	e.mu.Unlock()
	if hit && (!asPrevious || v.previousValid(e)) {
		v.metrics.CacheLookups.WithLabelValues("hit").Inc()
		return v.accept(e), OutcomeValid, nil
	}
	v.metrics.CacheLookups.WithLabelValues("miss").Inc()

	limiter := v.limiter(clientID)
	if limiter.Tokens() < 1 {
		return Principal{}, OutcomeThrottled, nil
	}
	// Concurrent first requests with the same secret share one bcrypt.
	res, _, _ := v.bcrypts.Do(clientID+string(digest[:]), func() (any, error) {
		if bcrypt.CompareHashAndPassword([]byte(e.row.HashedSecret), []byte(secret)) == nil {
			return verdict{ok: true}, nil
		}
		if e.row.PreviousHashedSecret != "" && v.previousValid(e) &&
			bcrypt.CompareHashAndPassword([]byte(e.row.PreviousHashedSecret), []byte(secret)) == nil {
			return verdict{ok: true, previous: true}, nil
		}
		return verdict{}, nil
	})
	vd := res.(verdict)
	if !vd.ok {
		limiter.Allow()
		return Principal{}, OutcomeWrongSecret, nil
	}
	e.mu.Lock()
	if len(e.verified) < 8 { // a credential has one or two secrets; bound it anyway
		e.verified[digest] = vd.previous
	}
	e.mu.Unlock()
	return v.accept(e), OutcomeValid, nil
}

type verdict struct{ ok, previous bool }

// principalFor checks that the credential behind an access token is still
// usable, without a secret: the token's signature stood in for it.
func (v *Validator) principalFor(ctx context.Context, clientID string) (Principal, Outcome, error) {
	e, err := v.lookup(ctx, clientID)
	if err != nil {
		return Principal{}, "", err
	}
	if outcome := v.usable(e); outcome != OutcomeValid {
		return Principal{}, outcome, nil
	}
	return v.accept(e), OutcomeValid, nil
}

func (v *Validator) usable(e *entry) Outcome {
	switch {
	case !e.found:
		return OutcomeUnknown
	case e.row.RevokedAt != nil:
		return OutcomeRevoked
	case !e.row.IsActive:
		return OutcomeInactive
	case e.row.ExpiresAt != nil && !v.now().Before(*e.row.ExpiresAt):
		return OutcomeExpired
	}
	return OutcomeValid
}

func (v *Validator) previousValid(e *entry) bool {
	return e.row.PreviousExpiresAt != nil && v.now().Before(*e.row.PreviousExpiresAt)
}

func (v *Validator) accept(e *entry) Principal {
	v.recordUse(e.row.ID)
	return Principal{CredentialID: e.row.ID, ClientID: e.row.ClientID, StoreID: e.row.StoreID,
		Scopes: e.row.Scopes, Type: e.row.Type}
}

// lookup returns what is known of clientID, from memory when the change
// feed is up, else from Postgres.
func (v *Validator) lookup(ctx context.Context, clientID string) (*entry, error) {
	listening := v.listening.Load()
	if listening {
		if e, ok := v.cache.Get(clientID); ok {
			return e, nil
		}
	}
	seen := v.invalidations.Load()
	row, found, err := v.store.GetCredentialByClientID(ctx, clientID)
	if err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	}
	e := &entry{found: found, row: row, verified: map[[32]byte]bool{}}
	// Cache only what a notification could still invalidate.
	if listening && v.listening.Load() && v.invalidations.Load() == seen {
		v.cache.Add(clientID, e)
	}
	return e, nil
}

func (v *Validator) digest(clientID, secret string) [32]byte {
	m := hmac.New(sha256.New, v.digestKey)
	m.Write([]byte(clientID))
	m.Write([]byte{0})
	m.Write([]byte(secret))
	var d [32]byte
	m.Sum(d[:0])
	return d
}

func (v *Validator) limiter(clientID string) *rate.Limiter {
	if l, ok := v.failures.Get(clientID); ok {
		return l
	}
	l := rate.NewLimiter(rate.Limit(v.cfg.FailuresPerMinute/60), v.cfg.FailureBurst)
	if prev, ok, _ := v.failures.PeekOrAdd(clientID, l); ok {
		return prev
	}
	return l
}

// Ready reports whether the change feed is up, so cached answers are current.
func (v *Validator) Ready() error {
	if !v.listening.Load() {
		return errors.New("not listening for credential changes")
	}
	return nil
}

// Listen follows Postgres notifications of credential changes and drops the
// changed entries, until ctx ends. When the connection breaks it empties the
// cache (changes may have been missed) and serves from Postgres until it is
// back.
func (v *Validator) Listen(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := v.listenOnce(ctx)
		v.listening.Store(false)
		v.cache.Purge()
		if ctx.Err() != nil {
			return
		}
		v.log.Error(err, "credential change feed lost; serving from the database until it is back")
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (v *Validator) listenOnce(ctx context.Context) error {
	pooled, err := v.store.Pool().Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection stays in LISTEN mode; take it out of the pool for good.
	conn := pooled.Hijack()
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN api_credentials_changed"); err != nil {
		return err
	}
	v.cache.Purge()
	v.listening.Store(true)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		v.invalidations.Add(1)
		v.cache.Remove(n.Payload)
	}
}

func (v *Validator) recordUse(id uuid.UUID) {
	now := v.now()
	v.usageMu.Lock()
	v.usage[id] = now
	v.usageMu.Unlock()
}

// FlushUsage writes last_used_at behind, in one statement per interval,
// until ctx ends (with a last flush).
func (v *Validator) FlushUsage(ctx context.Context) {
	t := time.NewTicker(v.cfg.UsageFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			v.flushUsage(flushCtx)
			cancel()
			return
		case <-t.C:
			v.flushUsage(ctx)
		}
	}
}

func (v *Validator) flushUsage(ctx context.Context) {
	v.usageMu.Lock()
	batch := v.usage
	v.usage = make(map[uuid.UUID]time.Time, len(batch))
	v.usageMu.Unlock()
	if err := v.store.TouchCredentials(ctx, batch); err != nil {
		v.log.Error(err, "recording credential use failed; will retry", "credentials", len(batch))
		v.usageMu.Lock()
		for id, t := range batch {
			if cur, ok := v.usage[id]; !ok || cur.Before(t) {
				v.usage[id] = t
			}
		}
		v.usageMu.Unlock()
	}
}

// hasScope reports whether scopes grants want.
func hasScope(scopes []string, want string) bool { return slices.Contains(scopes, want) }
