package registry_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"github.com/ss3dev/integration-operator/internal/connectors/registry"
)

// The CRD's connectorType enum and the registry must name the same types:
// a type users can apply must have an adapter.
func TestEveryConnectorTypeHasAnAdapter(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "config", "crd", "bases", "integrations.ss3.dev_connectorconfigs.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatal(err)
	}
	var enum []string
	for _, v := range crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["connectorType"].Enum {
		var s string
		_ = json.Unmarshal(v.Raw, &s)
		enum = append(enum, s)
	}
	types := registry.Types()
	slices.Sort(enum)
	slices.Sort(types)
	if len(enum) == 0 || !slices.Equal(enum, types) {
		t.Fatalf("CRD enum %v, registry %v", enum, types)
	}
	for _, typ := range types {
		reg, _ := registry.Lookup(typ)
		if reg.Type != typ || reg.New == nil || len(reg.Credentials) == 0 {
			t.Errorf("%s: incomplete registration %+v", typ, reg)
		}
	}
	if _, ok := registry.Lookup("etsy"); ok {
		t.Error("an unknown type was found")
	}
	if got := registry.PollingTypes(); !slices.Equal(got, []string{"amazon"}) {
		t.Errorf("polling types %v", got)
	}
}
