package credentials

import (
	"cmp"
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
	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/singleflight"

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
	OutcomeStaleToken  Outcome = "token_before_rotation"
)

// Principal is who a valid credential speaks for.
type Principal struct {
	CredentialID uuid.UUID
	ClientID     string
	StoreID      string
	Scopes       []string
	Type         string
	// IssuedAt is when the credential's current secret was issued; tokens
	// minted before it (before a rotation) are refused.
	IssuedAt time.Time
	// ViaPreviousSecret says the previous secret, in its grace period, was presented.
	ViaPreviousSecret bool
}

// ValidatorConfig tunes the hot path.
type ValidatorConfig struct {
	// CacheTTL bounds how long a verified credential is served from memory
	// (changes arrive sooner, by notification).
	CacheTTL  time.Duration
	CacheSize int
	// BcryptsPerMinute and BcryptBurst bound bcrypt verifications per client
	// id; BcryptConcurrency bounds those running at once per client id.
	BcryptsPerMinute  float64
	BcryptBurst       int
	BcryptConcurrency int
	// StaleWindow is how long, with the change feed down, credentials known
	// before it went down keep validating from memory. Negative disables it.
	StaleWindow time.Duration
	// FeedPingInterval is how long the change feed may be quiet before it is
	// pinged; FeedPingTimeout is how long the ping may take.
	FeedPingInterval time.Duration
	FeedPingTimeout  time.Duration
	// UsageFlushInterval is how often last_used_at is written, in one batch.
	UsageFlushInterval time.Duration
}

func (c *ValidatorConfig) defaults() {
	setDefault(&c.CacheTTL, 5*time.Minute)
	setDefault(&c.CacheSize, 100_000)
	setDefault(&c.BcryptsPerMinute, 10)
	setDefault(&c.BcryptBurst, 5)
	setDefault(&c.BcryptConcurrency, 2)
	setDefault(&c.StaleWindow, 30*time.Second)
	setDefault(&c.FeedPingInterval, 2*time.Second)
	setDefault(&c.FeedPingTimeout, 2*time.Second)
	setDefault(&c.UsageFlushInterval, time.Second)
}

// readTimeout bounds one credential read from Postgres.
const readTimeout = 5 * time.Second

