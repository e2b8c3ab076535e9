{{/* Names: every object is "<fullname>-<part>", fullname being the release name
unless overridden, so release "spark" gives spark-master, spark-ui, spark-jupyter. */}}
{{- define "sj.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "sj.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sj.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "sj.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* selector labels of one component: call with (list $ "master") */}}
{{- define "sj.selector" -}}
{{- $top := index . 0 -}}
app.kubernetes.io/name: {{ include "sj.name" $top }}
app.kubernetes.io/instance: {{ $top.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "sj.image" -}}
{{ .repository }}:{{ .tag }}
{{- end -}}

{{- define "sj.masterUrl" -}}
spark://{{ include "sj.fullname" . }}-master:7077
{{- end -}}

{{/* The Spark image runs as user spark (uid 185) and needs nothing more. */}}
{{- define "sj.podSecurity" -}}
runAsNonRoot: true
runAsUser: 185
runAsGroup: 185
fsGroup: 185
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "sj.containerSecurity" -}}
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
{{- end -}}
