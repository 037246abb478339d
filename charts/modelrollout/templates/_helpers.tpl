{{/* The release's full name, at most 63 characters. */}}
{{- define "modelrollout.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "modelrollout.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "modelrollout.labels" -}}
{{ include "modelrollout.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "modelrollout.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "modelrollout.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The permissions the operator needs, each for a reason (docs/install.md lists them):
- modelrollouts: it watches them (get, list, watch) and kopf removes the finalizer older
  versions added (patch); status is written by the ticker (patch on modelrollouts/status).
- deployments: one per revision, created, updated and scaled by patch (create, patch), watched
  for availability and for changes made by others (list, watch), removed after scaleDownDelay
  (delete).
- services: the stable and canary Services, by server-side apply (get, create, patch), watched
  (list, watch).
- httproutes: the route's weights are watched and written (get, list, watch, create, update).
- configmaps: drift references (get). secrets: Prometheus credentials (get).
- events: every decision is posted as an Event (create).
- jobs: a retraining's Job, created by its name and read for its outcome (create, get); pods:
  the revisions' pods are watched for crashes, restarts and readiness lost between ticks, and
  listed for why a canary's pods are not ready and a retraining Job's termination message
  (list, watch).
- customresourcedefinitions: kopf lists and watches CRDs to find the ModelRollout resource and
  notice it being installed or removed (list, watch; cluster-scoped, read-only, so a ClusterRole
  even in namespaced mode).
*/}}
{{- define "modelrollout.rules" -}}
- apiGroups: [modelrollout.io]
  resources: [modelrollouts]
  verbs: [get, list, watch, patch]
- apiGroups: [modelrollout.io]
  resources: [modelrollouts/status]
  verbs: [patch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
# delete: an A/B/n phase's arm Services and a shadow step's comparator Service, once over
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, list, watch, create, update]
# a shadow step reads its parent Gateways' classes for the mirror features they implement
- apiGroups: [gateway.networking.k8s.io]
  resources: [gateways]
  verbs: [get]
# on Traefik, a shadow step mirrors through a TraefikService of type mirroring
- apiGroups: [traefik.io]
  resources: [traefikservices]
  verbs: [get, create, update]
- apiGroups: [""]
  resources: [configmaps, secrets]
  verbs: [get]
# the revisions' pods, watched for crashes and restarts between ticks; listed when a canary
# misses its progressDeadline (why its pods are not ready) and for a retraining Job's
# termination message
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, create]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}


{{- define "modelrollout.crdRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
# cluster-scoped: a shadow step reads which mirror features a GatewayClass lists
- apiGroups: [gateway.networking.k8s.io]
  resources: [gatewayclasses]
  verbs: [get]
{{- end -}}
