{{/* Names. Component objects are "<fullname>-<component>"; the full name is cut to 40 characters so that names
of StatefulSet pods and their controller-revision-hash labels stay within Kubernetes' 63-character limit. */}}
{{- define "coffer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "coffer.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "<fullname>-<component>"; call with (dict "ctx" $ "component" "blobnode"). */}}
{{- define "coffer.componentName" -}}
{{- printf "%s-%s" (include "coffer.fullname" .ctx) .component }}
{{- end }}

{{- define "coffer.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "coffer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: coffer
{{- end }}

{{/* Call with (dict "ctx" $ "component" "gateway"). */}}
{{- define "coffer.componentLabels" -}}
{{ include "coffer.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Immutable in StatefulSets and Deployments: never add to these. */}}
{{- define "coffer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "coffer.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "coffer.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "coffer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "coffer.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "coffer.secretName" -}}
{{- default (printf "%s-root" (include "coffer.fullname" .)) .Values.rootCredentials.existingSecret }}
{{- end }}

{{/* Whether the metadata service runs as a Raft group (metadata.replicas > 1). */}}
{{- define "coffer.metadataRaft" -}}
{{- if gt (int .Values.metadata.replicas) 1 }}true{{ end }}
{{- end }}

{{/* The metadata replicas' URLs, comma-separated: each StatefulSet pod's stable name through the headless
Service, http://<name>-<i>.<name>.<namespace>.svc:9100. The --peers list of every replica of a Raft group; each
replica's --advertise must be exactly its own entry. */}}
{{- define "coffer.metadataPeers" -}}
{{- $name := include "coffer.componentName" (dict "ctx" . "component" "metadata") }}
{{- $urls := list }}
{{- range $i := until (int .Values.metadata.replicas) }}
{{- $urls = append $urls (printf "http://%s-%d.%s.%s.svc:9100" $name $i $name $.Release.Namespace) }}
{{- end }}
{{- join "," $urls }}
{{- end }}

{{/* gRPC URL(s) of the metadata service for its clients (--metadata). One replica: its headless Service, which
resolves to the one metadata pod. A Raft group: every replica's URL, comma-separated; clients find the leader
themselves and follow it when it changes. */}}
{{- define "coffer.metadataUrl" -}}
{{- if include "coffer.metadataRaft" . }}
{{- include "coffer.metadataPeers" . }}
{{- else }}
{{- printf "http://%s.%s.svc:9100" (include "coffer.componentName" (dict "ctx" . "component" "metadata")) .Release.Namespace }}
{{- end }}
{{- end }}

{{/* The erasure-coding geometry as JSON {"k": K, "m": M}; fails on anything but "K+M". */}}
{{- define "coffer.ec" -}}
{{- $ec := toString .Values.ec }}
{{- if not (regexMatch "^[1-9][0-9]*\\+[0-9]+$" $ec) }}
{{- fail (printf "ec must be K+M, e.g. \"4+2\"; got %q" $ec) }}
{{- end }}
{{- $parts := splitList "+" $ec }}
{{- dict "k" (atoi (index $parts 0)) "m" (atoi (index $parts 1)) | toJson }}
{{- end }}

{{/* Refuses values that would deploy a cluster unable to store a single object. */}}
{{- define "coffer.validate" -}}
{{- $ec := include "coffer.ec" . | fromJson }}
{{- $k := int $ec.k }}
{{- $m := int $ec.m }}
{{- $disks := mul (int .Values.blobnode.replicas) (int .Values.blobnode.disksPerNode) }}
{{- if lt $disks (add $k $m) }}
{{- fail (printf "ec %d+%d needs at least %d blobnode disks; blobnode.replicas x blobnode.disksPerNode is %d" $k $m (add $k $m) $disks) }}
{{- end }}
{{- with .Values.writeQuorum }}
{{- $q := int . }}
{{- $min := ternary $k (add $k 1) (eq $m 0) }}
{{- if or (lt $q $min) (gt $q (add $k $m)) }}
{{- fail (printf "writeQuorum must be between %d and %d for ec %d+%d; got %d" $min (add $k $m) $k $m $q) }}
{{- end }}
{{- end }}
{{- if not (has .Values.blobnode.antiAffinity (list "soft" "hard")) }}
{{- fail (printf "blobnode.antiAffinity must be soft or hard; got %q" (toString .Values.blobnode.antiAffinity)) }}
{{- end }}
{{- $replicas := int .Values.metadata.replicas }}
{{- if eq (mod $replicas 2) 0 }}
{{- fail (printf "metadata.replicas must be odd (1, 3 or 5): a Raft group of %d survives no more losses than one of %d; got %d" $replicas (sub $replicas 1) $replicas) }}
{{- end }}
{{- /* The initial replicas form their group once, from their first --peers list; later lists are ignored. A
changed count would start pods with empty databases that propose a membership of their own (or turn a lone
metadata service, which has no Raft log, into a group that lacks its data), and podManagementPolicy cannot change
on a StatefulSet anyway. lookup finds nothing without a cluster (helm template): this guards real upgrades. */}}
{{- $metadataName := include "coffer.componentName" (dict "ctx" . "component" "metadata") }}
{{- $sts := lookup "apps/v1" "StatefulSet" .Release.Namespace $metadataName }}
{{- if $sts }}
{{- $installed := int (dig "spec" "replicas" 1 $sts) }}
{{- if ne $installed $replicas }}
{{- fail (printf "metadata.replicas is fixed at install time: StatefulSet %s has %d replica(s), the values ask for %d. Keep the installed count; a Raft group changes its members with `coffer metadata --join` and `coffer admin meta remove` (README.md, \"Replicated metadata (Raft)\")" $metadataName $installed $replicas) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Environment shared by every role. */}}
{{- define "coffer.commonEnv" -}}
- name: RUST_LOG
  value: {{ .ctx.Values.logLevel | quote }}
- name: COFFER_LOG_FORMAT
  value: {{ .ctx.Values.logFormat | quote }}
- name: COFFER_METRICS_ADDRESS
  value: {{ printf "0.0.0.0:%d" (int .ctx.Values.metrics.port) | quote }}
{{- with .ctx.Values.tracing.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: grpc
{{- end }}
- name: OTEL_SERVICE_NAME
  value: {{ printf "coffer-%s" .component | quote }}
{{- end }}

{{/* Pod-level settings shared by every role; call with (dict "ctx" $ "values" .Values.<component>). */}}
{{- define "coffer.podSpecCommon" -}}
serviceAccountName: {{ include "coffer.serviceAccountName" .ctx }}
# Coffer never talks to the Kubernetes API.
automountServiceAccountToken: false
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .ctx.Values.podSecurityContext | nindent 2 }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
