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

{{- define "io.podSecurity" -}}
securityContext:
  runAsNonRoot: true
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

{{- define "io.vaultEnv" -}}
- name: VAULT_ADDR
  value: {{ .Values.vault.address | quote }}
- name: VAULT_AUTH_METHOD
  value: {{ .Values.vault.authMethod | quote }}
- name: VAULT_ROLE
  value: {{ .Values.vault.role | quote }}
- name: VAULT_KUBERNETES_MOUNT
  value: {{ .Values.vault.kubernetesMount | quote }}
- name: VAULT_KV_MOUNT
  value: {{ .Values.vault.kvMount | quote }}
- name: VAULT_KV_PREFIX
  value: {{ .Values.vault.kvPrefix | quote }}
{{- if eq .Values.vault.authMethod "token" }}
- name: VAULT_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ required "vault.tokenSecret.name is required with token auth" .Values.vault.tokenSecret.name }}
      key: {{ .Values.vault.tokenSecret.key }}
{{- end }}
{{- end -}}
