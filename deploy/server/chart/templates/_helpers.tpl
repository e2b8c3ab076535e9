{{/* Names: every object is "<fullname>" or "<fullname>-<part>", fullname being the
release name unless overridden. */}}
{{- define "ds.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "ds.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ds.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "ds.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* selector labels of one component: call with (list $ "server") */}}
{{- define "ds.selector" -}}
{{- $top := index . 0 -}}
app.kubernetes.io/name: {{ include "ds.name" $top }}
app.kubernetes.io/instance: {{ $top.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "ds.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}

{{/* The image's user dodas (uid 10001). */}}
{{- define "ds.podSecurity" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "ds.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* The Secret and key holding DODAS_DB_URL: (list name key) */}}
{{- define "ds.dbSecretName" -}}
{{- if .Values.postgresql.bundled.enabled -}}
{{ include "ds.fullname" . }}-postgresql
{{- else if .Values.postgresql.external.existingSecret -}}
{{ .Values.postgresql.external.existingSecret }}
{{- else -}}
{{ include "ds.fullname" . }}-db
{{- end -}}
{{- end -}}

{{- define "ds.dbSecretKey" -}}
{{- if and (not .Values.postgresql.bundled.enabled) .Values.postgresql.external.existingSecret -}}
{{ .Values.postgresql.external.existingSecretKey }}
{{- else -}}
url
{{- end -}}
{{- end -}}

{{- define "ds.providersSecret" -}}
{{- default (printf "%s-providers" (include "ds.fullname" .)) .Values.providers.existingSecret -}}
{{- end -}}

{{/* What the server and the workers share: environment, volumes and their mounts.
$DODAS_HOME is an emptyDir (cache, scratch); its config/ is server.yaml, config.yaml
and the providers' Secret, read-only; its data/ is the shared volume. */}}
{{- define "ds.env" -}}
- name: DODAS_HOME
  value: /var/lib/dodas
- name: HOME
  value: /var/lib/dodas
- name: TMPDIR
  value: /tmp
- name: DODAS_DB_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "ds.dbSecretName" . }}
      key: {{ include "ds.dbSecretKey" . }}
{{- with .Values.env }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "ds.mounts" -}}
- {name: home, mountPath: /var/lib/dodas}
- {name: config, mountPath: /var/lib/dodas/config, readOnly: true}
- {name: data, mountPath: /var/lib/dodas/data}
- {name: tmp, mountPath: /tmp}
{{- end -}}

{{- define "ds.volumes" -}}
- name: home
  emptyDir: {}
- name: tmp
  emptyDir: {}
- name: config
  projected:
    defaultMode: 0440
    sources:
      - configMap:
          name: {{ include "ds.fullname" . }}-config
      - secret:
          name: {{ include "ds.providersSecret" . }}
- name: data
  {{- if .Values.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ default (printf "%s-data" (include "ds.fullname" .)) .Values.persistence.existingClaim }}
  {{- else }}
  emptyDir: {}
  {{- end }}
{{- end -}}

{{- define "ds.scheduling" -}}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
