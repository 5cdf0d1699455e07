package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Credential is an api_credentials row. HashedSecret is a bcrypt hash; the
// plain secret is never stored.
type Credential struct {
	ID                   uuid.UUID
	StoreID              string
	Name                 string
	Type                 string // API_KEY or OAUTH_CLIENT
	ClientID             string
	HashedSecret         string
	PreviousHashedSecret string
	PreviousExpiresAt    *time.Time
	Scopes               []string
	IsActive             bool
	ExpiresAt            *time.Time
	LastUsedAt           *time.Time
	IssuedAt             time.Time
	RevokedAt            *time.Time
	RotationRequest      string
	CreatedBy            string
	// SecretFingerprint and PreviousSecretFingerprint are short checks of
	// the current and previous secret (see credentials.Fingerprint), empty
	// until known; they let a wrong guess be refused without bcrypt.
	SecretFingerprint         string
	PreviousSecretFingerprint string
}

// Credential types as the platform stores them.
const (
	CredentialTypeAPIKey      = "API_KEY"
	CredentialTypeOAuthClient = "OAUTH_CLIENT"
)

const credentialColumns = `credential_id, store_id, name, type, client_id, hashed_secret,
	COALESCE(previous_hashed_secret, ''), previous_expires_at, scopes, is_active, expires_at,
	last_used_at, issued_at, revoked_at, rotation_request, created_by,
	COALESCE(secret_fingerprint, ''), COALESCE(previous_secret_fingerprint, '')`

func scanCredential(row pgx.Row) (Credential, error) {
	var c Credential
	err := row.Scan(&c.ID, &c.StoreID, &c.Name, &c.Type, &c.ClientID, &c.HashedSecret,
		&c.PreviousHashedSecret, &c.PreviousExpiresAt, &c.Scopes, &c.IsActive, &c.ExpiresAt,
		&c.LastUsedAt, &c.IssuedAt, &c.RevokedAt, &c.RotationRequest, &c.CreatedBy,
		&c.SecretFingerprint, &c.PreviousSecretFingerprint)
	return c, err
}

// InsertCredential stores a newly issued credential.
func (s *Store) InsertCredential(ctx context.Context, c Credential) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO api_credentials (credential_id, store_id, name, type, client_id,
		hashed_secret, scopes, is_active, expires_at, issued_at, rotation_request, created_by, secret_fingerprint)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULLIF($13, ''))`,
		c.ID, c.StoreID, c.Name, c.Type, c.ClientID, c.HashedSecret, c.Scopes, c.IsActive, c.ExpiresAt,
		c.IssuedAt, c.RotationRequest, c.CreatedBy, c.SecretFingerprint)
	if err != nil {
		return fmt.Errorf("insert credential %s: %w", c.ID, err)
	}
	return nil
}

// GetCredential reads a credential by id; ok is false when there is none.
func (s *Store) GetCredential(ctx context.Context, id uuid.UUID) (Credential, bool, error) {
	c, err := scanCredential(s.pool.QueryRow(ctx, `SELECT `+credentialColumns+` FROM api_credentials WHERE credential_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("get credential %s: %w", id, err)
	}
	return c, true, nil
}

// GetCredentialByClientID reads a credential by its public client id.
func (s *Store) GetCredentialByClientID(ctx context.Context, clientID string) (Credential, bool, error) {
	c, err := scanCredential(s.pool.QueryRow(ctx, `SELECT `+credentialColumns+` FROM api_credentials WHERE client_id = $1`, clientID))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("get credential by client id: %w", err)
	}
	return c, true, nil
}

