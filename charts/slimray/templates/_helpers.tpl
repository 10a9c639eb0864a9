{{/* Names, labels and the pieces every pod shares. */}}
{{- define "slimray.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "slimray.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "slimray.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "slimray.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "slimray.selector" -}}
app.kubernetes.io/name: {{ include "slimray.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: api
{{- end -}}

{{/* An image reference: repository@digest when a digest pins it, else repository:tag.
     Args: dict "repository" "tag" "digest". */}}
{{- define "slimray.imageRef" -}}
{{- if .digest }}{{ .repository }}@{{ .digest }}{{ else }}{{ .repository }}:{{ .tag }}{{ end -}}
{{- end -}}

{{/* The image of the service, the Ray head, CPU worker groups and the test pod. */}}
{{- define "slimray.image" -}}
{{- $v := .Values.image }}
{{- include "slimray.imageRef" (dict "repository" $v.repository "tag" (default .Chart.AppVersion $v.tag) "digest" $v.digest) -}}
{{- end -}}

{{/* A worker group's image: its own `image`, else the chart's, with "-gpu" (the CUDA build) on
     the tag when the group has GPUs (pinned by image.gpuDigest). With image.digest set, a GPU
     group on the derived CUDA image needs image.gpuDigest: no half-pinned release.
     Args: dict "root" $ "group" <group>. */}}
{{- define "slimray.groupImage" -}}
{{- $g := .group }}{{- $v := .root.Values.image }}
{{- if $g.image }}
{{- include "slimray.imageRef" (dict "repository" ($g.image.repository | default $v.repository) "tag" $g.image.tag "digest" $g.image.digest) }}
{{- else if gt (int $g.gpus) 0 }}
{{- if and $v.digest (not $v.gpuDigest) }}
{{- fail (printf "image.gpuDigest: image.digest pins the CPU image, but worker group %q runs the CUDA image %s:%s-gpu by tag; set image.gpuDigest to that image's digest, give the group its own image with a digest, or remove the group" $g.name $v.repository (default .root.Chart.AppVersion $v.tag)) }}
{{- end }}
{{- include "slimray.imageRef" (dict "repository" $v.repository "tag" (printf "%s-gpu" (default .root.Chart.AppVersion $v.tag)) "digest" $v.gpuDigest) }}
{{- else }}{{ include "slimray.image" .root }}
{{- end }}
{{- end -}}

{{- define "slimray.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "slimray.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The service's tokens: auth.existingSecret (a Secret the operator manages: api-token, and
     metrics-token for the ServiceMonitor), else the chart's own Secret holding what authData gives,
     else none: the service then keeps an admin token of its own in its state directory. */}}
{{- define "slimray.ownAuthSecret" -}}
{{- printf "%s-auth" (include "slimray.fullname" .) -}}
{{- end -}}

{{/* The tokens the chart's own Secret holds (base64, as JSON): explicit values, else those the
     Secret already holds (lookup: install/upgrade on a live cluster). Never generated: `helm
     template` finds nothing, so two renders are equal. */}}
{{- define "slimray.authData" -}}
{{- $old := (lookup "v1" "Secret" .Release.Namespace (include "slimray.ownAuthSecret" .)).data | default dict }}
{{- $out := dict }}
{{- with .Values.auth.apiToken | b64enc | default (get $old "api-token") }}{{ $_ := set $out "api-token" . }}{{ end }}
{{- with .Values.auth.metricsToken | b64enc | default (get $old "metrics-token") }}{{ $_ := set $out "metrics-token" . }}{{ end }}
{{- toJson $out -}}
{{- end -}}

{{/* The Secret the service's tokens come from, or empty when none is given or kept. */}}
{{- define "slimray.authSecret" -}}
{{- if .Values.auth.existingSecret -}}{{ .Values.auth.existingSecret }}
{{- else if include "slimray.authData" . | fromJson -}}{{ include "slimray.ownAuthSecret" . }}
{{- end -}}
{{- end -}}

{{/* The Secret holding the admin token (api-token), or empty: SLIMRAY_API_TOKEN unset, the
     service keeps its own in slimray.tokenFile. */}}
{{- define "slimray.apiTokenSecret" -}}
{{- if or .Values.auth.existingSecret (hasKey (include "slimray.authData" . | fromJson) "api-token") -}}
{{- include "slimray.authSecret" . -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the metrics token (metrics-token), or empty. */}}
{{- define "slimray.metricsTokenSecret" -}}
{{- if or .Values.auth.existingSecret (hasKey (include "slimray.authData" . | fromJson) "metrics-token") -}}
{{- include "slimray.authSecret" . -}}
{{- end -}}
{{- end -}}

{{/* The api container's token files, one per Secret key, each named as the variable it stands
     for (SLIMRAY_SECRETS_DIR): the sources of a projected volume, or empty when there is none. */}}
{{- define "slimray.secretSources" -}}
{{- with include "slimray.apiTokenSecret" . }}
- secret: {name: {{ . }}, items: [{key: api-token, path: SLIMRAY_API_TOKEN}]}
{{- end }}
{{- with include "slimray.metricsTokenSecret" . }}
- secret: {name: {{ . }}, optional: true, items: [{key: metrics-token, path: SLIMRAY_METRICS_TOKEN}]}
{{- end }}
{{- with include "slimray.rayTokenSecret" . }}
- secret: {name: {{ . }}, items: [{key: auth_token, path: SLIMRAY_RAY_TOKEN}]}
{{- end }}
{{- end -}}
{{- define "slimray.secretsDir" -}}/var/run/secrets/slimray{{- end -}}

{{/* The service's state directory on the store claim: the job store (jobs.db) and, without
     SLIMRAY_API_TOKEN, the admin token it keeps (`token`, mode 0600; slimray serve). */}}
{{- define "slimray.stateDir" -}}/var/lib/slimray/store{{- end -}}
{{- define "slimray.tokenFile" -}}{{ include "slimray.stateDir" . }}/token{{- end -}}

{{- define "slimray.rayCluster" -}}
{{- printf "%s-ray" (include "slimray.fullname" .) | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/* The chart's own Secret for its RayCluster's token, and the token it holds (base64): ray.cluster.token,
     else what that Secret already holds (lookup, live clusters only), else empty. Never generated. */}}
{{- define "slimray.ownRayTokenSecret" -}}
{{- printf "%s-token" (include "slimray.rayCluster" .) -}}
{{- end -}}
{{- define "slimray.ownRayToken" -}}
{{- if and .Values.ray.cluster.enabled (not .Values.ray.address) (not .Values.ray.tokenSecret) -}}
{{- $old := (lookup "v1" "Secret" .Release.Namespace (include "slimray.ownRayTokenSecret" .)).data | default dict }}
{{- .Values.ray.cluster.token | b64enc | default (get $old "auth_token") -}}
{{- end -}}
{{- end -}}

{{/* The Secret the RayCluster's authOptions name: ray.tokenSecret, else the chart's own when it
     has a token for it, else empty (KubeRay then generates one named after the RayCluster). */}}
{{- define "slimray.rayTokenSecretNamed" -}}
{{- if .Values.ray.tokenSecret -}}{{ .Values.ray.tokenSecret }}
{{- else if include "slimray.ownRayToken" . -}}{{ include "slimray.ownRayTokenSecret" . }}
{{- end -}}
{{- end -}}

{{/* The Secret holding the Ray token (key auth_token) the service reads: with ray.address, that
     cluster's (ray.tokenSecret); else the one the RayCluster names, or KubeRay's own. */}}
{{- define "slimray.rayTokenSecret" -}}
{{- if .Values.ray.address -}}{{ .Values.ray.tokenSecret }}
{{- else if .Values.ray.cluster.enabled -}}{{ include "slimray.rayTokenSecretNamed" . | default (include "slimray.rayCluster" .) }}
{{- end -}}
{{- end -}}

{{/* The pods of the chart's RayCluster, head and workers: the label KubeRay puts on them (it does not
     let a template override it) and the labels their templates carry. */}}
{{- define "slimray.rayPodSelector" -}}
ray.io/cluster: {{ include "slimray.rayCluster" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: ray
{{- end -}}

{{- define "slimray.rayAddress" -}}
{{- if .Values.ray.address -}}{{ .Values.ray.address }}{{- else -}}{{ printf "http://%s-head-svc.%s.svc:8265" (include "slimray.rayCluster" .) .Release.Namespace }}{{- end -}}
{{- end -}}

{{- define "slimray.runsClaim" -}}
{{- default (printf "%s-runs" (include "slimray.fullname" .)) .Values.runs.existingClaim -}}
{{- end -}}

{{/* The restricted Pod Security Standard, for every pod and container of the chart. */}}
{{- define "slimray.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 0
fsGroup: 0
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "slimray.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The service's runs_root: the object store's URI, or the runs volume's mount path. */}}
{{- define "slimray.runsRoot" -}}
{{- if .Values.objectStore.enabled }}{{ .Values.objectStore.runsRoot }}{{ else }}{{ .Values.runs.mountPath }}{{ end -}}
{{- end }}

{{/* True (non-empty) when run directories live on the runs volume. */}}
{{- define "slimray.runsVolume" -}}
{{- if not .Values.objectStore.enabled }}true{{ end -}}
{{- end }}

{{/* The object store's endpoint and credentials (AWS_* variables pyarrow, Ray Train and Ray Data
     read), for the service and every Ray pod; nothing when the store is off. */}}
{{- define "slimray.objectStoreEnv" -}}
{{- $o := .Values.objectStore }}
{{- if $o.enabled }}
{{- with $o.endpoint }}
- {name: AWS_ENDPOINT_URL, value: {{ . | quote }}}
{{- end }}
{{- with $o.region }}
- {name: AWS_REGION, value: {{ . | quote }}}
{{- end }}
{{- with $o.credentialsSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom: {secretKeyRef: {name: {{ . }}, key: {{ $o.accessKeyIdKey }}}}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom: {secretKeyRef: {name: {{ . }}, key: {{ $o.secretAccessKeyKey }}}}
{{- end }}
{{- end }}
{{- end }}

{{/* What the Ray head and worker containers share (each sets its own image). */}}
{{- define "slimray.rayContainerCommon" -}}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext: {{- include "slimray.containerSecurityContext" . | nindent 2 }}
env:
  - {name: TF_CPP_MIN_LOG_LEVEL, value: "2"}
  {{- if eq (include "slimray.keepsWarm" .) "true" }}
  # Ray's preload_python_modules (slimray.runtime.preload.PRELOADED): each raylet reads RAY_<config>
  - {name: RAY_preload_python_modules, value: "tensorflow,keras,slimray.runtime.worker,slimray.runtime.cluster"}
  {{- end }}
  {{- include "slimray.objectStoreEnv" . | nindent 2 }}
volumeMounts:
  {{- if include "slimray.runsVolume" . }}
  - {name: runs, mountPath: {{ .Values.runs.mountPath | quote }}}
  {{- end }}
  - {name: tmp, mountPath: /tmp}
{{- end }}
{{- define "slimray.rayVolumes" -}}
{{- if include "slimray.runsVolume" . }}
- name: runs
  persistentVolumeClaim:
    claimName: {{ include "slimray.runsClaim" . }}
{{- end }}
- name: tmp
  emptyDir: {sizeLimit: {{ .Values.ray.cluster.tmpSizeLimit | quote }}}
{{- end }}

{{/* Ray exports a driver's ray.util.metrics as ray_slimray_* with a `slimray_job` tag: keep
     those, rename them slimray_* and make the tag the `job` label the dashboard and alerts use.
     k8s/podmonitor.yaml carries the same rules. */}}
{{- define "slimray.rayMetricRelabelings" -}}
honorLabels: false
metricRelabelings:
  - sourceLabels: [__name__]
    regex: ray_slimray_(.+)
    targetLabel: __name__
    replacement: slimray_$1
  - sourceLabels: [slimray_job]
    regex: (.+)
    targetLabel: job
    replacement: $1
  - regex: slimray_job
    action: labeldrop
{{- end -}}

{{/* The service's settings file (JSON): .Values.settings with each key in snake_case (the
     Settings field names). One source: nothing here names a setting the values can set. What the
     chart decides itself (paths, addresses) goes in the environment: slimray.decidedEnv. */}}
{{- define "slimray.settingsFile" -}}
{{- $out := dict }}
{{- range $k, $v := .Values.settings }}
{{- if kindIs "map" $v }}
{{- $inner := dict }}
{{- range $ik, $iv := $v }}{{- $_ := set $inner (snakecase $ik) $iv }}{{- end }}
{{- $_ := set $out (snakecase $k) $inner }}
{{- else }}
{{- $_ := set $out (snakecase $k) $v }}
{{- end }}
{{- end }}
{{- toPrettyJson $out }}
{{- end }}

{{/* The settings the chart decides from its own values (never from .Values.settings): the store on
     its claim, the run directories (runs_shared: the runs claim is one ReadWriteMany volume mounted
     on the service and every Ray pod), the Ray job API and this service's own address. */}}
{{- define "slimray.decidedEnv" -}}
- {name: SLIMRAY_DB_PATH, value: {{ include "slimray.stateDir" . }}/jobs.db}
- {name: SLIMRAY_RUNS_ROOT, value: {{ include "slimray.runsRoot" . | quote }}}
- {name: SLIMRAY_RUNS_SHARED, value: {{ include "slimray.runsVolume" . | eq "true" | quote }}}
- {name: SLIMRAY_RAY_ADDRESS, value: {{ include "slimray.rayAddress" . | quote }}}
- {name: SLIMRAY_SERVICE_URL, value: {{ printf "http://%s.%s.svc:%v" (include "slimray.fullname" .) .Release.Namespace .Values.service.port | quote }}}
- {name: SLIMRAY_DRIVER_PYTHON, value: python}
- {name: SLIMRAY_KEEP_WARM, value: {{ include "slimray.keepsWarm" . | quote }}}
{{- end }}

{{/* Whether the service keeps worker processes warm and the Ray pods preload TensorFlow: on the
     chart's own RayCluster only (an existing cluster at ray.address is its operator's to warm). */}}
{{- define "slimray.keepsWarm" -}}
{{- and .Values.ray.warm .Values.ray.cluster.enabled (not .Values.ray.address) -}}
{{- end }}
