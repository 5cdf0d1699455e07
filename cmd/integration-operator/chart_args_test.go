package main

import (
	"bytes"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/ss3dev/integration-operator/internal/testbed"
)

// TestTheChartPassesOnlyFlagsTheBinaryKnows renders the chart with every
// option on and parses each container's arguments with the binary's own
// commands: a flag renamed in one place and not the other fails here,
// not in a pod's CrashLoopBackOff.
func TestTheChartPassesOnlyFlagsTheBinaryKnows(t *testing.T) {
	bin, err := testbed.Tool("helm", "HELM_BIN")
	if err != nil {
		t.Fatal(err)
	}
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	cmd := exec.Command(bin, "template", "io", filepath.Join(root, "charts", "integration-operator"),
		"--set", "credentialsApi.stream.enabled=true", "--set", "credentialsApi.tokenSigningSecret=signing",
		"--set", "kafka.tls.enabled=true", "--set", "kafka.tls.caConfigMap=kafka-ca",
		"--set", "kafka.sasl.mechanism=SCRAM-SHA-512", "--set", "kafka.sasl.existingSecret=kafka-user",
		"--set", "dispatcher.allowNetworks={10.0.0.0/8}", "--set", "dispatcher.destinationCA.secretName=broker-ca", "--set", "dispatcher.inbound.enabled=true",
		"--set", "tracing.otlpEndpoint=http://otel-collector:4317")
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm template: %v\n%s", err, errOut.String())
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(&out, 4096)
	checked := 0
	for {
		var d appsv1.Deployment
		if err := dec.Decode(&d); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		if d.Kind != "Deployment" {
			continue
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if len(c.Args) == 0 {
				t.Errorf("%s/%s has no arguments", d.Name, c.Name)
				continue
			}
			sub, rest, err := newRootCommand().Find(c.Args)
			if err != nil || sub.Name() != c.Args[0] {
				t.Errorf("%s/%s: no command %q: %v", d.Name, c.Name, c.Args[0], err)
				continue
			}
			if err := sub.ParseFlags(rest); err != nil {
				t.Errorf("%s/%s: %v (args %s)", d.Name, c.Name, err, strings.Join(c.Args, " "))
			}
			if len(sub.Flags().Args()) > 0 {
				t.Errorf("%s/%s: stray arguments %v", d.Name, c.Name, sub.Flags().Args())
			}
			checked++
		}
	}
	if checked != 4 {
		t.Errorf("checked %d containers, want the manager's, the dispatcher's, the credentials API's and the delivery API's", checked)
	}
}
