"""Bounded HTTP load from inside the cluster, reported as one JSON line on stdout.

The e2e suite mounts this file from a ConfigMap into a Job that runs the server image's own
python (which has httpx), so the load reaches the stable Service the way real clients do:
``kubectl port-forward`` pins one pod and drops connections under load, which would measure
the tunnel instead of the router.

Bounded in count and in time: it stops after ``--requests`` answers or ``--duration`` seconds,
whichever comes first, or as soon as the file ``--stop-file`` exists (the suite creates it with
``kubectl exec`` when a scenario of unknown length is over). Requests are paced to ``--rate``
per second in total.

Output (last line of the log, prefixed with ``LOADGEN_RESULT ``)::

    {"requests": 2000, "ok": 2000, "failed": 0, "started": <epoch s>, "finished": <epoch s>,
     "by_variant": {"stable": 1796, "candidate": 204},
     "answers": [["stable", "1.0.0", "1.0.0", 1796], ["candidate", "2.0.0", "2.0.0", 204]],
     "timeline": [[<epoch second>, "candidate", "2.0.0", 3], ...],
     "errors": [{"t": <epoch s>, "error": "..."}]}          # the first 50 failures

``answers`` counts (variant, x-model-version header, model_version of the body): the router sets
the header from its routing table, the server writes the body from the model it loaded, so the
two disagree exactly when a request reached a pod of another version (as during a rollout).
``timeline`` counts answers per epoch second, variant and body version; failed requests appear
there under the variant name ``FAILED``.

A failure is an exception (connect, read, timeout) or a status other than 200. A line
``LOADGEN_STARTED <epoch s>`` is printed once the first answer has come back, so the suite
knows the load is flowing before it changes anything.

With ``--progress``, one line per finished second is printed while the load runs
(``LOADGEN_SECOND {"t": <epoch second>, "ok": n, "failed": n, "errors": [...first 3]}``), so a
long-running load can be judged window by window (the chaos suite) without waiting for its end.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import sys
import time

MAX_ERRORS_KEPT = 50


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True, help="e.g. http://fraud.ns.svc.cluster.local/predict")
    p.add_argument("--payload", required=True, help="JSON request body")
    p.add_argument("--requests", type=int, default=0, help="stop after this many answers (0: no count limit)")
    p.add_argument("--duration", type=float, required=True, help="stop after this many seconds at most")
    p.add_argument("--rate", type=float, default=50.0, help="requests per second, all workers together")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, seconds")
    p.add_argument("--stop-file", default="", help="stop sending once this file exists")
    p.add_argument("--progress", action="store_true", help="print a LOADGEN_SECOND line per finished second")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.duration > 900:
        p.error("--duration: must be in (0, 900] seconds")
    if args.requests < 0:
        p.error("--requests: must be 0 or more")
    if not 0 < args.rate <= 2000:
        p.error("--rate: must be in (0, 2000]")
    if not 1 <= args.concurrency <= 64:
        p.error("--concurrency: must be 1..64")
    try:
        json.loads(args.payload)
    except ValueError as exc:
        p.error(f"--payload: must be JSON: {exc}")
    return args


class Tally:
    def __init__(self) -> None:
        self.sent = 0
        self.ok = 0
        self.failed = 0
        self.by_variant: collections.Counter[str] = collections.Counter()
        self.answers: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self.timeline: collections.Counter[tuple[int, str, str]] = collections.Counter()
        self.errors: list[dict] = []
        self.first_answer: float | None = None
        # epoch second -> [ok, failed, first errors], for --progress
        self.seconds: dict[int, list] = collections.defaultdict(lambda: [0, 0, []])

    def answered(self, t: float, variant: str, header_version: str, body_version: str) -> None:
        self.ok += 1
        self.by_variant[variant] += 1
        self.answers[(variant, header_version, body_version)] += 1
        self.timeline[(int(t), variant, body_version)] += 1
        self.seconds[int(t)][0] += 1

    def failure(self, t: float, error: str) -> None:
        self.failed += 1
        self.timeline[(int(t), "FAILED", "")] += 1
        second = self.seconds[int(t)]
        second[1] += 1
        if len(second[2]) < 3:
            second[2].append(error[:200])
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append({"t": round(t, 3), "error": error[:300]})

    def print_seconds(self, until: int) -> None:
        """One LOADGEN_SECOND line for each recorded second before ``until`` (then forgotten)."""
        for second in sorted(s for s in self.seconds if s < until):
            ok, failed, errors = self.seconds.pop(second)
            line = json.dumps({"t": second, "ok": ok, "failed": failed, "errors": errors}, separators=(",", ":"))
            print("LOADGEN_SECOND " + line, flush=True)


async def print_progress(tally: Tally) -> None:
    while True:
        await asyncio.sleep(1.0)
        tally.print_seconds(int(time.time()))


async def run(args: argparse.Namespace) -> dict:
    import httpx  # the server image has it; imported here so --help works anywhere

    body = args.payload.encode()
    headers = {"content-type": "application/json"}
    tally = Tally()
    started = time.time()
    deadline = time.monotonic() + args.duration
    interval = 1.0 / args.rate
    next_slot = time.monotonic()
    slot_lock = asyncio.Lock()

    def stop_requested() -> bool:
        return bool(args.stop_file) and os.path.exists(args.stop_file)

    async def take_slot() -> bool:
        nonlocal next_slot
        async with slot_lock:
            now = time.monotonic()
            slot = max(next_slot, now)
            # A slot is refused when it falls after the deadline, not only when it is taken after it:
            # workers reserve slots ahead, and each would otherwise add one request past the duration.
            if slot >= deadline or (args.requests and tally.sent >= args.requests) or stop_requested():
                return False
            tally.sent += 1
            wait = slot - now
            next_slot = slot + interval
        if wait > 0:
            await asyncio.sleep(wait)
        return True

    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(timeout=args.timeout, limits=limits) as client:

        async def worker() -> None:
            while await take_slot():
                try:
                    resp = await client.post(args.url, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    tally.failure(time.time(), f"{type(exc).__name__}: {exc}")
                    continue
                now = time.time()
                if resp.status_code != 200:
                    tally.failure(now, f"HTTP {resp.status_code}: {resp.text[:200]}")
                    continue
                try:
                    body_version = str(resp.json().get("model_version", "<none>"))
                except ValueError:
                    tally.failure(now, f"HTTP 200 with a body that is not JSON: {resp.text[:200]}")
                    continue
                tally.answered(now, resp.headers.get("x-mlserving-variant", "<none>"),
                               resp.headers.get("x-model-version", "<none>"), body_version)
                if tally.first_answer is None:
                    tally.first_answer = now
                    print(f"LOADGEN_STARTED {now:.3f}", flush=True)

        progress = asyncio.create_task(print_progress(tally)) if args.progress else None
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        if progress is not None:
            progress.cancel()
            tally.print_seconds(int(time.time()) + 1)

    return {
        "requests": tally.ok + tally.failed,
        "ok": tally.ok,
        "failed": tally.failed,
        "started": round(started, 3),
        "first_answer": tally.first_answer and round(tally.first_answer, 3),
        "finished": round(time.time(), 3),
        "by_variant": dict(tally.by_variant),
        "answers": sorted([v, hv, bv, n] for (v, hv, bv), n in tally.answers.items()),
        "timeline": sorted([t, v, bv, n] for (t, v, bv), n in tally.timeline.items()),
        "errors": tally.errors,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    result = asyncio.run(run(args))
    print("LOADGEN_RESULT " + json.dumps(result, separators=(",", ":")), flush=True)
    return 0


# The suite's side of --stop-file: the path it passes and the command that, run in a generator's
# pod (``kubectl exec POD -- *STOP_COMMAND``), ends that generator's load.
STOP_FILE = "/tmp/stop"
STOP_COMMAND = ("python3", "-c", f"open({STOP_FILE!r}, 'w')")


def parse_result(log: str) -> dict:
    """The suite's side: the result object from a Job's log (raises ValueError if absent)."""
    for line in reversed(log.splitlines()):
        if line.startswith("LOADGEN_RESULT "):
            return json.loads(line[len("LOADGEN_RESULT "):])
    raise ValueError("no LOADGEN_RESULT line in the load Job's log:\n" + log[-2000:])


def parse_seconds(log: str) -> dict[int, dict]:
    """The --progress lines of a log so far: {epoch second: {"ok", "failed", "errors"}}."""
    seconds = {}
    for line in log.splitlines():
        if line.startswith("LOADGEN_SECOND "):
            entry = json.loads(line[len("LOADGEN_SECOND "):])
            seconds[entry.pop("t")] = entry
    return seconds


def share(result: dict, variant: str, since: float = 0.0, until: float = float("inf")) -> tuple[float, int]:
    """Fraction of the answers in seconds [since, until) that came from ``variant``, and their number."""
    total = hit = 0
    for second, name, _version, n in result["timeline"]:
        if name == "FAILED" or not since <= second < until:
            continue
        total += n
        if name == variant:
            hit += n
    return (hit / total if total else 0.0), total


if __name__ == "__main__":
    sys.exit(main())
