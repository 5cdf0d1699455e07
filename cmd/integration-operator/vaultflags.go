package main

import (
	"github.com/spf13/pflag"

	"github.com/ss3dev/integration-operator/internal/vault"
)

// addVaultFlags binds Vault settings. The token is read from VAULT_TOKEN
// only, never a flag, so it does not show in process listings.
func addVaultFlags(f *pflag.FlagSet, c *vault.Config) {
	env := vault.ConfigFromEnv()
	c.Token = env.Token
	f.StringVar(&c.Address, "vault-addr", envDefault("VAULT_ADDR", "http://127.0.0.1:8200"), "Vault address [VAULT_ADDR]")
	f.StringVar((*string)(&c.Auth), "vault-auth-method", envDefault("VAULT_AUTH_METHOD", string(vault.AuthToken)), "token (VAULT_TOKEN) or kubernetes [VAULT_AUTH_METHOD]")
	// Each component logs in with a role of its own, bound to its own
	// ServiceAccount (config/vault/setup.sh), so none holds another's policy.
	f.StringVar(&c.Role, "vault-role", env.Role, "Vault role for kubernetes auth, one per component, e.g. integration-operator-dispatcher [VAULT_ROLE]")
	f.StringVar(&c.KubernetesMount, "vault-kubernetes-mount", envDefault("VAULT_KUBERNETES_MOUNT", "kubernetes"), "mount of Vault's kubernetes auth method [VAULT_KUBERNETES_MOUNT]")
	f.StringVar(&c.ServiceAccountToken, "vault-sa-token-path", envDefault("VAULT_SA_TOKEN_PATH", vault.DefaultServiceAccountTokenPath), "service account token presented to Vault: a projected token with the Vault role's audience, e.g. /var/run/secrets/vault/token [VAULT_SA_TOKEN_PATH]")
	f.StringVar(&c.Mount, "vault-kv-mount", envDefault("VAULT_KV_MOUNT", vault.DefaultMount), "KV v2 mount [VAULT_KV_MOUNT]")
	f.StringVar(&c.Prefix, "vault-kv-prefix", envDefault("VAULT_KV_PREFIX", vault.DefaultPrefix), "folder under the mount [VAULT_KV_PREFIX]")
}
