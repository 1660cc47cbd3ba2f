{{/*
Chart name, truncated to the 63 characters a DNS label allows.
*/}}
{{- define "platform.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name prefix. Components append "-mlflow", "-feature-server", ..., so it is kept to 40
characters (CronJob names may not exceed 52).
*/}}
{{- define "platform.fullname" -}}
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

{{- define "platform.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels of one component. Call with (dict "ctx" $ "component" "mlflow").
*/}}
{{- define "platform.selectorLabels" -}}
app.kubernetes.io/name: {{ include "platform.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Labels on every object of one component. Call with (dict "ctx" $ "component" "mlflow").
*/}}
{{- define "platform.labels" -}}
helm.sh/chart: {{ include "platform.chart" .ctx }}
{{ include "platform.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: modelops
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end }}

{{- define "platform.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "platform.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference: repository@digest when a digest is given, else repository:tag (tag defaults to
the chart's appVersion).
*/}}
{{- define "platform.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}
{{- end }}

{{- define "platform.mlflowName" -}}
{{- include "platform.fullname" . }}-mlflow
{{- end }}

{{/*
Tracking URI the jobs use: this release's server, or mlflowTrackingUri.
*/}}
{{- define "platform.mlflowTrackingUri" -}}
{{- if .Values.mlflow.enabled }}
{{- printf "http://%s.%s.svc:%v" (include "platform.mlflowName" .) .Release.Namespace .Values.mlflow.port }}
{{- else }}
{{- required "mlflowTrackingUri is required when mlflow.enabled is false" .Values.mlflowTrackingUri }}
{{- end }}
{{- end }}

{{/*
An env var from an existing Secret. Call with (dict "name" "VAR" "ref" .Values.secrets.x).
*/}}
{{- define "platform.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .ref.secretName }}
      key: {{ .ref.secretKey }}
{{- end }}

{{/*
Pod spec fields every platform pod shares.
*/}}
{{- define "platform.podCommon" -}}
serviceAccountName: {{ include "platform.serviceAccountName" . }}
automountServiceAccountToken: false
enableServiceLinks: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Container fields every platform container shares (image, security, /tmp as HOME).
*/}}
{{- define "platform.containerCommon" -}}
image: {{ include "platform.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
{{- end }}

{{/*
Environment of the modelops CLI jobs: the production profile, every connection from a Secret.
*/}}
{{- define "platform.jobEnv" -}}
- name: MODELOPS_PROFILE
  value: {{ .Values.profile | quote }}
- name: MODELOPS_ROOT
  value: {{ .Values.workdir | quote }}
- name: MODELOPS_STATE_DIR
  value: /tmp/modelops
- name: MODELOPS_MLFLOW_TRACKING_URI
  value: {{ include "platform.mlflowTrackingUri" . | quote }}
{{ include "platform.secretEnv" (dict "name" "MODELOPS_DATABASE_URL" "ref" .Values.secrets.platformDatabase) }}
{{ include "platform.secretEnv" (dict "name" "MODELOPS_FEAST_REGISTRY_URL" "ref" .Values.secrets.feastRegistry) }}
{{ include "platform.secretEnv" (dict "name" "MODELOPS_REDIS_CONNECTION" "ref" .Values.secrets.redis) }}
{{ include "platform.secretEnv" (dict "name" "MODELOPS_LEDGER_KEY" "ref" .Values.secrets.ledgerKey) }}
{{- if eq .Values.profile "cluster" }}
- name: MODELOPS_SPARK_MASTER
  value: {{ .Values.spark.master | quote }}
- name: MODELOPS_SPARK_CONF
  value: {{ toJson .Values.spark.conf | quote }}
{{- with .Values.spark.outputUri }}
- name: MODELOPS_SPARK_OUTPUT_URI
  value: {{ . | quote }}
{{- end }}
{{- with .Values.s3.endpointUrl }}
- name: MODELOPS_S3_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{ include "platform.s3Env" . }}
- name: HOME
  value: /tmp
{{ include "platform.telemetryEnv" . }}
{{- end }}

{{/*
S3 access of the MLflow server and the jobs: the endpoint and region as values, the keys from
the existing Secret `s3.existingSecret` (none: workload identity). Renders nothing when unset.
*/}}
{{- define "platform.s3Env" -}}
{{- with .Values.s3.endpointUrl }}
- name: MLFLOW_S3_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.s3.region }}
- name: AWS_DEFAULT_REGION
  value: {{ . | quote }}
{{- end }}
{{- with .Values.s3.existingSecret }}
{{ include "platform.secretEnv" (dict "name" "AWS_ACCESS_KEY_ID" "ref" (dict "secretName" . "secretKey" $.Values.s3.accessKeyIdKey)) }}
{{ include "platform.secretEnv" (dict "name" "AWS_SECRET_ACCESS_KEY" "ref" (dict "secretName" . "secretKey" $.Values.s3.secretAccessKeyKey)) }}
{{- end }}
{{- end }}

{{/*
The /tmp scratch volume.
*/}}
{{- define "platform.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end }}

{{/*
A CronJob running one modelops command. Call with
(dict "ctx" $ "name" "..." "component" "..." "schedule" "..." "args" (list ...)
      "deadline" N "resources" {...} "labels" {...} "volumes" "yaml" "mounts" "yaml").
*/}}
{{- define "platform.cronJob" -}}
{{- $ := .ctx -}}
apiVersion: batch/v1
kind: CronJob
metadata:
  name: {{ .name }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "platform.labels" (dict "ctx" $ "component" .component) | nindent 4 }}
    {{- with .labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  schedule: {{ .schedule | quote }}
  timeZone: {{ $.Values.jobs.timeZone }}
  # A run never overlaps the previous one.
  concurrencyPolicy: Forbid
  startingDeadlineSeconds: {{ $.Values.jobs.startingDeadlineSeconds }}
  successfulJobsHistoryLimit: {{ $.Values.jobs.successfulJobsHistoryLimit }}
  failedJobsHistoryLimit: {{ $.Values.jobs.failedJobsHistoryLimit }}
  jobTemplate:
    metadata:
      labels:
        {{- include "platform.labels" (dict "ctx" $ "component" .component) | nindent 8 }}
        {{- with .labels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      backoffLimit: {{ $.Values.jobs.backoffLimit }}
      activeDeadlineSeconds: {{ .deadline }}
      ttlSecondsAfterFinished: {{ $.Values.jobs.ttlSecondsAfterFinished }}
      template:
        metadata:
          labels:
            {{- include "platform.labels" (dict "ctx" $ "component" .component) | nindent 12 }}
            {{- with .labels }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
            {{- with $.Values.podLabels }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- with $.Values.podAnnotations }}
          annotations:
            {{- toYaml . | nindent 12 }}
          {{- end }}
        spec:
          restartPolicy: Never
          {{- include "platform.podCommon" $ | nindent 10 }}
          containers:
            - name: modelops
              {{- include "platform.containerCommon" $ | nindent 14 }}
              command: [modelops]
              args:
                {{- toYaml .args | nindent 16 }}
              workingDir: /tmp
              env:
                {{- include "platform.jobEnv" $ | nindent 16 }}
              resources:
                {{- toYaml .resources | nindent 16 }}
              volumeMounts:
                - name: tmp
                  mountPath: /tmp
                {{- with .mounts }}
                {{- . | nindent 16 }}
                {{- end }}
          volumes:
            {{- include "platform.tmpVolume" $ | nindent 12 }}
            {{- with .volumes }}
            {{- . | nindent 12 }}
            {{- end }}
{{- end }}

{{/*
A NetworkPolicy for one component. Call with (dict "ctx" $ "component" "mlflow" "port" 5000)
(no port: no ingress at all), optionally "extraSources" (a list of NetworkPolicyPeers allowed in
besides networkPolicy.ingress) and "extraEgress" (a YAML list of egress rules).
*/}}
{{- define "platform.networkPolicy" -}}
{{- $ := .ctx -}}
{{- $np := $.Values.networkPolicy -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "platform.fullname" $ }}-{{ .component }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "platform.labels" (dict "ctx" $ "component" .component) | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "platform.selectorLabels" (dict "ctx" $ "component" .component) | nindent 6 }}
  policyTypes:
    - Ingress
    - Egress
  {{- $sources := list }}
  {{- range $np.ingress.podSelectors }}
  {{- $sources = append $sources (dict "podSelector" .) }}
  {{- end }}
  {{- range $np.ingress.namespaceSelectors }}
  {{- $sources = append $sources (dict "namespaceSelector" .) }}
  {{- end }}
  {{- range .extraSources }}
  {{- $sources = append $sources . }}
  {{- end }}
  {{- if and .port $sources }}
  ingress:
    - from:
        {{- toYaml $sources | nindent 8 }}
      ports:
        - port: {{ .port }}
          protocol: TCP
  {{- else }}
  ingress: []
  {{- end }}
  egress:
    - to:
        - namespaceSelector:
            {{- toYaml $np.egress.dns.namespaceSelector | nindent 12 }}
          podSelector:
            {{- toYaml $np.egress.dns.podSelector | nindent 12 }}
      ports:
        - port: 53
          protocol: UDP
        - port: 53
          protocol: TCP
    {{- range $np.egress.destinations }}
    - to:
        - ipBlock:
            cidr: {{ .cidr }}
            {{- with .except }}
            except:
              {{- toYaml . | nindent 14 }}
            {{- end }}
      ports:
        {{- range .ports }}
        - port: {{ . }}
          protocol: TCP
        {{- end }}
    {{- end }}
    {{- with .extraEgress }}
    {{- . | nindent 4 }}
    {{- end }}
{{- end }}

{{/*
Usage reporting of the libraries in the image (MLflow, Evidently, BentoML): off unless
telemetry.enabled. Each value is the one its library reads; the opt-in values are explicit
because modelops turns reporting off at start-up unless told otherwise (docs/configuration.md).
*/}}
{{- define "platform.telemetryEnv" -}}
- name: MLFLOW_DISABLE_TELEMETRY
  value: {{ ternary "false" "true" .Values.telemetry.enabled | quote }}
- name: DO_NOT_TRACK
  value: {{ ternary "0" "1" .Values.telemetry.enabled | quote }}
- name: BENTOML_DO_NOT_TRACK
  value: {{ ternary "false" "true" .Values.telemetry.enabled | quote }}
{{- end }}