func setDefault[T comparable](field *T, value T) {
	var zero T
	if *field == zero {
		*field = value
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
	cache   *expirable.LRU[string, *entry]
	budgets *budgets
	bcrypts singleflight.Group
	reads   singleflight.Group
	// digestKey keys the digests of verified secrets, so memory never
	// holds a secret or an unkeyed hash of one.
	digestKey []byte
	feed      atomic.Pointer[feedState]
	// gen moves on every notification and every change of the feed, so a
	// row read before one is not cached after it.
	gen atomic.Uint64

	usageMu sync.Mutex
	usage   map[uuid.UUID]time.Time
}

// entry is a credential row as validation needs it, the stretch of the
// change feed it was read in, and the digests of secrets already verified
// against it.
type entry struct {
	found  bool
	row    store.Credential
	epoch  uint64    // feed epoch of the read
	live   bool      // read while the feed was up: current until that epoch ends
	readAt time.Time // when the read began: current at least as of then
	// changed is set by a notification for this credential: never current again.
	changed atomic.Bool

	// Shared by every entry read since with the same hashed secrets, so a
	// secret verified against an entry that a re-read has since replaced is
	// known to the new entry too.
	*knownSecrets
}

// knownSecrets is what bcrypt has established about a credential's
// current hashed secrets.
type knownSecrets struct {
	mu       sync.Mutex
	verified map[[32]byte]bool // digest -> verified against the previous secret
	// fingerprints known for the current and previous secret: the row's,
	// or learnt here from a successful bcrypt.
	fingerprint, previousFingerprint string
}

// NewValidator builds a validator; run Listen and FlushUsage alongside it.
func NewValidator(st *store.Store, cfg ValidatorConfig, metrics *Metrics, log logr.Logger) (*Validator, error) {
	cfg.defaults()
	if cfg.BcryptsPerMinute < 0 || cfg.BcryptBurst < 1 || cfg.BcryptConcurrency < 1 {
		return nil, errors.New("the bcrypt budget needs a rate of at least 0 per minute, a burst and a concurrency of at least 1")
	}
	budgets, err := newBudgets(cfg.CacheSize, cfg.BcryptsPerMinute, cfg.BcryptBurst, cfg.BcryptConcurrency)
	if err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	v := &Validator{
		store: st, cfg: cfg, now: time.Now, metrics: metrics, log: log,
		cache:     expirable.NewLRU[string, *entry](cfg.CacheSize, nil, cfg.CacheTTL),
		budgets:   budgets,
		digestKey: key,
		usage:     map[uuid.UUID]time.Time{},
	}
	v.feed.Store(&feedState{since: v.now()})
	return v, nil
}

// RetryAfter is how long a throttled client should wait for its next bcrypt.
func (v *Validator) RetryAfter() time.Duration {
	if v.cfg.BcryptsPerMinute <= 0 {
		return time.Minute
	}
	return max(time.Second, time.Duration(float64(time.Minute)/v.cfg.BcryptsPerMinute))
}

// ValidateSecret checks a client id and secret (an API key's parts, or an
// OAuth client's id and secret). A secret seen before is checked from
// memory; a new one must match the stored fingerprint before it may spend
// the client's bcrypt budget, so guesses are refused without bcrypt.
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
	fingerprint, previousFingerprint := e.fingerprint, e.previousFingerprint
	e.mu.Unlock()
	if hit && (!asPrevious || v.previousValid(e)) {
		v.metrics.CacheLookups.WithLabelValues("hit").Inc()
		return v.accept(e, asPrevious), OutcomeValid, nil
	}
	v.metrics.CacheLookups.WithLabelValues("miss").Inc()

	fp := Fingerprint(clientID, secret)
	tryCurrent := fingerprint == "" || fingerprint == fp
	tryPrevious := e.row.PreviousHashedSecret != "" && v.previousValid(e) && (previousFingerprint == "" || previousFingerprint == fp)
	if !tryCurrent && !tryPrevious {
		return Principal{}, OutcomeWrongSecret, nil
	}
	// Concurrent first requests with the same secret share one bcrypt, and
	// one that comes just after finds it recorded.
	key := string(digest[:]) + e.row.HashedSecret + e.row.PreviousHashedSecret
	res, _, _ := v.bcrypts.Do(key, func() (any, error) {
		e.mu.Lock()
		asPrevious, hit := e.verified[digest]
		e.mu.Unlock()
		if hit {
			return verdict{ok: true, previous: asPrevious}, nil
		}
		release, ok := v.budgets.acquire(clientID, v.now())
		if !ok {
			return verdict{throttled: true}, nil
		}
		defer release()
		vd := verdict{}
		switch {
		case tryCurrent && v.compare(e.row.HashedSecret, secret):
			vd.ok = true
		case tryPrevious && v.compare(e.row.PreviousHashedSecret, secret):
			vd.ok, vd.previous = true, true
		default:
			return vd, nil
		}
		v.remember(ctx, e, digest, fp, vd.previous)
		return vd, nil
	})
	vd := res.(verdict)
	switch {
	case vd.throttled:
		return Principal{}, OutcomeThrottled, nil
	case !vd.ok:
		return Principal{}, OutcomeWrongSecret, nil
	}
	e.record(digest, fp, vd.previous) // a follower may hold another entry than the leader's
	return v.accept(e, vd.previous), OutcomeValid, nil
}

type verdict struct{ ok, previous, throttled bool }

// compare runs one bcrypt, counted: the budget's test is this counter.
func (v *Validator) compare(hash, secret string) bool {
	v.metrics.Bcrypts.Inc()
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(secret)) == nil
}

// remember records a verified secret in e, and writes its fingerprint to
// the row when the row had none yet (rows older than fingerprints, secrets
// issued since).
func (v *Validator) remember(ctx context.Context, e *entry, digest [32]byte, fp string, previous bool) {
	if !e.record(digest, fp, previous) {
		return
	}
	hash := e.row.HashedSecret
	if previous {
		hash = e.row.PreviousHashedSecret
	}
	if err := v.store.RecordSecretFingerprint(ctx, e.row.ClientID, hash, fp, previous); err != nil {
		// Kept in memory meanwhile; the next first success writes it.
		v.log.Error(err, "recording a secret fingerprint failed", "clientId", e.row.ClientID)
	}
}

// record notes a verified secret's digest and fingerprint; learnt says the
// fingerprint was not known before.
func (e *entry) record(digest [32]byte, fp string, previous bool) (learnt bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.verified) < 8 { // a credential has one or two secrets; bound it anyway
		e.verified[digest] = previous
	}
	known := &e.fingerprint
	if previous {
		known = &e.previousFingerprint
	}
	learnt = *known == ""
	*known = fp
	return learnt
}

