{{/*
Names, labels and the few decisions several templates share. Kept here so that the mode
switches (cluster-wide or namespaced, bundled or external Postgres) are decided once.
*/}}

{{- define "stepstone.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-stepstone, or the release name alone when it already contains "stepstone". */}}
{{- define "stepstone.fullname" -}}
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

{{- define "stepstone.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "stepstone.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stepstone.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "stepstone.labels" -}}
helm.sh/chart: {{ include "stepstone.chart" . }}
{{ include "stepstone.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: stepstone
{{- end }}

{{- define "stepstone.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "stepstone.testImage" -}}
{{- $tag := .Values.test.image.tag | default .Values.image.tag | default .Chart.AppVersion }}
{{- printf "%s:%s" (.Values.test.image.repository | default .Values.image.repository) $tag }}
{{- end }}

{{- define "stepstone.operatorServiceAccount" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- .Values.operator.serviceAccount.name | default (include "stepstone.fullname" .) }}
{{- else }}
{{- .Values.operator.serviceAccount.name | default "default" }}
{{- end }}
{{- end }}

{{/* The runner ServiceAccount's name, or "" when runner pods use their namespace's default. */}}
{{- define "stepstone.runnerServiceAccount" -}}
{{- if .Values.runner.serviceAccount.create }}
{{- .Values.runner.serviceAccount.name | default (printf "%s-runner" (include "stepstone.fullname" .) | trunc 63 | trimSuffix "-") }}
{{- else }}
{{- .Values.runner.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Namespaced mode: the operator serves only .Values.watchNamespaces. */}}
{{- define "stepstone.namespaced" -}}
{{- if .Values.watchNamespaces }}true{{ end }}
{{- end }}

{{/*
The namespaces where the chart expects WorkflowRuns, as a JSON list: it puts the runner
ServiceAccount (and, bundled, the database Secret) there. Namespaced mode: the watched
namespaces. Cluster-wide mode: the release namespace plus runner.namespaces.
*/}}
{{- define "stepstone.runNamespaces" -}}
{{- if .Values.watchNamespaces }}
{{- .Values.watchNamespaces | uniq | toJson }}
{{- else }}
{{- prepend .Values.runner.namespaces .Release.Namespace | uniq | toJson }}
{{- end }}
{{- end }}

{{/* Where `helm test` runs its hello WorkflowRun: a namespace the operator serves. */}}
{{- define "stepstone.testNamespace" -}}
{{- if and .Values.watchNamespaces (not (has .Release.Namespace .Values.watchNamespaces)) }}
{{- first .Values.watchNamespaces }}
{{- else }}
{{- .Release.Namespace }}
{{- end }}
{{- end }}

{{- define "stepstone.postgresName" -}}
{{- printf "%s-postgresql" (include "stepstone.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The bundled Postgres password: the value if set, else the one already in the database Secret
(upgrades and reinstalls must keep it: the data volume was initialised with it), else a new
random one. Memoised in .Values so that every template of one render agrees.
*/}}
{{- define "stepstone.postgresPassword" -}}
{{- if not .Values.postgresql.auth._resolved }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace .Values.database.secretName }}
{{- $password := .Values.postgresql.auth.password }}
{{- if and (not $password) $existing }}
{{- $password = dig "data" "password" "" $existing | b64dec }}
{{- end }}
{{- $_ := set .Values.postgresql.auth "_resolved" ($password | default (randAlphaNum 32)) }}
{{- end }}
{{- .Values.postgresql.auth._resolved }}
{{- end }}

{{- define "stepstone.bundledDatabaseUrl" -}}
{{- $auth := .Values.postgresql.auth }}
{{- printf "postgresql://%s:%s@%s.%s.svc:5432/%s" $auth.username (include "stepstone.postgresPassword" . | urlquery) (include "stepstone.postgresName" .) .Release.Namespace $auth.database }}
{{- end }}

{{/* The env entry that hands the database URL to the operator, the migration and tests. */}}
{{- define "stepstone.databaseUrlEnv" -}}
- name: STEPSTONE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.secretName }}
      key: {{ .Values.database.secretKey }}
{{- end }}

{{/* The schema migration container (a list item): the hook Job's, and the bundled-mode init container. */}}
{{- define "stepstone.migrateContainer" -}}
- name: migrate
  image: {{ include "stepstone.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: ["python", "-m", "stepstone", "db", "migrate"]
  env:
    {{- include "stepstone.databaseUrlEnv" . | nindent 4 }}
  resources:
    {{- toYaml .Values.migration.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.operator.securityContext | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
{{- end }}

{{/*
Whether to render an object that people may also create by hand (the runner ServiceAccount or
the database Secret in a run namespace): yes, unless it exists and is not this release's, in
which case it is left alone rather than failing the install on Helm's ownership check.
Called with a dict: apiVersion, kind, namespace, name, root.
*/}}
{{- define "stepstone.ownedOrAbsent" -}}
{{- $obj := lookup .apiVersion .kind .namespace .name }}
{{- $annotations := dig "metadata" "annotations" dict $obj }}
{{- if or (not $obj) (and (eq (get $annotations "meta.helm.sh/release-name") .root.Release.Name) (eq (get $annotations "meta.helm.sh/release-namespace") .root.Release.Namespace)) }}true{{ end }}
{{- end }}
