# integration-operator — build, generate, test.
# Tools are built from the Go module proxy into a cache outside the clone,
# keyed by version, so only the first run on a machine pays for them.

CACHE ?= $(HOME)/.cache/integration-operator
export INTEGRATION_OPERATOR_CACHE := $(CACHE)

CONTROLLER_TOOLS_VERSION ?= v0.23.0
CONTROLLER_GEN ?= $(CACHE)/bin/controller-gen-$(CONTROLLER_TOOLS_VERSION)/controller-gen
# openapi-gen at the kube-openapi version go.mod requires.
KUBE_OPENAPI_VERSION ?= $(shell go list -m -f '{{.Version}}' k8s.io/kube-openapi)
OPENAPI_GEN ?= $(CACHE)/bin/openapi-gen-$(KUBE_OPENAPI_VERSION)/openapi-gen

# -count=1: these tests talk to real servers; a cached pass proves nothing.
GO_TEST_FLAGS ?= -timeout 30m -count=1
CHART_DIR := charts/integration-operator
# How long make fuzz runs each fuzz target.
FUZZTIME ?= 60s

# The image: its name and tag live here only; the chart (appVersion,
# image.repository) and config/ use the same, which test/image checks.
IMAGE_NAME ?= integration-operator
IMAGE_TAG ?= 0.1.0
IMAGE_ARCHIVE ?= bin/$(IMAGE_NAME)-$(IMAGE_TAG).oci.tar
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64
# Set to push after building, e.g. registry.example:5000/team (pushes
# registry.example:5000/team/$(IMAGE_NAME):$(IMAGE_TAG)).
IMAGE_REGISTRY ?=

.PHONY: all
all: build

##@ Development

.PHONY: generate
generate: controller-gen openapi-gen ## Generate deepcopy code for the API types, and the delivery API's OpenAPI definitions.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...
	$(OPENAPI_GEN) --go-header-file hack/boilerplate.go.txt --output-dir internal/deliveryapi/openapi \
		--output-pkg github.com/ss3dev/integration-operator/internal/deliveryapi/openapi --output-file zz_generated.openapi.go \
		--report-filename hack/openapi-violations.list \
		k8s.io/apimachinery/pkg/apis/meta/v1 k8s.io/apimachinery/pkg/runtime k8s.io/apimachinery/pkg/version ./api/deliveries/v1alpha1
	@# Lists' Items are exempt, as Kubernetes' own are.
	@! grep 'deliveries/v1alpha1' hack/openapi-violations.list | grep -v 'List,Items$$' || { echo "fix the delivery API types' OpenAPI violations above"; exit 1; }

.PHONY: manifests
manifests: controller-gen ## Generate CRDs and RBAC from markers; copy CRDs and the tenancy policy into the chart.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd:generateEmbeddedObjectMeta=false paths=./... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	mkdir -p $(CHART_DIR)/crds $(CHART_DIR)/files && cp config/crd/bases/*.yaml $(CHART_DIR)/crds/
	cp config/rbac/role.yaml $(CHART_DIR)/files/manager-role.yaml
	cp config/admission/policy.yaml $(CHART_DIR)/files/tenancy-policy.yaml
	cp config/admission/binding.yaml $(CHART_DIR)/files/tenancy-policy-binding.yaml

.PHONY: fmt
fmt: ## gofmt the tree.
	gofmt -w $$(git ls-files '*.go')

.PHONY: lint
lint: ## gofmt check and go vet.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...

.PHONY: dev
dev: testbed ## Run the whole stack locally (control plane, Postgres, Vault, Kafka protocol, all components); Ctrl-C stops it.
	go run ./hack/dev

.PHONY: build
build: ## Build the binary into bin/.
	go build -o bin/integration-operator ./cmd/integration-operator

.PHONY: image
image: ## Build the OCI image (linux/amd64+arm64, no daemon) into IMAGE_ARCHIVE; push it when IMAGE_REGISTRY is set (docs/image.md).
	go run ./hack/image --name $(IMAGE_NAME) --tag $(IMAGE_TAG) --out $(IMAGE_ARCHIVE) --platforms $(IMAGE_PLATFORMS) $(if $(IMAGE_REGISTRY),--registry $(IMAGE_REGISTRY))

##@ Test

