package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// ErrPollClaimLapsed says a poll run's claim ran out before it saved its
// cursor: another replica may be polling the connector by now.
var ErrPollClaimLapsed = errors.New("the poll claim has lapsed")

// SavePollCursor keeps a poll run's progress (the cursor after a page
// whose events are published) and extends the run's claim by lease, so a
// long backlog is pulled by one replica and a failure on a later page
// resumes here. It refuses once the claim has lapsed.
func (s *Store) SavePollCursor(ctx context.Context, configID uuid.UUID, cursor string, lease time.Duration) error {
	tag, err := s.pool.Exec(ctx, `UPDATE connector_poll_state SET poll_cursor = $2,
		claimed_until = now() + $3 * interval '1 millisecond'
		WHERE config_id = $1 AND claimed_until > now()`, configID, text(cursor), lease.Milliseconds())
	if err != nil {
		return fmt.Errorf("save poll cursor of %s: %w", configID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("save poll cursor of %s: %w", configID, ErrPollClaimLapsed)
	}
	return nil
}
