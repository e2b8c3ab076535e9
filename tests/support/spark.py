"""What the Spark tests share: a PySpark client's environment and the elastic Spark
deployment that the autoscaler tests (foreground and in the server) scale."""

from __future__ import annotations

import os
from pathlib import Path

from support.paths import TEMPLATES

ELASTIC = str(TEMPLATES / "spark-jupyter-elastic.yaml")
#: the elastic deployment's name
NAME = "elastic"
#: generous: only to tell "the autoscaler never acts" from "slow on a busy machine"
TIMEOUT_S = 300.0
#: a PySpark application asking for 2 cores of 1-core workers: it waits for a second
#: worker for as long as that takes (the test that runs it bounds the wait, generously:
#: a busy machine makes the autoscaler slow, and a deadline here would make it wrong)
APP = (
    "import time\n"
    "from pyspark.sql import SparkSession\n"
    "s = (SparkSession.builder.appName('wants-two-cores').config('spark.driver.host', '127.0.0.1')\n"
    "     .config('spark.cores.max', '2').config('spark.executor.cores', '1')\n"
    "     .config('spark.executor.memory', '512m').getOrCreate())\n"
    "sc = s.sparkContext\n"
    "while sc._jsc.sc().getExecutorIds().size() < 2:\n"
    "    time.sleep(0.5)\n"
    "print('EXECUTORS', sc._jsc.sc().getExecutorIds().size(), flush=True)\n"
    "print('RESULT', sc.parallelize(range(1000), 8).map(lambda x: x * x).sum(), flush=True)\n"
    "s.stop()\n")


def spark_client_env(conf_dir: Path | None = None) -> dict[str, str]:
    """A PySpark client's environment: none of this process's SPARK_* settings, and
    the configuration `dodas spark-conf` wrote when `conf_dir` is given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARK_")}
    if conf_dir is not None:
        env["SPARK_CONF_DIR"] = str(conf_dir)
    return env