// principalForToken checks that the credential behind an access token is
// still usable and that the token was minted under its current secret:
// a token minted before a rotation (perhaps with a leaked secret) is refused.
func (v *Validator) principalForToken(ctx context.Context, t verified) (Principal, Outcome, error) {
	e, err := v.lookup(ctx, t.clientID)
	if err != nil {
		return Principal{}, "", err
	}
	if outcome := v.usable(e); outcome != OutcomeValid {
		return Principal{}, outcome, nil
	}
	switch {
	case t.secretIssued != 0 && t.secretIssued != e.row.IssuedAt.UnixMicro():
		return Principal{}, OutcomeStaleToken, nil
	case t.secretIssued != 0 && t.previous && !v.previousValid(e):
		return Principal{}, OutcomeStaleToken, nil
	case t.secretIssued == 0 && !t.issuedAt.After(e.row.IssuedAt):
		// Minted by a version that did not record the secret: only whole
		// seconds are known, so the token must postdate the issue.
		return Principal{}, OutcomeStaleToken, nil
	}
	return v.accept(e, t.previous), OutcomeValid, nil
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

func (v *Validator) accept(e *entry, previous bool) Principal {
	v.recordUse(e.row.ID)
	return Principal{CredentialID: e.row.ID, ClientID: e.row.ClientID, StoreID: e.row.StoreID,
		Scopes: e.row.Scopes, Type: e.row.Type, IssuedAt: e.row.IssuedAt, ViaPreviousSecret: previous}
}

// lookup returns what is known of clientID: from memory while the entry is
// current (feed up and read in this epoch; or feed down and within the
// staleness window), else from Postgres. A re-read row whose secrets did not
// change keeps the verified digests, so a reconnect or an outage does not
// cost a bcrypt per client.
func (v *Validator) lookup(ctx context.Context, clientID string) (*entry, error) {
	gen := v.gen.Load()
	st := v.feed.Load()
	now := v.now()
	cached, _ := v.cache.Get(clientID)
	if cached != nil && v.current(cached, st, now) {
		if !st.up {
			v.metrics.DegradedLookups.Inc()
		}
		return cached, nil
	}
	// Concurrent misses share one read and so one entry, whose verified
	// digests they all then see.
	res, err, _ := v.reads.Do(clientID, func() (any, error) { return v.read(ctx, clientID, gen, st, cached, now) })
	if err != nil {
		return nil, err
	}
	return res.(*entry), nil
}

func (v *Validator) read(ctx context.Context, clientID string, gen uint64, st *feedState, cached *entry, now time.Time) (*entry, error) {
	// Not the caller's cancellation: others may be waiting on this read.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readTimeout)
	defer cancel()
	row, found, err := v.store.GetCredentialByClientID(ctx, clientID)
	if err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	}
	e := &entry{found: found, row: row, epoch: st.epoch, live: st.up, readAt: now}
	if cached != nil && cached.found && found && cached.row.HashedSecret == row.HashedSecret &&
		cached.row.PreviousHashedSecret == row.PreviousHashedSecret {
		e.knownSecrets = cached.knownSecrets
		e.mu.Lock()
		e.fingerprint = cmp.Or(e.fingerprint, row.SecretFingerprint)
		e.previousFingerprint = cmp.Or(e.previousFingerprint, row.PreviousSecretFingerprint)
		e.mu.Unlock()
	} else {
		e.knownSecrets = &knownSecrets{verified: map[[32]byte]bool{},
			fingerprint: row.SecretFingerprint, previousFingerprint: row.PreviousSecretFingerprint}
	}
	// What a notification or feed change overtook is cached as changed:
	// never served as current, but the re-read it forces keeps the secrets
	// verified meanwhile if the hashed secrets are still the same.
	if v.gen.Load() != gen {
		e.changed.Store(true)
	}
	v.cache.Add(clientID, e)
	return e, nil
}

// current reports whether e may be served from memory in feed state st.
func (v *Validator) current(e *entry, st *feedState, now time.Time) bool {
	if e.changed.Load() {
		return false
	}
	if st.up {
		return e.epoch == st.epoch
	}
	if v.cfg.StaleWindow <= 0 {
		return false
	}
	asOf := e.readAt
	if e.live && e.epoch+1 == st.epoch {
		asOf = st.since // notifications kept it current until the feed went down
	}
	return now.Before(asOf.Add(v.cfg.StaleWindow))
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
