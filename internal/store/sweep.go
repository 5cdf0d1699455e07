package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

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
