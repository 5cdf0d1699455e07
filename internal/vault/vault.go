// Package vault reads and writes the operator's secrets in Vault's KV v2
// engine, under a configurable mount and prefix, authenticating with a token
// or with Vault's Kubernetes auth method.
package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	k8sauth "github.com/hashicorp/vault/api/auth/kubernetes"
)

// AuthMethod selects how the client logs in.
type AuthMethod string

const (
	// AuthToken uses a static token (dev and tests).
	AuthToken AuthMethod = "token"
	// AuthKubernetes exchanges the pod's service account token for a Vault token.
	AuthKubernetes AuthMethod = "kubernetes"
)

// Config says where Vault is and how to reach our paths.
type Config struct {
	Address string
	// Mount is the KV v2 mount, e.g. "ss3/kv"; Prefix is the folder under it,
	// e.g. "integration-service".
	Mount  string
	Prefix string

	Auth  AuthMethod
	Token string // AuthToken
	// AuthKubernetes: the Vault role, the auth mount (default "kubernetes")
	// and the service account token file.
	Role                string
	KubernetesMount     string
	ServiceAccountToken string
}

// Defaults for the design's paths: ss3/kv/integration-service/...
const (
	DefaultMount  = "ss3/kv"
	DefaultPrefix = "integration-service"
	// DefaultServiceAccountTokenPath is where Kubernetes mounts the pod's token.
	DefaultServiceAccountTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token"
)

// ErrNotFound is returned when a secret does not exist (or was deleted).
var ErrNotFound = errors.New("vault: secret not found")

// Client is a KV v2 client bound to one mount and prefix.
type Client struct {
	cfg Config
	api *vaultapi.Client
	kv  *vaultapi.KVv2

	loginMu sync.Mutex
}

// New builds a client and, for Kubernetes auth, logs in.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Mount == "" {
		cfg.Mount = DefaultMount
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	apiCfg := vaultapi.DefaultConfig()
	if cfg.Address != "" {
		apiCfg.Address = cfg.Address
	}
	// Our callers retry through the reconcile loop; vault/api's own retries
	// would only stretch an outage into a hung reconcile.
	apiCfg.MaxRetries = 0
	apiCfg.Timeout = 10 * time.Second
	api, err := vaultapi.NewClient(apiCfg)
	if err != nil {
		return nil, fmt.Errorf("vault client: %w", err)
	}
	c := &Client{cfg: cfg, api: api, kv: api.KVv2(cfg.Mount)}
	switch cfg.Auth {
	case AuthToken, "":
		if cfg.Token == "" {
			return nil, errors.New("vault: token auth needs a token (VAULT_TOKEN)")
		}
		api.SetToken(cfg.Token)
	case AuthKubernetes:
		if cfg.Role == "" {
			return nil, errors.New("vault: kubernetes auth needs a role")
		}
		if err := c.login(ctx); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("vault: unknown auth method %q (want token or kubernetes)", cfg.Auth)
	}
	return c, nil
}

func (c *Client) login(ctx context.Context) error {
	c.loginMu.Lock()
	defer c.loginMu.Unlock()
	tokenPath := c.cfg.ServiceAccountToken
	if tokenPath == "" {
		tokenPath = DefaultServiceAccountTokenPath
	}
	opts := []k8sauth.LoginOption{k8sauth.WithServiceAccountTokenPath(tokenPath)}
	if c.cfg.KubernetesMount != "" {
		opts = append(opts, k8sauth.WithMountPath(c.cfg.KubernetesMount))
	}
	auth, err := k8sauth.NewKubernetesAuth(c.cfg.Role, opts...)
	if err != nil {
		return fmt.Errorf("vault kubernetes auth: %w", err)
	}
	secret, err := c.api.Auth().Login(ctx, auth)
	if err != nil {
		return fmt.Errorf("vault kubernetes auth login: %w", err)
	}
	if secret == nil || secret.Auth == nil {
		return errors.New("vault kubernetes auth login: no token returned")
	}
	return nil
}

// Path returns the path of name under the configured mount and prefix, as
// operators see it in Vault (mount included).
func (c *Client) Path(name string) string {
	return path.Join(c.cfg.Mount, c.cfg.Prefix, name)
}

// Get reads the newest version of the secret at name (relative to the prefix).
// It returns ErrNotFound when there is none or it was deleted.
func (c *Client) Get(ctx context.Context, name string) (map[string]string, int, error) {
	var s *vaultapi.KVSecret
	err := c.withRelogin(ctx, func() (err error) {
		s, err = c.kv.Get(ctx, path.Join(c.cfg.Prefix, name))
		return err
	})
	if errors.Is(err, vaultapi.ErrSecretNotFound) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("vault read %s: %w", c.Path(name), scrub(err))
	}
	if s == nil || s.Data == nil {
		return nil, 0, ErrNotFound
	}
	data := make(map[string]string, len(s.Data))
	for k, v := range s.Data {
		str, ok := v.(string)
		if !ok {
			return nil, 0, fmt.Errorf("vault read %s: field %q is not a string", c.Path(name), k)
		}
		data[k] = str
	}
	version := 0
	if s.VersionMetadata != nil {
		version = s.VersionMetadata.Version
	}
	return data, version, nil
}

