package dispatcher

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"
)

// Stage 1, decode: a Kafka message becomes an Event, from the platform's
// JSON envelope or a CloudEvent (structured or binary mode). What cannot be
// decoded is poison: counted, sent aside unchanged, and skipped.

// Event is a platform domain event.
type Event struct {
	ID      uuid.UUID
	Type    string
	StoreID string
	Time    time.Time
	// Data is the payload delivered to receivers, as raw JSON.
	Data json.RawMessage
	// TraceParent and TraceState are a structured CloudEvent's W3C trace
	// context (distributed tracing extension); headers carry the others'.
	TraceParent, TraceState string
}

type envelope struct {
	EventID   string          `json:"eventId"`
	EventType string          `json:"eventType"`
	StoreID   string          `json:"storeId"`
	Time      *time.Time      `json:"time"`
	Data      json.RawMessage `json:"data"`
}

type cloudEvent struct {
	SpecVersion string          `json:"specversion"`
	ID          string          `json:"id"`
	Source      string          `json:"source"`
	Type        string          `json:"type"`
	StoreID     string          `json:"storeid"`
	Time        *time.Time      `json:"time"`
	Data        json.RawMessage `json:"data"`
	DataBase64  string          `json:"data_base64"`
	TraceParent string          `json:"traceparent"`
	TraceState  string          `json:"tracestate"`
}

// cloudEventsNamespace derives a stable UUID for CloudEvents whose id is
// not one, from source and id (which CloudEvents makes unique together).
var cloudEventsNamespace = uuid.MustParse("6f1e3c2a-5b8d-4e7f-9a1b-2c3d4e5f6a7b")

// Decode turns a message into an Event, or says why it is poison.
func Decode(m kafka.Message) (Event, error) {
	if specversion := header(m, "ce_specversion"); specversion != "" {
		return decodeBinaryCloudEvent(m, specversion)
	}
	if !json.Valid(m.Value) {
		return Event{}, errors.New("value is not JSON")
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(m.Value, &probe); err != nil {
		return Event{}, errors.New("value is not a JSON object")
	}
	if _, ok := probe["specversion"]; ok {
		return decodeStructuredCloudEvent(m.Value)
	}
	var e envelope
	if err := json.Unmarshal(m.Value, &e); err != nil {
		return Event{}, fmt.Errorf("envelope: %w", err)
	}
	id, err := uuid.Parse(e.EventID)
	if err != nil {
		return Event{}, errors.New("envelope: eventId is not a UUID")
	}
	return validEvent(Event{ID: id, Type: e.EventType, StoreID: e.StoreID, Time: timeOr(e.Time, m.Time), Data: e.Data})
}

func decodeStructuredCloudEvent(value []byte) (Event, error) {
	var ce cloudEvent
	if err := json.Unmarshal(value, &ce); err != nil {
		return Event{}, fmt.Errorf("cloudevent: %w", err)
	}
	if ce.SpecVersion != "1.0" {
		return Event{}, fmt.Errorf("cloudevent: unsupported specversion %s", quoteShort(ce.SpecVersion))
	}
	data := ce.Data
	if ce.DataBase64 != "" {
		return Event{}, errors.New("cloudevent: binary data_base64 payloads are not JSON and cannot be delivered")
	}
	return validEvent(Event{ID: cloudEventID(ce.Source, ce.ID), Type: ce.Type, StoreID: ce.StoreID, Time: timeOr(ce.Time, time.Time{}), Data: data,
		TraceParent: ce.TraceParent, TraceState: ce.TraceState})
}

func decodeBinaryCloudEvent(m kafka.Message, specversion string) (Event, error) {
	for _, h := range m.Headers {
		if strings.HasPrefix(h.Key, "ce_") && !printable(string(h.Value)) {
			return Event{}, fmt.Errorf("cloudevent: header %s is not printable UTF-8", printableOr(h.Key, "with an unprintable name"))
		}
	}
	if specversion != "1.0" {
		return Event{}, fmt.Errorf("cloudevent: unsupported specversion %s", quoteShort(specversion))
	}
	if ct := header(m, "content-type"); ct != "" && ct != "application/json" && !bytes.HasPrefix([]byte(ct), []byte("application/json;")) {
		return Event{}, fmt.Errorf("cloudevent: content-type %s is not JSON", quoteShort(ct))
	}
	if !json.Valid(m.Value) {
		return Event{}, errors.New("cloudevent: data is not JSON")
	}
	var at *time.Time
	if t, err := time.Parse(time.RFC3339Nano, header(m, "ce_time")); err == nil {
		at = &t
	}
	return validEvent(Event{ID: cloudEventID(header(m, "ce_source"), header(m, "ce_id")), Type: header(m, "ce_type"),
		StoreID: header(m, "ce_storeid"), Time: timeOr(at, m.Time), Data: m.Value})
}

func cloudEventID(source, id string) uuid.UUID {
	if u, err := uuid.Parse(id); err == nil {
		return u
	}
	if id == "" {
		return uuid.Nil
	}
	return uuid.NewSHA1(cloudEventsNamespace, []byte(source+"\x00"+id))
}

// maxNameLen bounds event types and store ids: they travel in HTTP headers
// and index keys.
const maxNameLen = 255

func validEvent(e Event) (Event, error) {
	switch {
	case e.ID == uuid.Nil:
		return e, errors.New("event has no id")
	case e.Type == "":
		return e, errors.New("event has no type")
	case len(e.Type) > maxNameLen || !printable(e.Type):
		return e, fmt.Errorf("event type is not printable UTF-8 of at most %d bytes", maxNameLen)
	case e.StoreID == "":
		return e, errors.New("event has no store id")
	case len(e.StoreID) > maxNameLen || !printable(e.StoreID):
		return e, fmt.Errorf("store id is not printable UTF-8 of at most %d bytes", maxNameLen)
	case len(e.Data) == 0 || !json.Valid(e.Data):
		return e, errors.New("event data is missing or not JSON")
	case !utf8.Valid(e.Data):
		// RFC 8259 requires UTF-8 of JSON exchanged between systems;
		// receivers' parsers refuse anything else.
		return e, errors.New("event data is not valid UTF-8")
	}
	return e, nil
}

// printable: valid UTF-8 with no control characters, as an HTTP header
// value and a Postgres text column both need.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// quoteShort quotes at most 64 bytes of s for a reason.
func quoteShort(s string) string {
	const limit = 64
	if len(s) > limit {
		return strconv.Quote(s[:limit]) + "…"
	}
	return strconv.Quote(s)
}

// printableOr names s in a reason only when it is safe to show.
func printableOr(s, otherwise string) string {
	if len(s) <= maxNameLen && printable(s) {
		return s
	}
	return otherwise
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func timeOr(t *time.Time, fallback time.Time) time.Time {
	if t != nil {
		return *t
	}
	if fallback.IsZero() {
		return time.Now()
	}
	return fallback
}
