{{/* Names: every object is "<fullname>" or "<fullname>-<part>", fullname being the
release name unless overridden, so release "cache" gives the Service cache, the
StatefulSet cache-server (pods cache-server-0, -1 ...), the ConfigMap cache-config. */}}
{{- define "xc.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "xc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "xc.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "xc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* selector labels of one component: call with (list $ "server") */}}
{{- define "xc.selector" -}}
{{- $top := index . 0 -}}
app.kubernetes.io/name: {{ include "xc.name" $top }}
app.kubernetes.io/instance: {{ $top.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "xc.image" -}}
{{ .repository }}:{{ .tag }}
{{- end -}}

{{/* A redirector of the chart's own runs in front of the servers. */}}
{{- define "xc.redirector" -}}
{{- if or .Values.redirector.enabled .Values.redirector.externalHost }}true{{ end -}}
{{- end -}}

{{/* The host the servers' cmsd subscribes to: the chart's redirector, another one, or none. */}}
{{- define "xc.manager" -}}
{{- if include "xc.redirector" . -}}
{{ include "xc.fullname" . }}-redirector
{{- else -}}
{{ .Values.redirector.subscribeTo }}
{{- end -}}
{{- end -}}

{{/* xrootd refuses to run as root: the configured non-root uid, and nothing more. */}}
{{- define "xc.podSecurity" -}}
runAsNonRoot: true
runAsUser: {{ .Values.runAsUser }}
runAsGroup: {{ .Values.runAsGroup }}
fsGroup: {{ .Values.runAsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "xc.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* The purge: `pfc.diskusage LOW HIGH files BASELINE NOMINAL MAX`. The cache's own
files are purged, least recently used first, from highWatermark of the volume's
size (MAX) down to lowWatermark of it (NOMINAL), in MiB, so that a volume larger
than asked, or a provisioner that does not enforce sizes, changes nothing; when
the disk itself passes 95% (other files included) down to half of that
(BASELINE). As dodas's XCache role on VMs (dodas.configure.xrootd). */}}
{{- define "xc.diskusage" -}}
{{- $c := .Values.cache -}}
{{- if ge (float64 $c.lowWatermark) (float64 $c.highWatermark) -}}
{{- fail (printf "cache.lowWatermark (%v) must be below cache.highWatermark (%v)" $c.lowWatermark $c.highWatermark) -}}
{{- end -}}
{{- $nominal := mulf $c.lowWatermark $c.sizeGi 1024 | floor | int -}}
0.90 0.95 files {{ div $nominal 2 }}m {{ $nominal }}m {{ mulf $c.highWatermark $c.sizeGi 1024 | floor | int }}m purgeinterval 60
{{- end -}}
