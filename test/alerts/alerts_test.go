// Package alerts_test checks the chart's alerts and dashboard: promtool
// accepts the rules and their unit tests pass (each alert fires on
// synthetic series), every alert has a runbook in the README and a test
// that fires it, every metric they name is one the components export, and
// the chart ships exactly the tested rules. A scrape of a running
// dispatcher by a real Prometheus is in cmd/integration-operator.
package alerts_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/yaml"

	"github.com/ss3dev/integration-operator/controllers"
	"github.com/ss3dev/integration-operator/dispatcher"
	"github.com/ss3dev/integration-operator/internal/credentials"
	"github.com/ss3dev/integration-operator/internal/testbed"
)

const (
	rulesFile     = "../../charts/integration-operator/files/prometheus-rules.yaml"
	dashboardFile = "../../charts/integration-operator/files/grafana-dashboard.json"
	runbookBase   = "https://github.com/ss3dev/integration-operator/blob/main/README.md"
)

type ruleGroups struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

func promtool(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: run hack/install-system-deps.sh (Debian's prometheus package)")
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func readRules(t *testing.T, data []byte) ruleGroups {
	t.Helper()
	var g ruleGroups
	if err := yaml.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

func TestAlertRulesPassPromtool(t *testing.T) {
	out := promtool(t, "check", "rules", rulesFile)
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool check rules:\n%s", out)
	}
	out = promtool(t, "test", "rules", "rules-test.yaml")
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules:\n%s", out)
	}
}

// Every alert has a unit test that makes it fire, and a runbook section in
// the README that its runbook_url points at.
func TestEveryAlertHasAFiringTestAndARunbook(t *testing.T) {
	data, _ := os.ReadFile(rulesFile)
	rules := readRules(t, data)
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string           `json:"alertname"`
				ExpAlerts []map[string]any `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	raw, _ := os.ReadFile("rules-test.yaml")
	if err := yaml.Unmarshal(raw, &tests); err != nil {
		t.Fatal(err)
	}
	fired := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fired[a.Alertname] = true
			}
		}
	}
	readme, _ := os.ReadFile("../../README.md")
	alerts := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			if !fired[r.Alert] {
				t.Errorf("%s: no test in rules-test.yaml makes it fire", r.Alert)
			}
			if want := runbookBase + "#" + strings.ToLower(r.Alert); r.Annotations["runbook_url"] != want {
				t.Errorf("%s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
			}
			if !regexp.MustCompile(`(?m)^### ` + r.Alert + `$`).Match(readme) {
				t.Errorf("%s: the README has no runbook section \"### %s\"", r.Alert, r.Alert)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: summary and description are required", r.Alert)
			}
		}
	}
	if alerts < 8 {
		t.Fatalf("only %d alerts found; is the parsing broken?", alerts)
	}
}

// exported lists the metric names the three components register.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	reg := prometheus.NewRegistry()
	if _, err := dispatcher.NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := credentials.NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := controllers.NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	descs := make(chan *prometheus.Desc, 1000)
	go func() { reg.Describe(descs); close(descs) }()
	names := map[string]bool{"up": true}
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range descs {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			names[m[1]] = true
		}
	}
	return names
}

// metricNames picks the metric names out of PromQL: identifiers that are
// neither functions, keywords, label names nor ranges.
var metricName = regexp.MustCompile(`\b((?:dispatcher|credentials|integration_operator)_[a-z_]+|up)\b`)

func TestAlertsAndDashboardNameOnlyExportedMetrics(t *testing.T) {
	names := exported(t)
	check := func(where, expr string) {
		for _, m := range metricName.FindAllString(expr, -1) {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_count"), "_sum")
			if !names[m] && !names[base] {
				t.Errorf("%s names %s, which no component exports", where, m)
			}
		}
	}
	data, _ := os.ReadFile(rulesFile)
	for _, g := range readRules(t, data).Groups {
		for _, r := range g.Rules {
			check("alert "+r.Alert, r.Expr)
		}
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	raw, _ := os.ReadFile(dashboardFile)
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	exprs := 0
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			exprs++
			check("dashboard panel "+p.Title, target.Expr)
		}
	}
	if exprs < 10 {
		t.Fatalf("only %d dashboard queries found", exprs)
	}
}

// The chart ships the tested rules: the same groups, with the release's
// job prefix and the runbook base URL of the values; and the dashboard in
// a ConfigMap labelled for Grafana's sidecar.
func TestChartShipsTheTestedRulesAndTheDashboard(t *testing.T) {
	bin, err := testbed.Tool("helm", "HELM_BIN")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "template", "shop", "../../charts/integration-operator", "--set", "prometheusRule.enabled=true",
		"--set", "prometheusRule.runbookBaseURL=https://wiki.example/integration", "--set", "grafanaDashboard.enabled=true").CombinedOutput()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	var rule, dashboard map[string]any
	for _, doc := range strings.Split(string(out), "\n---\n") {
		var obj map[string]any
		if yaml.Unmarshal([]byte(doc), &obj) != nil {
			continue
		}
		switch obj["kind"] {
		case "PrometheusRule":
			rule = obj
		case "ConfigMap":
			if strings.HasSuffix(obj["metadata"].(map[string]any)["name"].(string), "-grafana-dashboard") {
				dashboard = obj
			}
		}
	}
	if rule == nil || dashboard == nil {
		t.Fatalf("rendered no PrometheusRule (%v) or dashboard ConfigMap (%v)", rule != nil, dashboard != nil)
	}
	spec, _ := yaml.Marshal(rule["spec"])
	rendered := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rendered, spec, 0o600); err != nil {
		t.Fatal(err)
	}
	promtool(t, "check", "rules", rendered)
	data, _ := os.ReadFile(rulesFile)
	want := strings.ReplaceAll(strings.ReplaceAll(string(data), `job=~"integration-operator-`, `job=~"shop-`), runbookBase, "https://wiki.example/integration")
	wantJSON, _ := json.Marshal(readRules(t, []byte(want)))
	gotJSON, _ := json.Marshal(readRules(t, spec))
	if string(wantJSON) != string(gotJSON) {
		t.Errorf("the PrometheusRule differs from the tested rules file:\n got %s\nwant %s", gotJSON, wantJSON)
	}
	if !strings.Contains(string(spec), `up{job=~"shop-(metrics|credentials-api`) {
		t.Errorf("the component-down alert does not select the release's jobs:\n%s", spec)
	}
	labels := dashboard["metadata"].(map[string]any)["labels"].(map[string]any)
	if labels["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap labels %v, want grafana_dashboard: \"1\"", labels)
	}
	file, _ := os.ReadFile(dashboardFile)
	for _, v := range dashboard["data"].(map[string]any) {
		if strings.TrimSpace(v.(string)) != strings.TrimSpace(string(file)) {
			t.Errorf("the ConfigMap's dashboard is not files/grafana-dashboard.json")
		}
	}
}
