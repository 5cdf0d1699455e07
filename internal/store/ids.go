package store

import "github.com/google/uuid"

// NewID is the id of a new row: a UUIDv7, so ids are time-ordered and
// inserts append to the right edge of each index instead of landing on a
// random page once indexes outgrow memory (and a lookup of a new id in an
// old day's partition stays on its cached right edge).
func NewID() uuid.UUID {
	return uuid.Must(uuid.NewV7())
}
