{{/*
Expand the name of the chart.
*/}}
{{- define "etcd-topology.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name.
We truncate at 63 chars because some Kubernetes name fields are limited to this (by the DNS naming spec).
If release name contains chart name it will be used as a full name.
*/}}
{{- define "etcd-topology.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Create chart name and version as used by the chart label.
*/}}
{{- define "etcd-topology.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels
*/}}
{{- define "etcd-topology.labels" -}}
helm.sh/chart: {{ include "etcd-topology.chart" . }}
{{ include "etcd-topology.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels. component=operator keeps the operator's selector apart from the member and proxy
pods the operator makes (component=member|proxy), which carry app.kubernetes.io/name too.
*/}}
{{- define "etcd-topology.selectorLabels" -}}
app.kubernetes.io/name: {{ include "etcd-topology.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
Create the name of the service account to use
*/}}
{{- define "etcd-topology.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "etcd-topology.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The --namespaces flag's value: the watched namespaces separated by commas; empty for every namespace.
*/}}
{{- define "etcd-topology.watchNamespaces" -}}
{{- join "," .Values.watchNamespaces }}
{{- end }}

{{/*
Rules on cluster-scoped kinds, granted by the ClusterRole in both modes: read only, except the one
patch of a member's PersistentVolume.
*/}}
{{- define "etcd-topology.clusterRules" -}}
# Central nodes: how many carry the members' selector, which are cordoned or gone.
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, watch]
# Before it deletes a member's claim, it sets the PersistentVolume's reclaim policy to Retain, so
# that no etcd data is ever destroyed by the operator.
- apiGroups: [""]
  resources: [persistentvolumes]
  verbs: [get, patch]
{{- end }}

{{/*
Rules on namespaced kinds: cluster-wide (ClusterRole) when the operator watches every namespace, else
one Role in each watched namespace.
*/}}
{{- define "etcd-topology.namespacedRules" -}}
# The API it serves: it reads the spec and writes only status.
- apiGroups: [etcdtopology.io]
  resources: [etcdtopologies]
  verbs: [get, list, watch]
- apiGroups: [etcdtopology.io]
  resources: [etcdtopologies/status]
  verbs: [get, update, patch]
# Owner references with blockOwnerDeletion on the objects it makes.
- apiGroups: [etcdtopology.io]
  resources: [etcdtopologies/finalizers]
  verbs: [update]
# The objects it owns (server-side apply: create and patch; delete when a component goes away).
- apiGroups: [apps]
  resources: [statefulsets, daemonsets]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [""]
  resources: [services, serviceaccounts]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, update, patch, delete]
# TLS Secrets of the built-in CA (the CA, member, operator, proxy and client certificates): create
# and renew them, and keep them in a cache (list and watch, with the operator's label selector: every
# reconcile reads them; RBAC cannot restrict a list to a label, see docs/install.md); read the user's
# own TLS Secrets named in spec.tls.secrets by name. Garbage collection deletes them with their topology.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, update, patch]
# Member pods: read them, set the etcdtopology.io/member-healthy readiness gate (status only), and
# replace a lost member (delete). No patch of the pods themselves and no evictions: drains evict.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, delete]
- apiGroups: [""]
  resources: [pods/status]
  verbs: [patch]
# Member volumes are kept when a topology is deleted; deleted only to replace a lost member.
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, list, watch, delete]
# Backups and restores run as one-shot Jobs in this project's image (snapshot take / resolve), so that
# snapshots never stream through the operator; it reads their outcome and deletes a Job stuck on its
# configuration. It never reads the S3 credentials: the Jobs take them from the Secret themselves.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, patch, delete]
# Events for what it did (core/v1 and events.k8s.io/v1, whichever the client writes).
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}

{{/*
The operator image.
*/}}
{{- define "etcd-topology.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
