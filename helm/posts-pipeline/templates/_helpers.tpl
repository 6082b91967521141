{{/* Names, labels and the pieces every pod of the chart shares. */}}

{{- define "posts-pipeline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "posts-pipeline.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "posts-pipeline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "posts-pipeline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "posts-pipeline.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "posts-pipeline.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: posts-pipeline
{{- end }}

{{- define "posts-pipeline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "posts-pipeline.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY: the user's, or the one the chart creates. */}}
{{- define "posts-pipeline.secretName" -}}
{{- if .Values.s3.existingSecret }}
{{- .Values.s3.existingSecret }}
{{- else if .Values.s3.accessKeyId }}
{{- printf "%s-s3" (include "posts-pipeline.fullname" .) }}
{{- end }}
{{- end }}

{{- define "posts-pipeline.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The pipeline configuration (pipeline.yaml layout): chart settings, then .Values.config over them. */}}
{{- define "posts-pipeline.config" -}}
{{- $k := dict
  "image" (include "posts-pipeline.image" .)
  "image-pull-policy" .Values.image.pullPolicy
  "image-pull-secrets" .Values.imagePullSecrets
  "n-workers" .Values.dask.workers
  "adapt" (.Values.dask.adapt | default nil)
  "threads-per-worker" .Values.dask.threadsPerWorker
  "worker-resources" .Values.dask.workerResources
  "worker-node-selector" .Values.dask.workerNodeSelector
  "worker-tolerations" .Values.dask.workerTolerations
  "scheduler-resources" .Values.dask.schedulerResources
  "start-timeout" .Values.dask.startTimeout
  "idle-timeout" .Values.dask.idleTimeout
  "run-as-user" .Values.podSecurityContext.runAsUser
  "read-only-root-filesystem" .Values.securityContext.readOnlyRootFilesystem
  "env-from-secrets" (list (include "posts-pipeline.secretName" .) | compact)
}}
{{- $metrics := dict "pushgateway" (.Values.metrics.pushgateway | default nil) "job" (include "posts-pipeline.fullname" .) }}
{{- $generated := dict "input" (splitList " " .Values.run.input | compact) "cluster" (dict "kind" "kubernetes" "kubernetes" $k)
  "metrics" $metrics }}
{{- $merged := mustMergeOverwrite $generated (deepCopy .Values.config) }}
{{- dict "posts-pipeline" $merged | toYaml }}
{{- end }}

{{/* Environment of pods that use S3: credentials by reference, endpoint and region as plain values. */}}
{{- define "posts-pipeline.s3Env" -}}
{{- with .Values.s3.endpointUrl }}
- name: POSTS_PIPELINE__STORAGE_OPTIONS__ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.s3.region }}
- name: AWS_DEFAULT_REGION
  value: {{ . | quote }}
{{- end }}
{{- end }}

{{- define "posts-pipeline.s3EnvFrom" -}}
{{- with (include "posts-pipeline.secretName" .) }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- end }}

{{/* The driver's pod template, shared by the CronJob and the run-on-install Job. */}}
{{- define "posts-pipeline.driverPod" -}}
metadata:
  labels:
    {{- include "posts-pipeline.labels" . | nindent 4 }}
    app.kubernetes.io/component: driver
  annotations:
    checksum/config: {{ include "posts-pipeline.config" . | sha256sum }}
    {{- with .Values.driver.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "posts-pipeline.serviceAccountName" . }}
  restartPolicy: Never
  enableServiceLinks: false
  terminationGracePeriodSeconds: {{ .Values.run.terminationGracePeriodSeconds }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- range . }}
    - name: {{ . }}
    {{- end }}
  {{- end }}
  containers:
    - name: driver
      image: {{ include "posts-pipeline.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - posts-pipeline
        - run
        - --config
        - /etc/posts-pipeline/pipeline.yaml
        - --output
        - "$(OUTPUT_PREFIX)/$(RUN_NAME)"
        {{- if gt (int .Values.run.backoffLimit) 0 }}
        - --resume
        {{- end }}
        {{- range .Values.run.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      env:
        - name: RUN_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.labels['batch.kubernetes.io/job-name']
        - name: OUTPUT_PREFIX
          value: {{ required "run.outputPrefix is required, e.g. s3://bucket/runs" .Values.run.outputPrefix | trimSuffix "/" | quote }}
        - name: POSTS_PIPELINE_POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: POSTS_PIPELINE_POD_UID
          valueFrom:
            fieldRef:
              fieldPath: metadata.uid
        {{- include "posts-pipeline.s3Env" . | nindent 8 }}
      {{- with (include "posts-pipeline.s3EnvFrom" .) }}
      envFrom:
        {{- . | nindent 8 }}
      {{- end }}
      resources:
        {{- toYaml .Values.driver.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/posts-pipeline
          readOnly: true
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: config
      configMap:
        name: {{ include "posts-pipeline.fullname" . }}
    - name: tmp
      emptyDir:
        sizeLimit: 1Gi
  {{- with .Values.driver.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.driver.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.driver.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{- define "posts-pipeline.jobSpec" -}}
backoffLimit: {{ .Values.run.backoffLimit }}
activeDeadlineSeconds: {{ .Values.run.activeDeadlineSeconds }}
ttlSecondsAfterFinished: {{ .Values.run.ttlSecondsAfterFinished }}
template:
  {{- include "posts-pipeline.driverPod" . | nindent 2 }}
{{- end }}
