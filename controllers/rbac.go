package controllers

// The manager's permissions. controller-gen turns these markers into
// config/rbac/role.yaml; keep them to what the reconcilers use.

// +kubebuilder:rbac:groups=integrations.ss3.dev,resources=webhooksubscriptions;apicredentials;connectorconfigs,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=integrations.ss3.dev,resources=webhooksubscriptions/status;apicredentials/status;connectorconfigs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=integrations.ss3.dev,resources=webhooksubscriptions/finalizers;apicredentials/finalizers;connectorconfigs/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
