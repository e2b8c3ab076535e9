#!/usr/bin/env bash
# The reference for bench/bench_up.py: start by hand what templates/spark-jupyter.yaml
# deploys (a Spark master, 2 workers, JupyterLab with a token, each on its own
# loopback address; the cluster authenticated with a secret of its own, as dodas
# makes it), then wait for the same readiness that `dodas up` waits for:
# every worker ALIVE at the master and JupyterLab answering with the token.
# Usage: manual_spark.sh WORKDIR PYTHON   (stop with: manual_spark.sh WORKDIR PYTHON stop)
set -euo pipefail
W=$1; PY=$2
SPARK_HOME=$("$PY" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
export SPARK_HOME SPARK_DAEMON_MEMORY=256m
M=127.78.0.2; W1=127.78.0.3; W2=127.78.0.4
if [ "${3:-}" = stop ]; then
  for f in "$W"/*.pid; do [ -f "$f" ] && kill -- -"$(cat "$f")" 2>/dev/null || true; done
  exit 0
fi
mkdir -p "$W/conf"
umask 077
printf 'spark.authenticate true\nspark.authenticate.secret %s\nspark.master.rest.enabled false\nspark.ui.killEnabled false\n' \
  "$("$PY" -c 'import secrets; print(secrets.token_urlsafe(32))')" > "$W/conf/spark-defaults.conf"
export SPARK_CONF_DIR="$W/conf"
start() { # name, address, command...
  local name=$1 addr=$2; shift 2
  SPARK_LOCAL_IP=$addr setsid "$@" >"$W/$name.log" 2>&1 < /dev/null &
  echo $! > "$W/$name.pid"
}
start master $M "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.master.Master --host $M --port 7077 --webui-port 8080
until curl -sf "http://$M:8080/json/" >/dev/null; do sleep 0.2; done
start worker1 $W1 "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.worker.Worker --host $W1 --cores 1 --memory 1024m --webui-port 8081 --work-dir "$W/w1" spark://$M:7077
start worker2 $W2 "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.worker.Worker --host $W2 --cores 1 --memory 1024m --webui-port 8081 --work-dir "$W/w2" spark://$M:7077
TOKEN=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(32))')
JUPYTER_TOKEN=$TOKEN start jupyter $M "$PY" -m jupyterlab --no-browser --allow-root --ip=$M --port=8888 --ServerApp.root_dir="$W"
until [ "$(curl -sf "http://$M:8080/json/" | grep -c "\"state\" : \"ALIVE\"")" -ge 2 ]; do sleep 0.2; done
until curl -sf -H "Authorization: token $TOKEN" "http://$M:8888/api/status" >/dev/null; do sleep 0.2; done
