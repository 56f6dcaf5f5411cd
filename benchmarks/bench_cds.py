"""CDS Hooks latency on a realistic Synthea patient: p50/p99 per call, in process.

The request is the whole record of the Synthea patient in tests/fixtures/fhir/synthea as
prefetch (Patient, every Observation, every MedicationRequest), and a "hundreds of
Observations" variant: the same Observations repeated at 4 earlier times (376 Observations,
each copy a day apart and a fresh id), as a chart with several years of panels looks. The
baseline, measured in the same run through the same client, is `GET /healthz`, and the
ratio is printed (the machine is shared and noisy: absolute times alone mean little).
Run: .venv/bin/python benchmarks/bench_cds.py [N]
"""

from __future__ import annotations

import copy
import json
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from interpret.web.app import create_app

ROOT = Path(__file__).resolve().parents[1]
SYNTHEA = ROOT / "tests/fixtures/fhir/synthea/Brent_Beer_7dc94cc0-8c2e-4835-9994-cecbe894bcbf.json"


def request(copies: int) -> dict:
    resources = [e["resource"] for e in json.loads(SYNTHEA.read_text())["entry"]]
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    observations = [r for r in resources if r["resourceType"] == "Observation"]
    labs = []
    for n in range(copies):
        for obs in observations:
            o = copy.deepcopy(obs)
            o["id"] = f"{obs['id']}-{n}"
            if "effectiveDateTime" in o:
                when = datetime.fromisoformat(o["effectiveDateTime"]) - timedelta(days=n)
                o["effectiveDateTime"] = when.isoformat()
            labs.append(o)
    meds = [r for r in resources if r["resourceType"] == "MedicationRequest"]
    bundle = lambda items: {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in items]}  # noqa: E731
    return {
        "hook": "patient-view",
        "hookInstance": "5b1e5a1c-8b4f-4e0a-9a57-6d3f5f1d2c11",
        "context": {"userId": "Practitioner/1", "patientId": patient["id"]},
        "prefetch": {"patient": patient, "labs": bundle(labs), "meds": bundle(meds)},
    }


def timed(call, n: int) -> list[float]:
    for _ in range(min(20, n)):
        call()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return times


def show(name: str, times: list[float]) -> float:
    p50 = statistics.median(times) * 1e3
    p99 = sorted(times)[max(0, int(len(times) * 0.99) - 1)] * 1e3
    print(f"{name:<52} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms")
    return p50


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    client = TestClient(create_app())
    base = show("baseline: GET /healthz", timed(lambda: client.get("/healthz"), n))
    for copies in (1, 4):
        body = request(copies)
        size = len(json.dumps(body))
        count = len(body["prefetch"]["labs"]["entry"])

        def call(body: dict = body) -> None:
            response = client.post("/cds-services/electrolyte-panel", json=body)
            assert response.status_code == 200, response.text[:200]

        p50 = show(f"patient-view, {count} Observations ({size // 1024} KB)", timed(call, n))
        print(f"  ratio to /healthz p50: {p50 / base:.1f}x")


if __name__ == "__main__":
    main()