// UpdateCredentialSpec makes the row's store, name, scopes, active flag and
// expiry match; it writes only when something differs.
func (s *Store) UpdateCredentialSpec(ctx context.Context, c Credential) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE api_credentials AS a
		SET name = $2, scopes = $3, is_active = $4, expires_at = $5, updated_at = now()
		WHERE credential_id = $1 AND revoked_at IS NULL
		  AND (a.name, a.scopes, a.is_active, a.expires_at) IS DISTINCT FROM ($2, $3::text[], $4, $5::timestamptz)`,
		c.ID, c.Name, c.Scopes, c.IsActive, c.ExpiresAt)
	if err != nil {
		return false, fmt.Errorf("update credential %s: %w", c.ID, err)
	}
	return tag.RowsAffected() > 0, nil
}

// Rotation is a new secret for a credential: its hash, its fingerprint
// (so the holder is never taken for a guesser, even before first use),
// until when the previous one is accepted, when it was issued and the
// rotation request it answers.
type Rotation struct {
	Hash, Fingerprint string
	PreviousExpiresAt time.Time
	IssuedAt          time.Time
	Request           string
}

// RotateCredential makes the new secret current and keeps the old one as
// the previous, with its fingerprint, until the grace period ends.
func (s *Store) RotateCredential(ctx context.Context, id uuid.UUID, r Rotation) error {
	_, err := s.pool.Exec(ctx, `UPDATE api_credentials
		SET previous_hashed_secret = hashed_secret, previous_expires_at = $3, hashed_secret = $2,
		    previous_secret_fingerprint = secret_fingerprint, secret_fingerprint = NULLIF($6, ''),
		    issued_at = $4, rotation_request = $5, updated_at = now()
		WHERE credential_id = $1`, id, r.Hash, r.PreviousExpiresAt, r.IssuedAt, r.Request, r.Fingerprint)
	if err != nil {
		return fmt.Errorf("rotate credential %s: %w", id, err)
	}
	return nil
}

// ExpirePreviousSecret forgets a previous secret whose grace period is over.
func (s *Store) ExpirePreviousSecret(ctx context.Context, id uuid.UUID, now time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE api_credentials
		SET previous_hashed_secret = NULL, previous_expires_at = NULL, previous_secret_fingerprint = NULL, updated_at = now()
		WHERE credential_id = $1 AND previous_expires_at IS NOT NULL AND previous_expires_at <= $2`, id, now)
	if err != nil {
		return false, fmt.Errorf("expire previous secret of %s: %w", id, err)
	}
	return tag.RowsAffected() > 0, nil
}

// RevokeCredential deactivates a credential for good, keeping the row for
// audit. A missing or already revoked row is not an error.
func (s *Store) RevokeCredential(ctx context.Context, id uuid.UUID) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE api_credentials
		SET is_active = false, revoked_at = now(), previous_hashed_secret = NULL, previous_expires_at = NULL,
		    previous_secret_fingerprint = NULL, updated_at = now()
		WHERE credential_id = $1 AND revoked_at IS NULL`, id)
	if err != nil {
		return false, fmt.Errorf("revoke credential %s: %w", id, err)
	}
	return tag.RowsAffected() > 0, nil
}

// RecordSecretFingerprint stores the fingerprint of a secret just verified
// against hash, as the current or the previous secret, if the row still
// holds that hash and has none yet. It changes no validation outcome, so it
// notifies no one.
func (s *Store) RecordSecretFingerprint(ctx context.Context, clientID, hash, fingerprint string, previous bool) error {
	query := `UPDATE api_credentials SET secret_fingerprint = $3
		WHERE client_id = $1 AND hashed_secret = $2 AND secret_fingerprint IS NULL`
	if previous {
		query = `UPDATE api_credentials SET previous_secret_fingerprint = $3
		WHERE client_id = $1 AND previous_hashed_secret = $2 AND previous_secret_fingerprint IS NULL`
	}
	if _, err := s.pool.Exec(ctx, query, clientID, hash, fingerprint); err != nil {
		return fmt.Errorf("record secret fingerprint: %w", err)
	}
	return nil
}

// TouchCredentials records last use for many credentials in one statement;
// it never moves last_used_at backwards.
func (s *Store) TouchCredentials(ctx context.Context, used map[uuid.UUID]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	ids := make([]uuid.UUID, 0, len(used))
	times := make([]time.Time, 0, len(used))
	for id, t := range used {
		ids = append(ids, id)
		times = append(times, t)
	}
	_, err := s.pool.Exec(ctx, `UPDATE api_credentials AS a SET last_used_at = u.t
		FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, t)
		WHERE a.credential_id = u.id AND (a.last_used_at IS NULL OR a.last_used_at < u.t)`, ids, times)
	if err != nil {
		return fmt.Errorf("record credential use: %w", err)
	}
	return nil
}

// UnrevokedCredentialIDs lists every credential not revoked for good, for
// the orphan sweep: a disabled credential of a vanished object is revoked
// too.
func (s *Store) UnrevokedCredentialIDs(ctx context.Context) ([]uuid.UUID, error) {
	rows, err := s.pool.Query(ctx, `SELECT credential_id FROM api_credentials WHERE revoked_at IS NULL`)
	if err != nil {
		return nil, fmt.Errorf("list unrevoked credentials: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
}
