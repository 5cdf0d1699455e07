package registry_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/ss3dev/integration-operator/internal/connectors"
	"github.com/ss3dev/integration-operator/internal/connectors/registry"
)

// maxSettingsError bounds an adapter's settings error: the manager puts it
// in a status condition, whose message the API server caps at 32768 bytes,
// and settings can be far longer than that.
const maxSettingsError = 1024

// FuzzSettings opens every registered adapter type with arbitrary settings
// JSON, as the manager does for each ConnectorConfig. Each constructor must
// return an adapter of its type or a *connectors.SettingsError, never panic
// or call out (it has no credentials or HTTP client), decide the same way
// twice, refuse anything that is not a JSON object, say which key is unknown,
// and keep its error short whatever the input.
func FuzzSettings(f *testing.F) {
	for _, seed := range []struct{ settings, unknown string }{
		{"", "a"},
		{"null", ""},
		{"{}", "endpoint"},
		{`{"toleranceSeconds":300}`, "tolerance"},
		{`{"toleranceSeconds":"300"}`, "x"},
		{`{"toleranceSeconds":0}`, ""},
		{`{"sellerId":"A1","marketplaceId":"ATVPDKIKX0DER","initialLookback":"-1h"}`, "sellerid"},
		{`{"sellerId":"A1","marketplaceId":"M","endpoint":"ftp://example.com"}`, ""},
		{`{"accountId":"123","dataSourceId":"456","authEndpoint":"http://"}`, "q\"uote"},
		{`{"accountId":"12x","dataSourceId":"456"}`, `back\slash`},
		{`{"scopes":[]}`, ""},
		{`{"scopes":null,"contentLanguage":1}`, ""},
		{`{"endpoint":"https://sandbox.payfast.co.za","confirmWithPayFast":false,"allowedSourceNetworks":["197.97.145.144/28","::1/128"]}`, ""},
		{`{"allowedSourceNetworks":["not a range"]}`, "\x00"},
		{`{"endpoint":"` + strings.Repeat("x", 5000) + `"}`, strings.Repeat("k", 3000)},
		{`{"ToLeRaNcEsEcOnDs":30}`, "é"},
		{`{"sellerId":"A1"} {"unread":1}`, ""},
		{`{"sellerId":"\ud800\u0000"}`, "\xff"},
		{`[1,2]`, ""},
		{`"settings"`, ""},
		{`{"a":`, ""},
	} {
		f.Add([]byte(seed.settings), seed.unknown)
	}
	types := registry.Types()
	if len(types) == 0 {
		f.Fatal("no adapter types registered")
	}
	f.Fuzz(func(t *testing.T, settings []byte, unknown string) {
		object, keys := topLevelKeys(settings)
		for _, typ := range types {
			reg, ok := registry.Lookup(typ)
			if !ok {
				t.Fatalf("%s is listed but not found", typ)
			}
			v := open(t, reg, settings)
			if again := open(t, reg, settings); again.err != v.err {
				t.Fatalf("%s: the same settings gave %q, then %q", typ, v.err, again.err)
			}
			var se *connectors.SettingsError
			switch {
			case v.errValue == nil && !object && len(bytes.TrimSpace(settings)) != 0 && string(bytes.TrimSpace(settings)) != "null":
				t.Fatalf("%s accepted settings that are not a JSON object: %q", typ, settings)
			case v.errValue == nil:
				continue
			case !errors.As(v.errValue, &se):
				t.Fatalf("%s: %q is not a *connectors.SettingsError", typ, v.err)
			case object && se.Problem == "is not a setting of this connector type" && !slices.Contains(keys, se.Setting):
				t.Fatalf("%s: says %q is not a setting, but the settings have only the keys %q", typ, se.Setting, keys)
			}
		}

		// An unknown key is named, whatever else is wrong later on (it
		// comes first, and keys are checked in order).
		if !object {
			return
		}
		key := "x-" + strings.ToValidUTF8(unknown, "?") // no setting's name has a '-'
		withUnknown := addFirstKey(t, settings, key)
		for _, typ := range types {
			reg, _ := registry.Lookup(typ)
			v := open(t, reg, withUnknown)
			var se *connectors.SettingsError
			if !errors.As(v.errValue, &se) || se.Setting != key || se.Problem != "is not a setting of this connector type" {
				t.Fatalf("%s: an unknown key %q first in the settings gave %q", typ, key, v.err)
			}
		}
	})
}

// verdict is a constructor's answer; err is its message, compared across calls.
type verdict struct {
	err      string
	errValue error
}

// open runs the constructor and checks what holds for every answer.
func open(t *testing.T, reg connectors.Registration, settings []byte) verdict {
	t.Helper()
	adapter, err := reg.New(connectors.Config{ID: uuid.MustParse("5f0c2a9e-8d4b-4f7a-9c1e-2b3d4e5f6a7b"), StoreID: "store-1",
		Settings: json.RawMessage(settings)})
	if (adapter == nil) == (err == nil) {
		t.Fatalf("%s: adapter %v with error %v; want exactly one", reg.Type, adapter, err)
	}
	if err == nil {
		if adapter.Type() != reg.Type {
			t.Fatalf("the %s constructor opened a %s adapter", reg.Type, adapter.Type())
		}
		return verdict{}
	}
	msg := err.Error()
	if len(msg) > maxSettingsError {
		t.Fatalf("%s: a %d-byte error for %d bytes of settings: %.200q…", reg.Type, len(msg), len(settings), msg)
	}
	if utf8.Valid(settings) && !utf8.ValidString(msg) {
		t.Fatalf("%s: the error for UTF-8 settings is not UTF-8: %q", reg.Type, msg)
	}
	return verdict{err: msg, errValue: err}
}

// topLevelKeys reports whether settings is one JSON object, and its keys.
func topLevelKeys(settings []byte) (bool, []string) {
	var m map[string]json.RawMessage
	if !json.Valid(settings) || json.Unmarshal(settings, &m) != nil || m == nil {
		return false, nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return true, keys
}

// addFirstKey puts "key": true before the members of the object settings.
func addFirstKey(t *testing.T, settings []byte, key string) []byte {
	t.Helper()
	name, err := json.Marshal(key)
	if err != nil {
		t.Fatal(err)
	}
	obj := bytes.TrimSpace(settings)
	members := bytes.TrimSpace(obj[1 : len(obj)-1])
	out := append(append([]byte("{"), name...), ":true"...)
	if len(members) > 0 {
		out = append(append(out, ','), members...)
	}
	return append(out, '}')
}
