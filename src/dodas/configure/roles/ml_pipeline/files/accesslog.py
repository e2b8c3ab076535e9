"""A synthetic CMS-like data-access log, as JSON records serialised with Avro.

CMS keeps a record of every file read by its jobs (who, from which site, which
file of which data set, how many bytes, how long). No real record is available
here, so this script writes records of the same shape: data sets with a hidden
popularity that drifts week to week, reads drawn from it, and the dirt a real
log has (missing byte counts, negative sizes, clocks going backwards, duplicate
records) for the pre-processing to clean. Whether a data set is popular next
week is what the pipeline's model learns to predict from this week's reads.

Runs on the pipeline's host with the Python that runs the pipeline (fastavro);
it knows nothing of dodas.

    python accesslog.py OUT_DIR --records N --seed S [--files K] [--weeks W]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
import time
from pathlib import Path

import fastavro

SCHEMA = {
    "type": "record", "name": "AccessRecord", "namespace": "ch.cern.cms.popularity",
    "doc": "One file read by a CMS job (synthetic).",
    "fields": [
        {"name": "unique_id", "type": "string"},
        {"name": "user_dn_hash", "type": "string"},
        {"name": "site", "type": "string"},
        {"name": "dataset", "type": "string"},
        {"name": "file_lfn", "type": "string"},
        {"name": "file_size", "type": "long"},
        {"name": "read_bytes", "type": ["null", "long"], "default": None},
        {"name": "start_time", "type": "long"},
        {"name": "end_time", "type": "long"},
        {"name": "app", "type": "string"},
        {"name": "protocol", "type": {"type": "enum", "name": "Protocol", "symbols": ["XROOTD", "LOCAL", "HTTPS"]}},
        {"name": "is_remote", "type": "boolean"},
        {"name": "exit_code", "type": "int"},
    ],
}
SITES = ["T1_IT_CNAF", "T1_DE_KIT", "T1_US_FNAL", "T2_IT_Pisa", "T2_IT_Bari", "T2_IT_Legnaro", "T2_IT_Rome",
         "T2_CH_CERN", "T2_DE_DESY", "T2_US_Wisconsin", "T2_UK_London_IC", "T2_FR_GRIF"]
TIERS = ["AOD", "MINIAOD", "NANOAOD", "RAW"]
PRIMARY = ["SingleMuon", "DoubleEG", "JetHT", "MET", "Tau", "ZeroBias", "EGamma", "DYJetsToLL", "TTToSemiLeptonic",
           "WJetsToLNu", "QCD_HT500", "GluGluHToZZTo4L"]
ERAS = ["Run2018A", "Run2018B", "Run2018C", "Run2022C", "Run2022D", "Run2023C", "RunIISummer20UL18"]
APPS = ["cmsRun", "crab", "root", "spark"]
WEEK = 7 * 86400
START = 1_704_067_200  # 2024-01-01, a Monday


def datasets(rng: random.Random, n: int) -> list[dict]:
    """n data sets, each with a popularity (reads per week), a trend and a tier."""
    out = []
    for i in range(n):
        tier = rng.choices(TIERS, weights=[3, 5, 4, 1])[0]
        name = f"/{rng.choice(PRIMARY)}/{rng.choice(ERAS)}-v{i}/{tier}"
        base = math.exp(rng.gauss(1.3, 1.0)) * {"MINIAOD": 1.6, "NANOAOD": 1.3, "AOD": 0.8, "RAW": 0.3}[tier]
        out.append({"name": name, "tier": tier, "rate": base, "trend": math.exp(rng.gauss(0.0, 0.45)),
                    "files": rng.randint(20, 400), "size": rng.randint(500, 4000) * 2**20,
                    "home": rng.sample(SITES, k=rng.randint(1, 3))})
    return out


def records(seed: int, count: int, weeks: int) -> list[dict]:
    """About `count` records over `weeks` weeks (the data sets' rates are scaled to it)."""
    rng = random.Random(seed)
    sets = datasets(rng, max(50, count // 40))
    users = [hashlib.sha256(f"user-{seed}-{i}".encode()).hexdigest()[:16] for i in range(max(20, count // 200))]
    expected = sum(d["rate"] * d["trend"] ** w for d in sets for w in range(weeks))
    scale = count / expected
    out: list[dict] = []
    for d in sets:
        fans = rng.sample(users, k=min(len(users), 2 + int(d["rate"])))
        for w in range(weeks):
            lam = d["rate"] * d["trend"] ** w * scale
            for _ in range(_poisson(rng, lam)):
                start = START + w * WEEK + rng.randrange(WEEK)
                remote = rng.random() < 0.3
                size = int(d["size"] * rng.uniform(0.5, 1.5))
                read = int(size * min(1.0, rng.betavariate(2, 3) * (1.5 if d["tier"] == "NANOAOD" else 1.0)))
                rec = {"unique_id": f"{seed}-{len(out)}", "user_dn_hash": rng.choice(fans),
                       "site": rng.choice(SITES) if remote else rng.choice(d["home"]), "dataset": d["name"],
                       "file_lfn": f"/store/{d['tier'].lower()}{d['name']}/{rng.randrange(d['files']):06d}.root",
                       "file_size": size, "read_bytes": read, "start_time": start,
                       "end_time": start + int(read / (rng.uniform(20, 120) * 2**20)) + 1,
                       "app": rng.choice(APPS), "protocol": "XROOTD" if remote else rng.choice(["LOCAL", "XROOTD"]),
                       "is_remote": remote, "exit_code": 0 if rng.random() < 0.97 else rng.choice([8021, 8028, 50664])}
                out.append(_dirty(rng, rec, out))
    rng.shuffle(out)
    return out


def _dirty(rng: random.Random, rec: dict, so_far: list[dict]) -> dict:
    """What a real log has: about 2% of records damaged in one of four ways."""
    r = rng.random()
    if r < 0.005:
        rec["read_bytes"] = None
    elif r < 0.01:
        rec["read_bytes"] = -rec["read_bytes"] - 1
    elif r < 0.015:
        rec["end_time"] = rec["start_time"] - rng.randint(1, 3600)
    elif r < 0.02 and so_far:
        return dict(so_far[-1])  # a record sent twice
    return rec


def _poisson(rng: random.Random, lam: float) -> int:
    if lam > 30:
        return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))
    k, p, limit = 0, 1.0, math.exp(-lam)
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def write(out_dir: Path, recs: list[dict], files: int) -> list[Path]:
    """Avro container files part-00000.avro ... (deflate), about equal in size."""
    out_dir.mkdir(parents=True, exist_ok=True)
    schema = fastavro.parse_schema(SCHEMA)
    paths = []
    for i in range(files):
        path = out_dir / f"part-{i:05d}.avro"
        with path.open("wb") as f:
            fastavro.writer(f, schema, recs[i::files], codec="deflate")
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--records", type=int, default=60_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--weeks", type=int, default=4)
    args = ap.parse_args(argv)
    if args.records < 1000 or args.weeks < 2 or args.files < 1:
        print("need --records >= 1000, --weeks >= 2 and --files >= 1", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    recs = records(args.seed, args.records, args.weeks)
    paths = write(args.out_dir, recs, args.files)
    print(json.dumps({"records": len(recs), "files": [str(p) for p in paths],
                      "bytes": sum(p.stat().st_size for p in paths), "seconds": round(time.monotonic() - t0, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
