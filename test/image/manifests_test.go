package image_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/ss3dev/integration-operator/internal/testbed"
)

// The chart and `kubectl apply -k config/default` run the image make image
// builds, by the Makefile's name and tag, as its user, hardened.
func TestManifestsRunTheImage(t *testing.T) {
	want := makeVar(t, "IMAGE_NAME") + ":" + makeVar(t, "IMAGE_TAG")
	helm, err := testbed.Tool("helm", "HELM_BIN")
	if err != nil {
		t.Fatal(err)
	}
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatal("kubectl not found (make testbed installs it)")
	}
	chart := filepath.Join("charts", "integration-operator")
	// The delivery API is chart-only (config/default's namePrefix would rename
	// its APIService and kube-system binding).
	for _, render := range []struct {
		source, stream string
		want           int
	}{
		{"helm template", run(t, helm, "template", "io", chart, "--namespace", "integrations"), 4},
		{"kubectl kustomize", run(t, kubectl, "kustomize", filepath.Join("config", "default")), 3},
	} {
		source := render.source
		deployments := deploymentsIn(t, render.stream)
		if len(deployments) != render.want {
			t.Errorf("%s: %d Deployments, want %d (manager, dispatcher, credentials-api, and the chart's delivery-api)", source, len(deployments), render.want)
		}
		for _, d := range deployments {
			checkPodSpec(t, source+" "+d.Name, &d.Spec.Template.Spec, want)
		}
	}

	data, err := os.ReadFile(filepath.Join(repoRoot(t), chart, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var meta struct{ AppVersion string }
	if err := yaml.Unmarshal(data, &meta); err != nil {
		t.Fatal(err)
	}
	if tag := makeVar(t, "IMAGE_TAG"); meta.AppVersion != tag {
		t.Errorf("Chart.yaml appVersion %q, Makefile IMAGE_TAG %q", meta.AppVersion, tag)
	}
}

func deploymentsIn(t *testing.T, stream string) []appsv1.Deployment {
	t.Helper()
	var out []appsv1.Deployment
	for _, doc := range strings.Split(stream, "\n---\n") {
		var d appsv1.Deployment
		if err := yaml.Unmarshal([]byte(doc), &d); err != nil {
			t.Fatal(err)
		}
		if d.Kind == "Deployment" {
			out = append(out, d)
		}
	}
	return out
}

func checkPodSpec(t *testing.T, where string, spec *corev1.PodSpec, image string) {
	t.Helper()
	pod := spec.SecurityContext
	if pod == nil || pod.RunAsNonRoot == nil || !*pod.RunAsNonRoot || pod.RunAsUser == nil || *pod.RunAsUser != nonroot ||
		pod.RunAsGroup == nil || *pod.RunAsGroup != nonroot || pod.SeccompProfile == nil || pod.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod securityContext %s, want runAsNonRoot, runAsUser/runAsGroup %d, seccomp RuntimeDefault", where, toYAML(pod), nonroot)
	}
	for _, c := range append(spec.InitContainers, spec.Containers...) {
		if c.Image != image {
			t.Errorf("%s: container %s runs %q, want %q (the Makefile's IMAGE_NAME:IMAGE_TAG)", where, c.Name, c.Image, image)
		}
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
			t.Errorf("%s: container %s securityContext %s, want readOnlyRootFilesystem, no privilege escalation, capabilities drop [ALL]", where, c.Name, toYAML(sc))
		}
	}
}

func toYAML(v any) string {
	out, _ := yaml.Marshal(v)
	return strings.TrimSpace(string(out))
}
