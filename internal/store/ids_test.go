package store

import (
	"bytes"
	"testing"
)

// New rows get UUIDv7 ids, in the order they were made: inserts append to
// the right edge of the primary-key index instead of a random page.
func TestNewIDsAreTimeOrdered(t *testing.T) {
	prev := NewID()
	for i := 0; i < 1000; i++ {
		id := NewID()
		if id.Version() != 7 {
			t.Fatalf("version %d, want 7", id.Version())
		}
		if bytes.Compare(prev[:], id[:]) >= 0 {
			t.Fatalf("%s made after %s sorts before it", id, prev)
		}
		prev = id
	}
}
