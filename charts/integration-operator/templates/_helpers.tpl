{{- define "io.name" -}}{{ .Release.Name }}{{- end -}}

{{- define "io.labels" -}}
app.kubernetes.io/name: integration-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "io.selector" -}}
app.kubernetes.io/name: integration-operator
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "io.image" -}}{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}{{- end -}}

{{- /* The image's user (hack/image). Nothing in the binary writes to the
  root filesystem, so it is read-only and no /tmp volume is needed. */ -}}
{{- define "io.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{- define "io.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
{{- end -}}

{{- define "io.databaseEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.existingSecret }}
      key: {{ .Values.database.urlKey }}
{{- end -}}

{{- /* The ServiceAccount of a component: dict "root" . "component" "dispatcher". */ -}}
{{- define "io.serviceAccount" -}}{{ include "io.name" .root }}-{{ .component }}{{- end -}}

{{- /* Vault settings of a component, which logs in with its own role:
  dict "root" . "component" "manager" (or "dispatcher"). */ -}}
{{- define "io.vaultEnv" -}}
{{- $v := .root.Values.vault -}}
- name: VAULT_ADDR
  value: {{ $v.address | quote }}
- name: VAULT_AUTH_METHOD
  value: {{ $v.authMethod | quote }}
- name: VAULT_ROLE
  value: {{ index $v.roles .component | quote }}
- name: VAULT_KUBERNETES_MOUNT
  value: {{ $v.kubernetesMount | quote }}
{{- if eq $v.authMethod "kubernetes" }}
- name: VAULT_SA_TOKEN_PATH
  value: /var/run/secrets/vault/token
{{- end }}
- name: VAULT_KV_MOUNT
  value: {{ $v.kvMount | quote }}
- name: VAULT_KV_PREFIX
  value: {{ $v.kvPrefix | quote }}
{{- if eq $v.authMethod "token" }}
- name: VAULT_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ required "vault.tokenSecret.name is required with token auth" $v.tokenSecret.name }}
      key: {{ index $v.tokenSecret.keys .component }}
{{- end }}
{{- end -}}

{{- /* The projected token a component presents to Vault's Kubernetes auth:
  its audience is Vault's alone, so the API server refuses it. */ -}}
{{- define "io.vaultTokenMount" -}}
- {name: vault-token, mountPath: /var/run/secrets/vault, readOnly: true}
{{- end -}}

{{- define "io.vaultTokenVolume" -}}
- name: vault-token
  projected:
    sources:
    - serviceAccountToken:
        audience: {{ .Values.vault.tokenAudience | quote }}
        expirationSeconds: 3600
        path: token
{{- end -}}
