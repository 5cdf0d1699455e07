package deliveryapi

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	"k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	clientrest "k8s.io/client-go/rest"
	"k8s.io/component-base/compatibility"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	deliveriesv1alpha1 "github.com/ss3dev/integration-operator/api/deliveries/v1alpha1"
	"github.com/ss3dev/integration-operator/internal/deliveryapi/openapi"
	"github.com/ss3dev/integration-operator/internal/store"
)

// Options are the server's flags: serving (TLS), and authentication and
// authorization delegated to the cluster's API server, as any aggregated
// API server takes them.
type Options struct {
	SecureServing  *genericoptions.SecureServingOptionsWithLoopback
	Authentication *genericoptions.DelegatingAuthenticationOptions
	Authorization  *genericoptions.DelegatingAuthorizationOptions
	// CertDirectory holds a self-signed serving certificate when no
	// --tls-cert-file is given (the APIService then skips verification).
	PollInterval time.Duration
}

// NewOptions has the defaults: port 8443, self-signed certificates in a
// temporary directory.
func NewOptions() *Options {
	o := &Options{
		SecureServing:  genericoptions.NewSecureServingOptions().WithLoopback(),
		Authentication: genericoptions.NewDelegatingAuthenticationOptions(),
		Authorization:  genericoptions.NewDelegatingAuthorizationOptions(),
		PollInterval:   defaultWatch.every,
	}
	o.SecureServing.BindPort = 8443
	o.SecureServing.ServerCert.CertDirectory = os.TempDir()
	o.SecureServing.ServerCert.PairName = "integration-operator-delivery-api"
	return o
}

// AddFlags registers the options' flags.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	o.SecureServing.AddFlags(fs)
	o.Authentication.AddFlags(fs)
	o.Authorization.AddFlags(fs)
	fs.DurationVar(&o.PollInterval, "watch-poll-interval", o.PollInterval, "how often a watch polls Postgres for new attempts: a new outcome reaches kubectl -w within about this")
}

// Run serves the delivery API until ctx ends. kube reads the
// subscriptions and connectors (their metadata) whose deliveries it shows.
func Run(ctx context.Context, o *Options, kube *clientrest.Config, log *store.Store) error {
	if errs := append(o.SecureServing.Validate(), append(o.Authentication.Validate(), o.Authorization.Validate()...)...); len(errs) > 0 {
		return fmt.Errorf("delivery API options: %v", errs)
	}
	if err := o.SecureServing.MaybeDefaultWithSelfSignedCerts("localhost", nil, []net.IP{net.ParseIP("127.0.0.1")}); err != nil {
		return fmt.Errorf("self-signed serving certificate: %w", err)
	}
	config := genericapiserver.NewRecommendedConfig(Codecs)
	config.EffectiveVersion = compatibility.NewEffectiveVersionFromString("1.37", "", "")
	// Server-side apply's type converter needs the schemas; kubectl reads
	// them for explain and validation.
	namer := openapinamer.NewDefinitionNamer(Scheme)
	config.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(openapi.GetOpenAPIDefinitions, namer)
	config.OpenAPIConfig.Info.Title = "integration-operator delivery API"
	config.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(openapi.GetOpenAPIDefinitions, namer)
	config.OpenAPIV3Config.Info.Title = config.OpenAPIConfig.Info.Title
	if err := o.SecureServing.ApplyTo(&config.SecureServing, &config.LoopbackClientConfig); err != nil {
		return err
	}
	if err := o.Authentication.ApplyTo(&config.Authentication, config.SecureServing, nil); err != nil {
		return err
	}
	if err := o.Authorization.ApplyTo(&config.Authorization); err != nil {
		return err
	}
	objects, err := cache.New(kube, cache.Options{Scheme: runtime.NewScheme()})
	if err != nil {
		return fmt.Errorf("cache of subscriptions: %w", err)
	}
	server, err := config.Complete().New("integration-operator-delivery-api", genericapiserver.NewEmptyDelegate())
	if err != nil {
		return err
	}
	dir := &directory{objects: objects, authz: config.Authorization.Authorizer}
	settings := defaultWatch
	settings.every = o.PollInterval
	group := genericapiserver.NewDefaultAPIGroupInfo(deliveriesv1alpha1.GroupName, Scheme, metav1.ParameterCodec, Codecs)
	group.VersionedResourcesStorageMap[deliveriesv1alpha1.SchemeGroupVersion.Version] = map[string]rest.Storage{
		"webhookdeliveries":   &deliveries{kind: webhookKind(log, dir), log: log, dir: dir, watch: settings},
		"connectordeliveries": &deliveries{kind: connectorKind(log, dir), log: log, dir: dir, watch: settings},
		"webhooktests":        webhookTests(log, dir, 200*time.Millisecond),
		"webhookretriggers":   webhookRetriggers(log, dir),
	}
	if err := server.InstallAPIGroup(&group); err != nil {
		return err
	}
	go func() { _ = objects.Start(ctx) }()
	if !objects.WaitForCacheSync(ctx) {
		return fmt.Errorf("cache of subscriptions did not sync")
	}
	return server.PrepareRun().RunWithContext(ctx)
}
