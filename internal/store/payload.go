package store

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"slices"
	"time"
)

// PartitionTime is the partition key an event's rows are stored under: the
// event's own time (so a redelivered or re-sent event has the same key, and
// the dedup on the event id stays exact), to the microsecond Postgres
// keeps. Years Postgres cannot hold are clamped, the same way every time; a
// time no daily partition covers lands in the table's DEFAULT partition.
func PartitionTime(t time.Time) time.Time {
	lo, hi := time.Time{}, time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
	switch {
	case t.Before(lo):
		t = lo
	case t.After(hi):
		t = hi
	}
	return t.UTC().Truncate(time.Microsecond)
}

// payloads are a batch's event documents as the insert statements take
// them: once per (document, event time) however many deliveries share it,
// keyed by the SHA-256 of the bytes produced, with a sanitised jsonb copy
// where needed. Sorted by key, so that concurrent batches insert shared
// payloads in one order and never deadlock on each other.
type payloads struct {
	digests [][]byte
	times   []time.Time
	raw     [][]byte
	copies  []*string
}

type payloadKey struct {
	digest [sha256.Size]byte
	at     time.Time
}

// payloadSet collects a batch's documents, keeping each once.
type payloadSet map[payloadKey][]byte

// add keeps doc for the event time at and returns its digest.
func (s payloadSet) add(doc []byte, at time.Time) []byte {
	k := payloadKey{digest: sha256.Sum256(doc), at: at}
	if _, ok := s[k]; !ok {
		s[k] = doc
	}
	return k.digest[:]
}

func (s payloadSet) rows() payloads {
	keys := make([]payloadKey, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b payloadKey) int {
		if c := bytes.Compare(a.digest[:], b.digest[:]); c != 0 {
			return c
		}
		return a.at.Compare(b.at)
	})
	p := payloads{digests: make([][]byte, len(keys)), times: make([]time.Time, len(keys)), raw: make([][]byte, len(keys)),
		copies: make([]*string, len(keys))}
	for i, k := range keys {
		doc := s[k]
		p.digests[i], p.times[i], p.raw[i], p.copies[i] = slices.Clone(k.digest[:]), k.at, doc, JSONBCopy(doc)
	}
	return p
}

// insertPayloadsSQL is a CTE writing the batch's payloads (parameters
// $first.. $first+3: digests, times, bytes, sanitised copies; careful the
// parameter of jsonbDocSQL), skipping those already stored. The jsonb copy
// is kept only where it differs from the bytes (sanitised): otherwise the
// bytes read as jsonb are the copy, and storing it would double the cost
// of a payload. Every document is still cast, so that one jsonb refuses
// is found and flagged.
func insertPayloadsSQL(first int, carefulParam string) string {
	return fmt.Sprintf(`payloads AS (
		INSERT INTO event_payloads (payload_digest, event_time, raw_payload, event_payload, payload_sanitised)
		SELECT d.digest, d.at, d.raw, CASE WHEN d.copy IS NOT NULL OR j.doc IS NULL THEN COALESCE(j.doc, 'null'::jsonb) END,
			d.copy IS NOT NULL OR j.doc IS NULL
		FROM unnest($%d::bytea[], $%d::timestamptz[], $%d::bytea[], $%d::text[]) AS d(digest, at, raw, copy)
		CROSS JOIN LATERAL (SELECT %s AS doc) j
		ON CONFLICT (payload_digest, event_time) DO NOTHING)`, first, first+1, first+2, first+3, jsonbDocSQL(carefulParam))
}

// jsonbDocSQL is the jsonb column's value for a row of unnest(...) AS d
// with columns raw (bytea) and copy (text). The fast form casts, and one
// refused document fails the statement; the careful form (the retry of a
// refused statement, parameter careful true) yields NULL for a document
// Postgres refuses, stored as JSON null and flagged sanitised.
func jsonbDocSQL(carefulParam string) string {
	return fmt.Sprintf(`CASE WHEN %s::bool THEN io_jsonb_or_null(d.copy, d.raw)
		ELSE COALESCE(d.copy, convert_from(d.raw, 'UTF8'))::jsonb END`, carefulParam)
}

// rawPayloadSQL reads the bytes to send of delivery row alias: its event's
// payload, as produced; for a row written by hand with only a jsonb
// event_payload, that document.
func rawPayloadSQL(alias string) string {
	return fmt.Sprintf(`COALESCE((SELECT p.raw_payload FROM event_payloads p
		WHERE p.payload_digest = %[1]s.payload_digest AND p.event_time = %[1]s.event_time), convert_to(%[1]s.event_payload::text, 'UTF8'))`, alias)
}

// carefully runs write fast, and once more carefully when Postgres
// refused what it was given.
func carefully(write func(careful bool) error) error {
	err := write(false)
	if err != nil && Refused(err) {
		err = write(true)
	}
	return err
}