.PHONY: testbed
testbed: ## Install/build everything the tests need (Postgres, kubectl, nginx, Prometheus/promtool, ActiveMQ, kube-apiserver, etcd, Vault, Helm, goaws, the OpenTelemetry Collector).
	hack/install-system-deps.sh
	hack/build-tool.sh etcd >/dev/null
	hack/build-tool.sh kube-apiserver >/dev/null
	hack/build-tool.sh vault >/dev/null
	hack/build-tool.sh helm >/dev/null
	hack/build-tool.sh goaws >/dev/null
	hack/build-tool.sh otelcol >/dev/null

.PHONY: test
test: testbed lint ## Unit and integration tests against the real test bed.
	go test $(GO_TEST_FLAGS) ./...

.PHONY: fuzz
fuzz: testbed ## Run every Go fuzz target for FUZZTIME each (default 60s); make test runs only their seed corpora.
	FUZZTIME=$(FUZZTIME) hack/fuzz.sh

.PHONY: e2e
e2e: testbed ## End-to-end: the built binary driven through kubectl and curl (also part of make test).
	go test $(GO_TEST_FLAGS) -v ./test/e2e/

.PHONY: e2e-cluster
e2e-cluster: testbed image ## A real single-node Kubernetes here (root): the image and chart installed, the story run, upgraded, uninstalled (docs/e2e-cluster.md).
	hack/install-cluster-deps.sh
	for t in kubelet kube-scheduler kube-controller-manager kube-proxy cni-plugins; do hack/build-tool.sh $$t >/dev/null || exit 1; done
	@# down.sh again after the test: it cleans up even when the test process was killed.
	IMAGE_ARCHIVE=$(abspath $(IMAGE_ARCHIVE)) go test -tags e2ecluster $(GO_TEST_FLAGS) -v ./test/cluster/; rc=$$?; \
	hack/cluster/down.sh; exit $$rc

.PHONY: bench
bench: testbed ## Benchmarks: credentials API (cached vs ceiling vs bcrypt), dispatcher (durable to webhooks with tracing off and on, to SQS and ActiveMQ, ephemeral ceiling, latency), connectors (eBay updates, Stripe webhooks), live stream (1,000 SSE clients, p99 latency).
	go test -run '^$$' -bench . -benchtime 3s ./internal/credentials/
	go test -timeout 60m -run '^$$' -bench . -benchtime 1x ./dispatcher/
	go test -run '^$$' -bench . -benchtime 1x ./internal/stream/

.PHONY: bench-scale
bench-scale: testbed ## Production shape (issue 15): status reporter writes/s and pass time with 10,000 subscriptions, against the budget; the rate a receiver sees from three dispatcher replicas at a 10/s limit; durable deliveries/s with an empty history and with 50 million rows, p99 latency during a retention drop, disk bytes per delivery.
	go test -tags scale -timeout 30m -count=1 -run '^TestReportScale$$' -v ./controllers/
	bash -o pipefail -c "go test -tags scale -timeout 10m -count=1 -run '^TestScaleRateLimitAcrossReplicas$$' -v ./dispatcher/ | grep -E '^(shared rate limit|--- |ok|FAIL)'"
	bash -o pipefail -c "go test -tags scale -timeout 60m -count=1 -run '^TestScaleHistory$$' -v ./dispatcher/ | grep -E '^(history|--- |ok|FAIL)'"

.PHONY: alerts
alerts: ## promtool check rules and test rules on the chart's alerts (also run by make test, in test/alerts).
	hack/install-system-deps.sh
	promtool check rules $(CHART_DIR)/files/prometheus-rules.yaml
	promtool test rules test/alerts/rules-test.yaml

.PHONY: helm-lint
helm-lint: ## Lint the chart.
	$$(hack/build-tool.sh helm) lint $(CHART_DIR) --strict

.PHONY: verify-generated
verify-generated: generate manifests ## Fail when generated files are out of date.
	@git diff --exit-code -- api config charts || (echo "run 'make generate manifests' and commit"; exit 1)

##@ Tools

.PHONY: openapi-gen
openapi-gen: $(OPENAPI_GEN)
$(OPENAPI_GEN):
	GOBIN=$(dir $(OPENAPI_GEN)) go install k8s.io/kube-openapi/cmd/openapi-gen@$(KUBE_OPENAPI_VERSION)

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN)
$(CONTROLLER_GEN):
	GOBIN=$(dir $(CONTROLLER_GEN)) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)

.PHONY: help
help: ## Show targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-18s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)
