#!/usr/bin/env python3
"""A Herald worker in Python with only the standard library (urllib, threading, zlib).

It long-polls Herald for jobs of the models it serves, "generates" in ten steps while a background thread
heartbeats the lease with the latest progress, stops as soon as Herald says the task was cancelled, uploads a real
PNG and completes the lease. Replace `generate` with your model call.

    HERALD_URL=http://localhost:3000 HERALD_WORKER_TOKEN=hw_... HERALD_MODELS=flux-dev python3 worker.py
"""
import hashlib
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib

URL = os.environ.get("HERALD_URL", "http://localhost:3000").rstrip("/")
TOKEN = os.environ["HERALD_WORKER_TOKEN"]
MODELS = [m.strip() for m in os.environ.get("HERALD_MODELS", "flux-dev").split(",") if m.strip()]
WORKER_ID = os.environ.get("WORKER_ID", f"{socket.gethostname()}-py-{os.getpid()}")
STEP_SECONDS = float(os.environ.get("STEP_SECONDS", "0.3"))


class LeaseGone(Exception):
    """Herald answered 404/410: the lease expired, was taken over, or the task ended."""


def call(method, path, body=None, content_type="application/json", timeout=30):
    data = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(URL + path, data=data, method=method, headers={
        "Authorization": f"Bearer {TOKEN}", "Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read()
            return json.loads(text) if text else {}
    except urllib.error.HTTPError as err:
        if err.code in (404, 410):
            raise LeaseGone(err.read().decode(errors="replace")) from err
        raise


class Lease:
    """Heartbeats one lease every lease_seconds/3 with the latest progress, until the job ends or Herald ends it."""

    def __init__(self, job):
        self.id = job["lease_id"]
        self.every = job["lease_seconds"] / 3
        self.progress, self.message = job["resume_from_percent"], None
        self.ended = threading.Event()  # set when Herald cancelled the task or the lease was lost
        self.reason = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()

    def report(self, progress, message):
        self.progress, self.message = progress, message

    def _beat(self):
        while not self._done.wait(self.every):
            try:
                answer = call("POST", f"/v1/worker/leases/{self.id}/heartbeat",
                              {"progress": self.progress, "message": self.message}, timeout=10)
                if answer.get("cancel"):
                    self.reason = answer.get("reason", "cancelled")
                    self.ended.set()
                    return
            except LeaseGone:
                self.reason = "lost"
                self.ended.set()
                return
            except (urllib.error.URLError, OSError) as err:  # the next beat tries again
                print(f"heartbeat failed: {err}", flush=True)

    def stop(self):
        self._done.set()


def generate(job, lease):
    """Stands in for the model: ten steps from the progress a lost worker had reached, then a PNG."""
    size = job["options"].get("size") or "256x256"
    width, height = (min(512, int(n)) for n in size.split("x"))
    start = job["resume_from_percent"] // 10 * 10 + 10
    for percent in range(start, 100, 10):
        if lease.ended.wait(STEP_SECONDS):  # returns early, True, when the task is cancelled
            return None
        lease.report(percent, f"step {percent // 10} of 10")
    return png(width, height, job["options"].get("seed") or 7)


def png(width, height, seed):
    rows = b"".join(b"\x00" + bytes(
        c for x in range(width) for c in ((seed + (x + y) * 200 // (width + height)) % 256, (x * 255) // width,
                                         (y * 255) // height)) for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def run(job):
    print(f"job {job['task_id']} leased, resume_from_percent={job['resume_from_percent']}", flush=True)
    lease = Lease(job)
    try:
        image = generate(job, lease)
        if image is None:
            print(f"job {job['task_id']} stopped: {lease.reason}", flush=True)
            return
        call("PUT", f"/v1/worker/leases/{lease.id}/artifacts/image.png", image, content_type="image/png")
        print(f"job {job['task_id']} uploaded image.png ({len(image)} bytes, sha256 {hashlib.sha256(image).hexdigest()})",
              flush=True)
        call("POST", f"/v1/worker/leases/{lease.id}/complete", {"outputs": [
            {"artifact": "image.png", "mime_type": "image/png", "metadata": {"generator": "worker.py"}}]})
        print(f"job {job['task_id']} completed", flush=True)
    except LeaseGone as gone:
        print(f"job {job['task_id']} lease gone: {gone}", flush=True)
    except Exception as err:  # the model failed: tell Herald, which fails the task with this error
        try:
            call("POST", f"/v1/worker/leases/{lease.id}/fail", {"error": str(err), "retryable": False})
        except (LeaseGone, urllib.error.URLError, OSError):
            pass
        print(f"job {job['task_id']} failed: {err}", flush=True)
    finally:
        lease.stop()


def main():
    busy = False
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True
        if not busy:  # between jobs: leave now; during one: finish it first
            sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"python worker ready: {', '.join(MODELS)} from {URL}", flush=True)
    failures = 0
    while not stopping:
        try:
            jobs = call("POST", "/v1/worker/leases",
                        {"worker_id": WORKER_ID, "models": MODELS, "max_jobs": 1, "wait_seconds": 30}, timeout=45)["jobs"]
            failures = 0
        except (urllib.error.URLError, OSError, ValueError, LeaseGone) as err:
            failures += 1
            delay = min(30, 0.5 * 2 ** failures)
            print(f"lease request failed ({err}); retrying in {delay:.1f} s", flush=True)
            time.sleep(delay)
            continue
        for job in jobs:
            busy = True
            run(job)
            busy = False
    return 0


if __name__ == "__main__":
    sys.exit(main())
