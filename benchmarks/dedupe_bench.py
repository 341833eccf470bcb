"""Dedupe quality and speed: pairwise P/R/F1 on splink's labelled sets, and a 1M synthetic run.

    python benchmarks/dedupe_bench.py [--only fake_1000|historical_50k|synthetic] [--rows N]
"""
from __future__ import annotations

import argparse
import csv
import resource
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
DATA = ROOT.parent / "shared" / "dedupe-datasets" / "splink"

from sheetsync.dedupe import DedupeConfig, scan_pairs  # noqa: E402

FAKE_CFG = DedupeConfig(
    block_on=["first_name+surname", "dob", "email", "surname_soundex+dob_year",
              "first_name_prefix3+city", "email_local", "surname_soundex", "first_name_soundex",
              "city+dob_year"],
    fields={"first_name": "name", "surname": "name", "dob": "date", "city": "string",
            "email": "email"}, flag_above=0.9)

HIST_CFG = DedupeConfig(
    block_on=["first_name+surname", "surname+dob", "first_name+dob", "postcode_fake",
              "surname_soundex+birth_place", "first_name_soundex+surname_prefix3+occupation",
              "surname_soundex+first_name_initial", "first_name+postcode_fake_first",
              "dob+birth_place", "surname+postcode_fake_first", "first_name+birth_place"],
    fields={"first_name": "name", "surname": "name", "dob": "date", "birth_place": "string",
            "postcode_fake": "string", "occupation": "string", "gender": "exact"},
    flag_above=0.9)


def true_pair_count(clusters: list[str]) -> int:
    return sum(c * (c - 1) // 2 for c in Counter(clusters).values())


def evaluate(name: str, records: dict[str, dict], cluster: dict[str, str], cfg: DedupeConfig) -> dict:
    t0 = time.perf_counter()
    pairs, stats = scan_pairs(records, cfg)
    secs = time.perf_counter() - t0
    tp = sum(cluster[p.a] == cluster[p.b] for p in pairs)
    true = true_pair_count(list(cluster.values()))
    p = tp / len(pairs) if pairs else 0.0
    r = tp / true
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"set": name, "rows": len(records), "candidates": stats.candidate_pairs,
            "flagged": len(pairs), "P": p, "R": r, "F1": f1, "seconds": secs}


def load_fake() -> tuple[dict, dict]:
    with open(DATA / "fake_1000.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return ({r["unique_id"]: r for r in rows}, {r["unique_id"]: r["cluster"] for r in rows})


def load_hist() -> tuple[dict, dict]:
    import pandas as pd
    df = pd.read_parquet(DATA / "historical_figures_with_errors_50k.parquet")
    df = df.astype(object).where(df.notna(), None)
    recs = {r["unique_id"]: r for r in df.to_dict("records")}
    return recs, {k: r["cluster"] for k, r in recs.items()}


CUST_CFG = DedupeConfig(
    block_on=["phone_last4+name_initial", "email_local", "name+dob", "name_cjk+dob_year"],
    fields={"name": "name", "phone": "phone", "email": "email", "dob": "date", "city": "string"},
    flag_above=0.9, u_sample=300_000)


def synthetic(rows: int) -> dict:
    from gen_customers import customers
    records, cluster = {}, {}
    for rid, rec, c in customers(rows):
        records[rid] = rec
        cluster[rid] = str(c)
    result = evaluate(f"synthetic_{rows // 1000}k", records, cluster, CUST_CFG)
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="")
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    results = []
    if args.only in ("", "fake_1000"):
        results.append(evaluate("fake_1000", *load_fake(), FAKE_CFG))
    if args.only in ("", "historical_50k"):
        results.append(evaluate("historical_50k", *load_hist(), HIST_CFG))
    if args.only == "synthetic":
        for rows in (args.rows // 10, args.rows):
            results.append(synthetic(rows))
    print(f"{'set':<16}{'rows':>9}{'cands':>11}{'flagged':>9}{'P':>7}{'R':>7}{'F1':>7}{'s':>8}")
    for r in results:
        print(f"{r['set']:<16}{r['rows']:>9}{r['candidates']:>11}{r['flagged']:>9}"
              f"{r['P']:>7.3f}{r['R']:>7.3f}{r['F1']:>7.3f}{r['seconds']:>8.2f}"
              + (f"  max RSS {r['max_rss_mb']:.0f} MB" if "max_rss_mb" in r else ""))


if __name__ == "__main__":
    main()