// GetShared reads the newest version of a secret at name under the mount
// but outside our prefix (e.g. "shared/kafka"), for settings the platform
// shares between services.
func (c *Client) GetShared(ctx context.Context, name string) (map[string]string, error) {
	var s *vaultapi.KVSecret
	err := c.withRelogin(ctx, func() (err error) {
		s, err = c.kv.Get(ctx, name)
		return err
	})
	if errors.Is(err, vaultapi.ErrSecretNotFound) || err == nil && (s == nil || s.Data == nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("vault read %s: %w", path.Join(c.cfg.Mount, name), scrub(err))
	}
	data := make(map[string]string, len(s.Data))
	for k, v := range s.Data {
		if str, ok := v.(string); ok {
			data[k] = str
		}
	}
	return data, nil
}

// Put writes a new version of the secret at name and returns its version.
func (c *Client) Put(ctx context.Context, name string, data map[string]string) (int, error) {
	payload := make(map[string]any, len(data))
	for k, v := range data {
		payload[k] = v
	}
	var s *vaultapi.KVSecret
	err := c.withRelogin(ctx, func() (err error) {
		s, err = c.kv.Put(ctx, path.Join(c.cfg.Prefix, name), payload)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("vault write %s: %w", c.Path(name), scrub(err))
	}
	if s == nil || s.VersionMetadata == nil {
		return 0, nil
	}
	return s.VersionMetadata.Version, nil
}

// Delete removes every version and the metadata of the secret at name.
// Deleting what does not exist succeeds.
func (c *Client) Delete(ctx context.Context, name string) error {
	err := c.withRelogin(ctx, func() error {
		return c.kv.DeleteMetadata(ctx, path.Join(c.cfg.Prefix, name))
	})
	if err != nil {
		return fmt.Errorf("vault delete %s: %w", c.Path(name), scrub(err))
	}
	return nil
}

// List returns the child names of folder (relative to the prefix); folders end in "/".
func (c *Client) List(ctx context.Context, folder string) ([]string, error) {
	var s *vaultapi.Secret
	err := c.withRelogin(ctx, func() (err error) {
		s, err = c.api.Logical().ListWithContext(ctx, path.Join(c.cfg.Mount, "metadata", c.cfg.Prefix, folder))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("vault list %s: %w", c.Path(folder), scrub(err))
	}
	if s == nil || s.Data == nil {
		return nil, nil
	}
	raw, _ := s.Data["keys"].([]any)
	keys := make([]string, 0, len(raw))
	for _, k := range raw {
		if str, ok := k.(string); ok {
			keys = append(keys, str)
		}
	}
	return keys, nil
}

// Healthy reports whether Vault answers and is unsealed.
func (c *Client) Healthy(ctx context.Context) error {
	h, err := c.api.Sys().HealthWithContext(ctx)
	if err != nil {
		return fmt.Errorf("vault health: %w", scrub(err))
	}
	if h.Sealed {
		return errors.New("vault is sealed")
	}
	return nil
}

// withRelogin runs op and, under Kubernetes auth, logs in again once when
// Vault says the token is no longer valid (expired or revoked).
func (c *Client) withRelogin(ctx context.Context, op func() error) error {
	err := op()
	var re *vaultapi.ResponseError
	if err != nil && c.cfg.Auth == AuthKubernetes && errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
		if lerr := c.login(ctx); lerr != nil {
			return errors.Join(err, lerr)
		}
		return op()
	}
	return err
}

// IsUnavailable reports whether err means Vault could not be reached or
// served the request (as opposed to refusing it).
func IsUnavailable(err error) bool {
	if err == nil || errors.Is(err, ErrNotFound) {
		return false
	}
	var re *vaultapi.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode >= 500
	}
	return true
}

// scrub keeps Vault's error but drops request bodies it may echo.
func scrub(err error) error {
	var re *vaultapi.ResponseError
	if errors.As(err, &re) {
		return &vaultError{status: re.StatusCode, errs: re.Errors, wrapped: re}
	}
	return err
}

type vaultError struct {
	status  int
	errs    []string
	wrapped error
}

func (e *vaultError) Error() string {
	return fmt.Sprintf("vault answered %d: %s", e.status, strings.Join(e.errs, "; "))
}
func (e *vaultError) Unwrap() error { return e.wrapped }

// ConfigFromEnv fills a Config from the standard Vault variables, for the
// flag defaults.
func ConfigFromEnv() Config {
	return Config{
		Address:             os.Getenv("VAULT_ADDR"),
		Token:               os.Getenv("VAULT_TOKEN"),
		Mount:               os.Getenv("VAULT_KV_MOUNT"),
		Prefix:              os.Getenv("VAULT_KV_PREFIX"),
		Auth:                AuthMethod(os.Getenv("VAULT_AUTH_METHOD")),
		Role:                os.Getenv("VAULT_ROLE"),
		KubernetesMount:     os.Getenv("VAULT_KUBERNETES_MOUNT"),
		ServiceAccountToken: os.Getenv("VAULT_SA_TOKEN_PATH"),
	}
}
