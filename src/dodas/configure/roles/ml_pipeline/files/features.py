"""Pre-processing on the deployed Spark cluster: Avro access records in, one row
of features per data set and week out, labelled with whether the data set is
popular the week after.

The cluster has no file system shared with this host, so the driver ships each
Avro file's bytes to the executors, which decode them (fastavro, one file per
task); Spark's own Avro reader is a separate package (spark-avro) that is not
part of pyspark. Cleaning and aggregation are Spark SQL on the executors. The
features are small (a row per data set and week) and come back to the driver.

The master's URL is an argument; its secret is in the spark-defaults.conf of
SPARK_CONF_DIR (mode 0600), never on the command line. Knows nothing of dodas.

    python features.py --master spark://HOST:PORT --data DIR --out FEATURES.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

#: the features, in the order the model takes them (the /json request's "keys")
FEATURES = ["reads", "users", "sites", "log_bytes", "read_fraction", "log_duration", "remote_fraction",
            "failure_fraction", "tier_aod", "tier_miniaod", "tier_nanoaod", "tier_raw"]
TIERS = ["AOD", "MINIAOD", "NANOAOD", "RAW"]
WEEK = 7 * 86400
POPULAR = 20  # reads in the next week that make a data set "popular"


def schema():
    from pyspark.sql import types as T

    fields = [("unique_id", T.StringType()), ("user", T.StringType()), ("site", T.StringType()),
              ("dataset", T.StringType()), ("file_size", T.LongType()), ("read_bytes", T.LongType()),
              ("start_time", T.LongType()), ("end_time", T.LongType()), ("is_remote", T.BooleanType()),
              ("exit_code", T.IntegerType())]
    return T.StructType([T.StructField(n, t, nullable=True) for n, t in fields])


def decode(files):
    """Executor side: the records of each (name, Avro bytes) pair."""
    import fastavro

    for _name, data in files:
        for rec in fastavro.reader(io.BytesIO(data)):
            yield (rec["unique_id"], rec["user_dn_hash"], rec["site"], rec["dataset"], rec["file_size"],
                   rec["read_bytes"], rec["start_time"], rec["end_time"], rec["is_remote"], rec["exit_code"])


def run(master: str, data: Path, out: Path) -> dict:
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    if __name__ != "__main__":  # imported (the notebook): the executors cannot import this file, send it by value
        from pyspark import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[__name__])
    files = sorted(data.glob("*.avro")) if data.is_dir() else [data]
    if not files:
        raise SystemExit(f"no .avro file in {data}")
    t0 = time.monotonic()
    builder = SparkSession.builder
    host = os.environ.get("SPARK_LOCAL_IP") or os.environ.get("DODAS_DRIVER_HOST")
    if host:  # the address the executors call the driver back at
        builder = builder.config("spark.driver.host", host).config("spark.driver.bindAddress", host)
    spark = (builder.master(master).appName("dodas-ml-pipeline-features")
             .config("spark.executor.memory", "512m").config("spark.sql.shuffle.partitions", "4")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             # the executors' Python: the hosts' (PYSPARK_PYTHON, set by dodas), else this one
             .config("spark.pyspark.python", os.environ.get("PYSPARK_PYTHON") or sys.executable).getOrCreate())
    try:
        sc = spark.sparkContext
        raw = sc.parallelize([(p.name, p.read_bytes()) for p in files], len(files)).mapPartitions(decode)
        df = spark.createDataFrame(raw, schema()).cache()  # decoded once, by Python; the rest runs in the JVMs
        total = df.count()
        clean = (df.dropDuplicates(["unique_id"])
                 .where(F.col("read_bytes").isNotNull() & (F.col("read_bytes") >= 0)
                        & (F.col("file_size") > 0) & (F.col("end_time") >= F.col("start_time"))
                        & F.col("dataset").rlike(r"^/[^/]+/[^/]+/[A-Z]+$")))
        kept, first = clean.agg(F.count("*"), F.min("start_time")).first()
        weekly = (clean.withColumn("week", F.floor((F.col("start_time") - F.lit(first)) / WEEK).cast("int"))
                  .withColumn("tier", F.element_at(F.split("dataset", "/"), -1))
                  .groupBy("dataset", "tier", "week")
                  .agg(F.count("*").alias("reads"), F.countDistinct("user").alias("users"),
                       F.countDistinct("site").alias("sites"), F.log1p(F.sum("read_bytes")).alias("log_bytes"),
                       F.avg(F.least(F.col("read_bytes") / F.col("file_size"), F.lit(1.0))).alias("read_fraction"),
                       F.log1p(F.avg(F.col("end_time") - F.col("start_time"))).alias("log_duration"),
                       F.avg(F.col("is_remote").cast("double")).alias("remote_fraction"),
                       F.avg((F.col("exit_code") != 0).cast("double")).alias("failure_fraction"))).cache()
        last = weekly.agg(F.max("week")).first()[0]
        nxt = weekly.select("dataset", (F.col("week") - 1).alias("week"), F.col("reads").alias("next_reads"))
        rows = (weekly.where(F.col("week") < last).join(nxt, ["dataset", "week"], "left")
                .fillna({"next_reads": 0}).orderBy("dataset", "week").collect())
        executors = sc._jsc.sc().getExecutorMemoryStatus().size() - 1  # without the driver
    finally:
        spark.stop()
    table = []
    for r in rows:
        d = r.asDict()
        table.append({"dataset": d["dataset"], "week": d["week"],
                      "x": [float(d[k]) for k in FEATURES[:8]] + [1.0 if d["tier"] == t else 0.0 for t in TIERS],
                      "y": 1 if d["next_reads"] >= POPULAR else 0})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"features": FEATURES, "labels": ["not_popular", "popular"], "rows": table}))
    return {"records": total, "kept": kept, "dropped": total - kept, "rows": len(table),
            "popular": sum(t["y"] for t in table), "executors": executors,
            "seconds": round(time.monotonic() - t0, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--master", required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    print(json.dumps(run(args.master, args.data, args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
