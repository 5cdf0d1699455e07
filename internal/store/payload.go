package store

import "fmt"

// payloads are a batch's event documents as the insert statements take
// them: the bytes as produced, and a sanitised jsonb copy where needed.
type payloads struct {
	raw    [][]byte
	copies []*string
}

func newPayloads(n int) payloads {
	return payloads{raw: make([][]byte, n), copies: make([]*string, n)}
}

func (p payloads) set(i int, doc []byte) {
	p.raw[i], p.copies[i] = doc, JSONBCopy(doc)
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

// rawPayloadSQL reads the bytes to send: as produced, or for rows written
// before raw payloads were kept, the jsonb they were stored as.
func rawPayloadSQL(alias string) string {
	return fmt.Sprintf(`COALESCE(%[1]s.raw_payload, convert_to(%[1]s.event_payload::text, 'UTF8'))`, alias)
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
