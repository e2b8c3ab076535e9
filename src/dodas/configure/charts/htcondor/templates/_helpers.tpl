{{/* Names: every object is "<fullname>-<part>", fullname being the release name
unless overridden, so release "htcondor" gives htcondor-cm, htcondor-startd. */}}
{{- define "htc.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "htc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "htc.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "htc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* selector labels of one component: call with (list $ "startd") */}}
{{- define "htc.selector" -}}
{{- $top := index . 0 -}}
app.kubernetes.io/name: {{ include "htc.name" $top }}
app.kubernetes.io/instance: {{ $top.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "htc.image" -}}
{{ .repository }}:{{ .tag }}
{{- end -}}

{{- define "htc.trustDomain" -}}
{{- .Values.pool.trustDomain | default (printf "%s.%s" (include "htc.fullname" .) .Release.Namespace) -}}
{{- end -}}

{{- define "htc.collector" -}}
{{ include "htc.fullname" . }}-cm.{{ .Release.Namespace }}.svc:9618
{{- end -}}

{{/* HTCondor's master runs as root and switches to the condor user and to the
jobs' users itself: no privilege escalation, the runtime's default seccomp. */}}
{{- define "htc.podSecurity" -}}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "htc.containerSecurity" -}}
allowPrivilegeEscalation: false
{{- end -}}

{{/* The configuration every role mounts, and the role's own file: call with (list $ "startd") */}}
{{- define "htc.configMounts" -}}
- name: config
  mountPath: /etc/condor/config.d/10-dodas-pool.conf
  subPath: 10-dodas-pool.conf
  readOnly: true
- name: config
  mountPath: /etc/condor/config.d/20-dodas-{{ index . 1 }}.conf
  subPath: 20-dodas-{{ index . 1 }}.conf
  readOnly: true
{{- end -}}
