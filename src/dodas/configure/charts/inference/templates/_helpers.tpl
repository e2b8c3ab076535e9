{{/* Names: every object is "<fullname>" or "<fullname>-<part>", fullname being the
release name unless overridden, so release "tfaas" gives the Service and the
Deployment tfaas, the Secret tfaas-token, the claim tfaas-models. */}}
{{- define "inf.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "inf.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "inf.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "inf.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "inf.selector" -}}
app.kubernetes.io/name: {{ include "inf.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end -}}

{{- define "inf.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}

{{- define "inf.claim" -}}
{{- default (printf "%s-models" (include "inf.fullname" .)) .Values.persistence.existingClaim -}}
{{- end -}}

{{/* maxUpload in MiB, as --max-upload-mb takes it: a number is MiB already; a
TOSCA size ("512 MiB", "1 GB", case-insensitive units) is converted. */}}
{{- define "inf.maxUploadMb" -}}
{{- $v := .Values.maxUpload -}}
{{- if kindIs "string" $v -}}
{{- $s := lower (nospace $v) -}}
{{- $num := regexFind "^[0-9]+(\\.[0-9]+)?" $s -}}
{{- $unit := default "mib" (trimPrefix $num $s) -}}
{{- $factors := dict "b" 1 "kb" 1000 "kib" 1024 "mb" 1000000 "mib" 1048576 "gb" 1000000000 "gib" 1073741824 "tb" 1000000000000 "tib" 1099511627776 -}}
{{- if not (hasKey $factors $unit) -}}
{{- fail (printf "maxUpload (%s): unknown unit %s" $v $unit) -}}
{{- end -}}
{{- divf (mulf $num (get $factors $unit)) 1048576 -}}
{{- else -}}
{{- $v -}}
{{- end -}}
{{- end -}}

{{/* Non-root, and nothing more than it needs. */}}
{{- define "inf.podSecurity" -}}
runAsNonRoot: true
runAsUser: {{ .Values.runAsUser }}
runAsGroup: {{ .Values.runAsGroup }}
fsGroup: {{ .Values.runAsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "inf.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}
