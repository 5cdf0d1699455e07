package store

import (
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store reads and writes the integration tables through a pool.
type Store struct {
	pool *pgxpool.Pool
}

// New wraps a pool (see Open).
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Pool exposes the pool, for health checks.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }
