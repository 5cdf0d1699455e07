package store

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
)

// What comes from outside (endpoint answers, marketplace errors, provider
// webhooks, event data) is stored so that Postgres cannot refuse it: a text
// column holds no NUL and only valid UTF-8, and a jsonb column also refuses
// \u0000 escapes, lone surrogates and numbers out of its range. Every
// outside string passes Text on its way into a column; every outside JSON
// document is stored as its bytes, with a jsonb copy for inspection that
// is sanitised (and flagged so) where Postgres would refuse it.

// replacement stands in for what a text column cannot hold.
const replacement = "\uFFFD"

// Text returns s as a text column can hold it: each NUL byte and each
// invalid UTF-8 sequence becomes U+FFFD. changed reports whether it did.
func Text(s string) (clean string, changed bool) {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s, false
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, replacement), "\x00", replacement), true
}

func text(s string) string {
	clean, _ := Text(s)
	return clean
}

// key is Text for values that identify something (a provider's event
// id): distinct inputs stay distinct, so cleaning never merges two keys.
func key(s string) string {
	if _, changed := Text(s); changed {
		return strconv.Quote(s)
	}
	return s
}

// textPtr is Text for optional columns: nil and "" stay NULL.
func textPtr(s string) *string {
	if s == "" {
		return nil
	}
	clean := text(s)
	return &clean
}

// JSONBCopy returns the text to store in a jsonb column for the JSON
// document doc, or nil when doc is already a document jsonb accepts as it
// is (the common case, which costs one scan). The copy replaces invalid
// UTF-8, \u0000 escapes and lone surrogate escapes with U+FFFD; it is as
// valid JSON as doc was. What the scan cannot foresee (a number beyond
// numeric's range, nesting deeper than the server's stack) is caught when
// the row is written (see jsonbDocSQL).
func JSONBCopy(doc []byte) *string {
	if jsonbSafe(doc) {
		return nil
	}
	var b strings.Builder
	b.Grow(len(doc))
	s := strings.ToValidUTF8(string(doc), replacement)
	inString := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == 0:
			b.WriteString(replacement)
			continue
		case c == '"':
			inString = !inString
		case c == '\\' && inString && i+1 < len(s):
			if s[i+1] != 'u' {
				b.WriteByte(c)
				b.WriteByte(s[i+1])
				i++
				continue
			}
			if n := badEscape(s, i); n > 0 {
				b.WriteString(`\ufffd`)
				i += n - 1
				continue
			}
			if pairLen := surrogatePair(s, i); pairLen > 0 {
				b.WriteString(s[i : i+pairLen])
				i += pairLen - 1
				continue
			}
		}
		b.WriteByte(c)
	}
	out := b.String()
	return &out
}

// jsonbSafe: valid UTF-8 with no \u escape jsonb refuses.
func jsonbSafe(doc []byte) bool {
	if !utf8.Valid(doc) {
		return false
	}
	s := string(doc)
	inString := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == 0:
			return false
		case c == '"':
			inString = !inString
		case c == '\\' && inString && i+1 < len(s):
			if s[i+1] == 'u' {
				if badEscape(s, i) > 0 {
					return false
				}
				if n := surrogatePair(s, i); n > 0 {
					i += n - 1
					continue
				}
			}
			i++ // the escaped character
		}
	}
	return true
}

// badEscape returns the length of the \uXXXX escape at s[i:] when jsonb
// refuses it (\u0000, or a surrogate that is not part of a pair), else 0.
func badEscape(s string, i int) int {
	v, ok := hex4(s, i)
	switch {
	case !ok:
		return 0 // not an escape jsonb reads as a code point; json syntax is not ours to judge here
	case v == 0:
		return 6
	case v >= 0xDC00 && v <= 0xDFFF:
		return 6 // a low surrogate with no high one before it
	case v >= 0xD800 && v <= 0xDBFF:
		if low, ok := hex4(s, i+6); ok && low >= 0xDC00 && low <= 0xDFFF {
			return 0
		}
		return 6
	}
	return 0
}

// surrogatePair returns 12 when s[i:] starts a valid \uD8xx\uDCxx pair.
func surrogatePair(s string, i int) int {
	hi, ok := hex4(s, i)
	if !ok || hi < 0xD800 || hi > 0xDBFF {
		return 0
	}
	if lo, ok := hex4(s, i+6); ok && lo >= 0xDC00 && lo <= 0xDFFF {
		return 12
	}
	return 0
}

// hex4 reads the code unit of a \uXXXX escape starting at s[i].
func hex4(s string, i int) (rune, bool) {
	if i+6 > len(s) || s[i] != '\\' || s[i+1] != 'u' {
		return 0, false
	}
	var v rune
	for _, c := range s[i+2 : i+6] {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | (c - '0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | (c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | (c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return v, true
}

// Refused reports whether Postgres refused a statement for what it was
// given (a data exception, a constraint, a program limit such as stack
// depth): sending the same values again cannot succeed, so the caller must
// isolate the offending input instead of retrying. Anything else (a lost
// connection, a shutdown, a full disk) may pass when retried.
func Refused(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) < 2 {
		return false
	}
	switch pgErr.Code[:2] {
	case "22", "23", "54":
		return true
	}
	return false
}
