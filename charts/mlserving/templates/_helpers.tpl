{{/* Name of the Deployment, ServiceAccount and RBAC objects (deploy/ uses mlserving-operator). */}}
{{- define "mlserving.name" -}}
{{- .Values.operator.name -}}
{{- end }}

{{/* The labels deploy/ puts on every object (selectors use these only). */}}
{{- define "mlserving.selectorLabels" -}}
app.kubernetes.io/name: mlserving
app.kubernetes.io/component: operator
{{- end }}

{{/* Helm's own labels on top (the comparison with deploy/ ignores them). */}}
{{- define "mlserving.labels" -}}
{{ include "mlserving.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{/* <registry>/<repository>:<tag>[@<digest>] of one entry of .Values.images; tag "" = appVersion. */}}
{{- define "mlserving.image" -}}
{{- $image := index .root.Values.images .name -}}
{{- $ref := printf "%s/%s:%s" $image.registry $image.repository ($image.tag | default .root.Chart.AppVersion) -}}
{{- if $image.digest }}{{ $ref = printf "%s@%s" $ref $image.digest }}{{ end -}}
{{- $ref -}}
{{- end }}

{{/* Namespaces the operator watches: the list, or nothing for all namespaces. */}}
{{- define "mlserving.namespaced" -}}
{{- if .Values.operator.watchNamespaces }}true{{ end -}}
{{- end }}

{{/*
Exactly what the operator does in a namespace it watches (operator/kinds.py; a test checks these
rules grant every verb its table lists): watch ModelDeployments (kopf keeps its progress in
annotations, written with patch; no finalizer), write their status, server-side apply / watch /
prune their children and post events. The CRD and Gateway API checks use API discovery, which
every authenticated client may read; kopf's scanning is off, so no access to CRDs or namespaces
is needed.
*/}}
{{- define "mlserving.operatorRules" -}}
- apiGroups: [mlserving.io]
  resources: [modeldeployments]
  verbs: [get, list, watch, patch]
- apiGroups: [mlserving.io]
  resources: [modeldeployments/status]
  verbs: [get, patch, update]
# ownerReferences with blockOwnerDeletion=true need update on the owner's finalizers.
- apiGroups: [mlserving.io]
  resources: [modeldeployments/finalizers]
  verbs: [update]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
# configmaps: also get/list/watch, which the router's Role grants (RBAC forbids granting more
# than one holds).
- apiGroups: [""]
  resources: [services, configmaps, serviceaccounts]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [monitoring.coreos.com]
  resources: [podmonitors, prometheusrules]
  verbs: [get, list, watch, create, patch, delete]
# pods: list only, to find the router pods whose metrics a rollout's analysis reads.
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create]
{{- end }}

{{/* The leader Lease (in the release namespace). */}}
{{- define "mlserving.leaseRules" -}}
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, create, update]
{{- end }}

{{/*
Reading the Secrets spec.security names (auth.secretName, tls.secretName), so that a missing or
incomplete one shows in the status (condition SecretsFound). Only `get`: the operator looks them
up by name and never lists or watches Secrets; it keeps only their key names. The one rule that
lets the operator read Secret values, hence its own (Cluster)Role (docs/security.md).
*/}}
{{- define "mlserving.secretRules" -}}
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
{{- end }}

{{/* A (Cluster)RoleBinding's subject: the operator's ServiceAccount. */}}
{{- define "mlserving.subjects" -}}
- kind: ServiceAccount
  name: {{ include "mlserving.name" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}
