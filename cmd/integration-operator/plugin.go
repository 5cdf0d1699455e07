package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"

	deliveriesv1alpha1 "github.com/ss3dev/integration-operator/api/deliveries/v1alpha1"
	"github.com/ss3dev/integration-operator/internal/deliveryapi"
)

// pluginName is the name kubectl finds the plugin by: the binary, linked
// or copied as kubectl-ss3 on the PATH, answers `kubectl ss3`.
const pluginName = "kubectl-ss3"

// isPlugin says whether the binary runs as the kubectl plugin.
func isPlugin() bool {
	return strings.TrimSuffix(filepath.Base(os.Args[0]), ".exe") == pluginName
}

// newPluginCommand is `kubectl ss3`: the delivery log's verbs that are not
// CRUD, through the delivery API and so under the user's own RBAC (and
// kubectl's flags: --kubeconfig, -n, --context, --as ...).
func newPluginCommand() *cobra.Command {
	flags := genericclioptions.NewConfigFlags(true)
	cmd := &cobra.Command{
		Use:   "ss3",
		Short: "Test events and re-triggers for webhook subscriptions (kubectl ss3, the kubectl plugin)",
		Long: `kubectl ss3 sends test events to a WebhookSubscription's endpoint and re-triggers dead letters,
through the delivery API (deliveries.integrations.ss3.dev) under your RBAC. Deliveries are listed with kubectl itself:
  kubectl get webhookdeliveries --field-selector spec.subscription=NAME
Install: link or copy this binary as kubectl-ss3 onto your PATH.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	flags.AddFlags(cmd.PersistentFlags())
	cmd.AddCommand(newPluginTestCommand(flags), newPluginRetriggerCommand(flags))
	return cmd
}

// deliveryClient is a REST client for the delivery API, and the namespace
// kubectl's flags and kubeconfig choose.
func deliveryClient(flags *genericclioptions.ConfigFlags) (*rest.RESTClient, string, error) {
	cfg, err := flags.ToRESTConfig()
	if err != nil {
		return nil, "", err
	}
	namespace, _, err := flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, "", err
	}
	scheme := runtime.NewScheme()
	if err := deliveriesv1alpha1.AddToScheme(scheme); err != nil {
		return nil, "", err
	}
	cfg.GroupVersion = &deliveriesv1alpha1.SchemeGroupVersion
	cfg.APIPath = "/apis"
	cfg.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	// A test waits for its first attempt: up to a minute, server side.
	cfg.Timeout = 90 * time.Second
	client, err := rest.RESTClientFor(cfg)
	return client, namespace, err
}

func newPluginTestCommand(flags *genericclioptions.ConfigFlags) *cobra.Command {
	var eventType, payloadFile string
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "test SUBSCRIPTION",
		Short: "Send a test event to a subscription's endpoint, signed like any delivery, and show how it went",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, namespace, err := deliveryClient(flags)
			if err != nil {
				return err
			}
			test := &deliveriesv1alpha1.WebhookTest{
				TypeMeta: metav1.TypeMeta{APIVersion: deliveriesv1alpha1.SchemeGroupVersion.String(), Kind: "WebhookTest"},
				Spec:     deliveriesv1alpha1.WebhookTestSpec{Subscription: args[0], EventType: eventType, WaitSeconds: int32(wait / time.Second)},
			}
			if payloadFile != "" {
				raw, err := readPayload(cmd.InOrStdin(), payloadFile)
				if err != nil {
					return err
				}
				test.Spec.Payload = &runtime.RawExtension{Raw: raw}
			}
			var out deliveriesv1alpha1.WebhookTest
			if err := client.Post().Namespace(namespace).Resource("webhooktests").Body(test).Do(cmd.Context()).Into(&out); err != nil {
				return err
			}
			st := out.Status
			line := fmt.Sprintf("delivery %s: %s", st.Delivery, st.Phase)
			if st.HTTPStatus != nil {
				line += fmt.Sprintf(" (HTTP %d)", *st.HTTPStatus)
			}
			if st.Reason != "" {
				line += ": " + st.Reason
			}
			fmt.Fprintln(cmd.OutOrStdout(), line)
			fmt.Fprintf(cmd.OutOrStdout(), "details: kubectl describe webhookdelivery %s -n %s\n", st.Delivery, namespace)
			if st.Phase != deliveriesv1alpha1.PhaseDelivered {
				return fmt.Errorf("the test event was not delivered")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&eventType, "event-type", "", "the event type to send (default webhook.test)")
	cmd.Flags().StringVar(&payloadFile, "payload-file", "", "a JSON file to send as the payload (- for stdin; default: a small ping)")
	cmd.Flags().DurationVar(&wait, "wait", 15*time.Second, "how long to wait for the first attempt (at most 1m)")
	return cmd
}

func readPayload(stdin io.Reader, path string) ([]byte, error) {
	var raw []byte
	var err error
	if path == "-" {
		raw, err = io.ReadAll(stdin)
	} else {
		raw, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	if !json.Valid(raw) {
		return nil, fmt.Errorf("%s is not JSON", path)
	}
	return raw, nil
}

func newPluginRetriggerCommand(flags *genericclioptions.ConfigFlags) *cobra.Command {
	var delivery, since string
	cmd := &cobra.Command{
		Use:   "retrigger SUBSCRIPTION",
		Short: "Re-queue a subscription's dead letters: one (--delivery), those since a time (--dead-since), or all",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, namespace, err := deliveryClient(flags)
			if err != nil {
				return err
			}
			r := &deliveriesv1alpha1.WebhookRetrigger{
				TypeMeta: metav1.TypeMeta{APIVersion: deliveriesv1alpha1.SchemeGroupVersion.String(), Kind: "WebhookRetrigger"},
				Spec:     deliveriesv1alpha1.WebhookRetriggerSpec{Subscription: args[0], Delivery: delivery},
			}
			if since != "" {
				t, err := deliveryapi.ParseTime(since, time.Now())
				if err != nil {
					return fmt.Errorf("--dead-since: %w", err)
				}
				r.Spec.DeadLetteredSince = &metav1.Time{Time: t}
			}
			var out deliveriesv1alpha1.WebhookRetrigger
			if err := client.Post().Namespace(namespace).Resource("webhookretriggers").Body(r).Do(cmd.Context()).Into(&out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "re-queued %d dead-lettered deliveries of %s/%s\n", out.Status.Requeued, namespace, args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&delivery, "delivery", "", "the one delivery to re-queue (its name: the X-SS3-Delivery id)")
	cmd.Flags().StringVar(&since, "dead-since", "", "re-queue those dead-lettered since: an RFC 3339 time or a duration back from now (2h)")
	return cmd
}
