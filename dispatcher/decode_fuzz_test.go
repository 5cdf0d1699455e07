package dispatcher

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/ss3dev/integration-operator/internal/store"
)

// The decode fuzz targets check, for any message, that Decode either
// refuses it with a bounded reason or returns an event the rest of the
// pipeline can carry: an id, a printable type and store id fit for HTTP
// headers and text columns, and data that is valid UTF-8 JSON taken as
// produced (the bytes every attempt sends), storable in Postgres.

func checkDecoded(t *testing.T, m kafka.Message) (Event, bool) {
	t.Helper()
	e, err := Decode(m)
	e2, err2 := Decode(m)
	if (err == nil) != (err2 == nil) || (err == nil && (e.ID != e2.ID || !bytes.Equal(e.Data, e2.Data))) {
		t.Fatal("Decode is not deterministic")
	}
	if err != nil {
		if r := shortReason(err); len(r) > maxReason+len("…") || r == "" {
			t.Fatalf("reason of %d bytes", len(r))
		}
		return e, false
	}
	switch {
	case e.ID == uuid.Nil:
		t.Fatal("an event without an id")
	case e.Type == "" || len(e.Type) > maxNameLen || !printable(e.Type):
		t.Fatalf("event type %q cannot travel in a header", e.Type)
	case e.StoreID == "" || len(e.StoreID) > maxNameLen || !printable(e.StoreID):
		t.Fatalf("store id %q cannot be stored", e.StoreID)
	case !json.Valid(e.Data) || !utf8.Valid(e.Data):
		t.Fatalf("data %q is not UTF-8 JSON", e.Data)
	}
	if cp := store.JSONBCopy(e.Data); cp != nil && (!json.Valid([]byte(*cp)) || !utf8.ValidString(*cp)) {
		t.Fatalf("the stored copy of %q is %q", e.Data, *cp)
	}
	if clean, changed := store.Text(e.Type); changed || clean != e.Type {
		t.Fatalf("event type %q would be altered when stored", e.Type)
	}
	return e, true
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add([]byte(`{"eventId":"3f1c9d2e-8a4b-4c6d-9e0f-1a2b3c4d5e6f","eventType":"order.placed","storeId":"store-1","data":{"orderId":"o-1"}}`))
	f.Add([]byte(`{"eventId":"3f1c9d2e-8a4b-4c6d-9e0f-1a2b3c4d5e6f","eventType":"order.placed\u0000","storeId":"s","data":{}}`))
	f.Add([]byte(`{"eventId":"3f1c9d2e-8a4b-4c6d-9e0f-1a2b3c4d5e6f","eventType":"order.placed","storeId":"s","data":{"a":"\ud800\u0000"}}`))
	f.Add([]byte("{\"eventId\":\"3f1c9d2e-8a4b-4c6d-9e0f-1a2b3c4d5e6f\",\"eventType\":\"t\",\"storeId\":\"s\",\"data\":\"\xff\"}"))
	f.Add([]byte(`{"eventId":"3f1c9d2e-8a4b-4c6d-9e0f-1a2b3c4d5e6f","eventType":"t","storeId":"s","time":"not a time","data":1}`))
	f.Add([]byte(`not json at all`))
	f.Fuzz(func(t *testing.T, value []byte) {
		m := kafka.Message{Topic: "platform.events", Value: value}
		e, ok := checkDecoded(t, m)
		if ok && !bytes.Contains(value, e.Data) {
			t.Fatalf("data %q is not the bytes produced", e.Data)
		}
	})
}

func FuzzDecodeStructuredCloudEvent(f *testing.F) {
	f.Add([]byte(`{"specversion":"1.0","id":"ce-42","source":"/catalog","type":"product.updated","storeid":"store-a","data":{"sku":"s-1"}}`))
	f.Add([]byte(`{"specversion":"1.0","id":"ce-42","source":"/catalog","type":"product.updated","storeid":"store-a","data_base64":"AAEC"}`))
	f.Add([]byte(`{"specversion":"0.3","id":"x","type":"order.placed"}`))
	f.Add([]byte(`{"specversion":"1.0","id":"","source":"\u0000","type":"t","storeid":"s","data":[]}`))
	f.Fuzz(func(t *testing.T, value []byte) {
		e, ok := checkDecoded(t, kafka.Message{Topic: "platform.events", Value: value})
		if ok && !bytes.Contains(value, e.Data) {
			t.Fatalf("data %q is not the bytes produced", e.Data)
		}
	})
}

func FuzzDecodeBinaryCloudEvent(f *testing.F) {
	f.Add([]byte(`{"orderId":"o-2"}`), "1.0", "3f1c9d2e-8a4b-4c6d-9e0f-1a2b3c4d5e6f", "/orders", "order.cancelled", "store-a", "application/json", "2026-11-23T10:00:00Z")
	f.Add([]byte(`{"orderId":"o-2"}`), "1.0", "ce-1", "/orders", "order.\xffcancelled", "store-a", "application/json; charset=utf-8", "")
	f.Add([]byte(`{"a":"\u0000"}`), "1.0", "ce-2", "/\x00", "order.placed", "store-\xc3", "text/plain", "yesterday")
	f.Add([]byte("\xff"), "2.0", "", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, value []byte, specversion, id, source, typ, storeID, contentType, at string) {
		m := kafka.Message{Topic: "platform.events", Value: value, Headers: []kafka.Header{
			{Key: "ce_specversion", Value: []byte(specversion)}, {Key: "ce_id", Value: []byte(id)}, {Key: "ce_source", Value: []byte(source)},
			{Key: "ce_type", Value: []byte(typ)}, {Key: "ce_storeid", Value: []byte(storeID)}, {Key: "content-type", Value: []byte(contentType)},
			{Key: "ce_time", Value: []byte(at)}}}
		e, ok := checkDecoded(t, m)
		if specversion == "" && ok {
			return // decoded as an envelope instead
		}
		if ok && !bytes.Equal(e.Data, value) {
			t.Fatalf("binary-mode data %q is not the message value", e.Data)
		}
	})
}
