{{/*
Chart name, truncated to the 63 characters a DNS label allows.
*/}}
{{- define "model-service.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: <release>-<chart name>, or the release name when it already contains the chart name.
*/}}
{{- define "model-service.fullname" -}}
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
chart label: name-version.
*/}}
{{- define "model-service.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
A value made safe for a label: at most 63 characters, starting and ending alphanumeric.
*/}}
{{- define "model-service.labelValue" -}}
{{- . | toString | trunc 63 | trimSuffix "-" | trimSuffix "_" | trimSuffix "." }}
{{- end }}

{{/*
Selector labels: stable for the life of the release (a Deployment's selector is immutable), so
the model version is deliberately not among them.
*/}}
{{- define "model-service.selectorLabels" -}}
app.kubernetes.io/name: {{ include "model-service.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "model-service.labels" -}}
helm.sh/chart: {{ include "model-service.chart" . }}
{{ include "model-service.selectorLabels" . }}
app.kubernetes.io/version: {{ include "model-service.labelValue" .Values.image.tag | quote }}
app.kubernetes.io/component: prediction-service
app.kubernetes.io/part-of: modelops
app.kubernetes.io/managed-by: {{ .Release.Service }}
modelops.io/project: {{ include "model-service.labelValue" .Values.project | quote }}
modelops.io/model-version: {{ include "model-service.labelValue" .Values.modelVersion | quote }}
modelops.io/environment: {{ include "model-service.labelValue" .Values.environment | quote }}
{{- end }}

{{/*
ServiceAccount name.
*/}}
{{- define "model-service.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "model-service.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference: repository@digest when a digest is given, else repository:tag.
*/}}
{{- define "model-service.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (toString .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Where the ConfigMap's feature_store.yaml is mounted.
*/}}
{{- define "model-service.featureRepoDir" -}}
/etc/modelops/feature_repo
{{- end }}

{{/*
Usage reporting of the libraries in the image (MLflow, Evidently, BentoML): off unless
telemetry.enabled. Each value is the one its library reads; the opt-in values are explicit
because modelops turns reporting off at start-up unless told otherwise (docs/configuration.md).
*/}}
{{- define "model-service.telemetryEnv" -}}
- name: MLFLOW_DISABLE_TELEMETRY
  value: {{ ternary "false" "true" .Values.telemetry.enabled | quote }}
- name: DO_NOT_TRACK
  value: {{ ternary "0" "1" .Values.telemetry.enabled | quote }}
- name: BENTOML_DO_NOT_TRACK
  value: {{ ternary "false" "true" .Values.telemetry.enabled | quote }}
{{- end }}

{{/*
MODELOPS_SERVING_* tuning from .Values.serving (docs/serving.md); unset keys are left out, so the
service keeps its defaults. Whole numbers are written without an exponent (YAML numbers reach
templates as float64).
*/}}
{{- define "model-service.servingEnv" -}}
{{- $names := dict "workers" "WORKERS" "threads" "THREADS" "accessLog" "ACCESS_LOG" "tracePredictions" "TRACE_PREDICTIONS" "readyCacheSeconds" "READY_CACHE_SECONDS" "logFlushRows" "LOG_FLUSH_ROWS" "logFlushSeconds" "LOG_FLUSH_SECONDS" "logQueue" "LOG_QUEUE" "predictionLog" "PREDICTION_LOG" }}
{{- range $key := keys $names | sortAlpha }}
{{- $value := index ($.Values.serving | default dict) $key }}
{{- if not (kindIs "invalid" $value) }}
{{- $text := toString $value }}
{{- if and (kindIs "float64" $value) (eq (float64 (int64 $value)) $value) }}
{{- $text = toString (int64 $value) }}
{{- end }}
- name: MODELOPS_SERVING_{{ index $names $key }}
  value: {{ $text | quote }}
{{- end }}
{{- end }}
{{- end }}
