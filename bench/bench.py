#!/usr/bin/env python3
"""The benchmark suite: real daemons on loopback against real git repositories in a
temporary folder, the load generator against a real dispatcher, and the micro
benchmarks. Prints one table (measured figures beside their targets) and writes it as
JSON to bench/results/<timestamp>.json. It reports and never gates on the figures: the
exit status is non-zero only when something broke (a daemon did not start, a result
never came within a generous deadline).

Run through scripts/bench.sh, which builds the executables in Release first.

One file past the usual ~400 lines: each benchmark is one function over the same table
and cluster helpers, and the one command runs any set of them; the daemons are started
and queried through scripts/harness.py."""

import argparse
import ctypes
import ctypes.util
import datetime
import http.client
import json
import os
import platform
import re
import select
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MiB = 1024 * 1024

# The daemons as processes, shared with scripts/chaos.py.
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import harness  # noqa: E402
from harness import wait_for  # noqa: E402

GIT_ENV = harness.git_env("Bench")

# Something broke: a daemon did not start, a result never came.
BenchError = harness.HarnessError


# ---------------------------------------------------------------------------------------
# Small helpers


def git(repo, *args, env=None, stdin=None):
    return harness.git(repo, *args, env=env or GIT_ENV, stdin=stdin)


def percentile(values, p):
    """Nearest rank on the sorted values (p in 0..100)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1)))))
    return s[k]


def proc_status(pid):
    """VmHWM, VmRSS and the parts of the RSS (anonymous, file-backed, shared), in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(value.split()[0]) * 1024
    return out


def cpu_seconds(pid):
    """CPU time of a process so far: its own, and that of its children it has reaped
    (a runner's test processes), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    own = (int(fields[11]) + int(fields[12])) / tick
    children = (int(fields[13]) + int(fields[14])) / tick
    return own, children


LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}) ")


def log_time(line):
    """The wall-clock time of a daemon's log line (local time, millisecond precision)."""
    m = LOG_TIME.match(line)
    if not m:
        return None
    return datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").timestamp()


class Daemon(harness.Daemon):
    """A daemon of the project as a real process, started at once, its output in a log
    file."""

    def __init__(self, name, argv, log, cwd=None, stdin=None):
        super().__init__(name, argv, log, cwd=cwd, stdin=stdin)
        self.start()

    def memory(self):
        self.check_running()
        return proc_status(self.pid)


class ResultWatch:
    """Notes the moment each result file appears in a folder: inotify (through libc)
    where available, else a scan every millisecond. Temporary files are ignored."""

    IN_CREATE, IN_MOVED_TO = 0x100, 0x80

    def __init__(self, folder):
        self.folder = folder
        self.seen = {}
        self.cond = threading.Condition()
        self.stopped = False
        self.fd = -1
        libc_name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(libc_name, use_errno=True)
            self.fd = libc.inotify_init1(os.O_CLOEXEC)
            if self.fd >= 0 and libc.inotify_add_watch(
                    self.fd, folder.encode(), self.IN_CREATE | self.IN_MOVED_TO) < 0:
                os.close(self.fd)
                self.fd = -1
        except (OSError, AttributeError):
            self.fd = -1
        self.how = "inotify" if self.fd >= 0 else "polling"
        self.wake_r, self.wake_w = os.pipe()
        self.thread = threading.Thread(target=self._inotify if self.fd >= 0 else self._poll,
                                       daemon=True)
        self.thread.start()

    def _note(self, names, t):
        with self.cond:
            for name in names:
                if ".tmp." not in name and name not in self.seen:
                    self.seen[name] = t
            self.cond.notify_all()

    def _inotify(self):
        # The descriptors are closed by this thread only, once told to stop through the
        # pipe: closing one under a blocked read would let the number be reused by a
        # descriptor opened meanwhile (a child's pipe) and read from here.
        try:
            while True:
                ready, _, _ = select.select([self.fd, self.wake_r], [], [])
                if self.wake_r in ready:
                    return
                data = os.read(self.fd, 1 << 16)
                t = time.monotonic()
                names, off = [], 0
                while off + 16 <= len(data):
                    _, _, _, length = struct.unpack_from("iIII", data, off)
                    raw = data[off + 16:off + 16 + length]
                    names.append(raw.split(b"\0", 1)[0].decode(errors="replace"))
                    off += 16 + length
                self._note(names, t)
        finally:
            os.close(self.fd)
            os.close(self.wake_r)

    def _poll(self):
        while not self.stopped:
            t = time.monotonic()
            try:
                names = os.listdir(self.folder)
            except OSError:
                names = []
            self._note(names, t)
            time.sleep(0.001)

    def wait(self, names, timeout):
        """Waits until every name has appeared; returns the latest moment one did."""
        names = set(names)
        done, t_last = self.wait_some(names, timeout)
        if done < len(names):
            raise BenchError(f"{len(names) - done} of {len(names)} results did not come "
                             f"within {timeout:g} s")
        return t_last

    def wait_some(self, names, timeout):
        """Waits until every name has appeared or `timeout` has passed; returns how many
        did and the latest moment one did."""
        names = set(names)
        deadline = time.monotonic() + timeout
        with self.cond:
            while not names <= self.seen.keys():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(min(left, 0.5))
            times = [self.seen[n] for n in names if n in self.seen]
            return len(times), max(times) if times else None

    def close(self):
        self.stopped = True
        os.write(self.wake_w, b"x")
        self.thread.join()
        os.close(self.wake_w)
        if self.fd < 0:
            os.close(self.wake_r)


class Cluster:
    """A master repository in a temporary folder, and the real daemons around it."""

    def __init__(self, bins, work, name):
        self.bins = bins
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir)
        self.master = os.path.join(self.dir, "master")
        os.makedirs(self.master)
        git(self.master, "init", "-q", "-b", "master")
        with open(os.path.join(self.master, "file.txt"), "w") as f:
            f.write("0\n")
        git(self.master, "add", "file.txt")
        git(self.master, "commit", "-q", "-m", "first")
        self.first = git(self.master, "rev-parse", "HEAD")
        self.results = os.path.join(self.dir, "test_results")
        os.makedirs(self.results)
        self.watch = ResultWatch(self.results)
        self.daemons = []
        self.dispatcher = None
        self.dispatcher_port = None
        self.runners = []
        self.observer = None
        self.observer_port = None

    def bin(self, name):
        return os.path.join(self.bins, name)

    def start_dispatcher(self, *extra):
        self.dispatcher = Daemon("dispatcher", [
            self.bin("ci-dispatcher"), "--port", "0", "--results-dir", self.results,
            "--state-dir", os.path.join(self.dir, "state"), *extra],
            os.path.join(self.dir, "dispatcher.log"))
        self.daemons.append(self.dispatcher)
        self.dispatcher_port = self.dispatcher.wait_port()
        return self.dispatcher

    def start_runner(self, test_command="true", *extra):
        i = len(self.runners)
        clone = os.path.join(self.dir, f"runner{i}")
        subprocess.run(["git", "clone", "-q", self.master, clone], check=True, env=GIT_ENV)
        runner = Daemon(f"runner{i}", [
            self.bin("ci-runner"), "--port", "0",
            "--dispatcher-server", f"127.0.0.1:{self.dispatcher_port}",
            "--test-command", test_command, *extra, clone],
            os.path.join(self.dir, f"runner{i}.log"))
        self.daemons.append(runner)
        self.runners.append(runner)
        runner.wait_log("registered with the dispatcher")
        return runner

    def start_observer(self):
        clone = os.path.join(self.dir, "observer")
        subprocess.run(["git", "clone", "-q", self.master, clone], check=True, env=GIT_ENV)
        # A long interval: only the poke from the git hook triggers a look.
        self.observer = Daemon("observer", [
            self.bin("ci-observer"), "--dispatcher-server", f"127.0.0.1:{self.dispatcher_port}",
            "--interval", "3600", "--listen", "127.0.0.1:0", clone],
            os.path.join(self.dir, "observer.log"))
        self.daemons.append(self.observer)
        self.observer_port = self.observer.wait_port()
        self.observer.wait_log("first look")
        return self.observer

    def install_hook(self):
        hook = os.path.join(self.master, ".git", "hooks", "post-commit")
        shutil.copy(os.path.join(ROOT, "scripts", "git-hooks", "post-commit"), hook)
        os.chmod(hook, 0o755)
        return dict(GIT_ENV, CICTL=self.bin("cictl"),
                    CI_OBSERVER=f"127.0.0.1:{self.observer_port}")

    def notify(self):
        harness.Ctl(self.bins, f"127.0.0.1:{self.dispatcher_port}").notify(
            f"127.0.0.1:{self.observer_port}")

    def result_path(self, commit):
        return os.path.join(self.results, commit)

    def stop(self):
        for d in reversed(self.daemons):
            d.stop()
        self.watch.close()


def header_field(path, key):
    with open(path, errors="replace") as f:
        for line in f:
            if line == "\n":
                break
            k, _, v = line.partition(": ")
            if k == key:
                return v.strip()
    return None


# ---------------------------------------------------------------------------------------
# The table


class Table:
    def __init__(self):
        self.rows = []

    def add(self, bench, metric, value, unit, target=None, better="lower", note=""):
        """target: a number in `unit`; better: 'lower' (value <= target) or 'higher'."""
        met = None
        if target is not None and value is not None:
            met = value <= target if better == "lower" else value >= target
        self.rows.append({"benchmark": bench, "metric": metric, "value": value, "unit": unit,
                          "target": target, "better": better, "met": met, "note": note})

    def error(self, bench, message):
        lines = message.strip().splitlines() or ["?"]
        self.rows.append({"benchmark": bench, "metric": "error", "value": None, "unit": "",
                          "target": None, "better": None, "met": None,
                          "note": lines[0][:160], "message": message})

    @staticmethod
    def fmt(value, unit):
        if value is None:
            return "-"
        if isinstance(value, str):
            return value
        if isinstance(value, float):
            if abs(value) >= 100:
                text = f"{value:,.0f}"
            elif abs(value) >= 10:
                text = f"{value:.1f}"
            else:
                text = f"{value:.2f}"
        else:
            text = f"{value:,}"
        return f"{text} {unit}".strip()

    def render(self, markdown=False):
        header = ["benchmark", "metric", "measured", "target", "met"]
        lines = []
        for r in self.rows:
            if r["metric"] == "error":
                lines.append([r["benchmark"], "ERROR", r["note"], "", ""])
                continue
            target = ""
            if r["target"] is not None:
                op = "≤" if r["better"] == "lower" else "≥"
                target = f"{op} {self.fmt(r['target'], r['unit'])}"
            met = "" if r["met"] is None else ("yes" if r["met"] else "MISSED")
            metric = r["metric"] + (f" ({r['note']})" if r["note"] else "")
            lines.append([r["benchmark"], metric, self.fmt(r["value"], r["unit"]), target, met])
        if markdown:
            out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            out += ["| " + " | ".join(c.replace("|", "/") for c in line) + " |" for line in lines]
            return "\n".join(out)
        widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
                  for i, h in enumerate(header)]
        sep = "  "
        out = [sep.join(h.ljust(w) for h, w in zip(header, widths)),
               sep.join("-" * w for w in widths)]
        out += [sep.join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
        return "\n".join(out)


# ---------------------------------------------------------------------------------------
# The benchmarks


def bench_latency(ctx, table, extra):
    """Commits one after another in the master repository, each poking the observer
    through the post-commit hook; the time from just before `git commit` to the result
    file being there."""
    n = ctx.latency_commits
    c = Cluster(ctx.bins, ctx.work, "latency")
    try:
        c.start_dispatcher()
        c.start_runner("true")
        c.start_observer()
        env = c.install_hook()
        path = os.path.join(c.master, "file.txt")
        samples = []  # (latency_s, duration_s, commit_s, commit, wall_t0)
        daemons = {"dispatcher": c.dispatcher, "runner": c.runners[0], "observer": c.observer}
        cpu0 = None
        for i in range(n + 1):  # the first one warms up and is not counted
            if i == 1:
                cpu0 = {k: cpu_seconds(d.pid) for k, d in daemons.items()}
            with open(path, "a") as f:
                f.write(f"{i}\n")
            wall0 = time.time()
            t0 = time.monotonic()
            proc = subprocess.run(["git", "-C", c.master, "commit", "-q", "-a", "-m",
                                   f"change {i}"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
            t_commit = time.monotonic()
            if proc.returncode != 0:
                raise BenchError(f"git commit: {proc.stderr.decode().strip()}")
            commit = git(c.master, "rev-parse", "HEAD")
            t_result = c.watch.wait([commit], 30)
            duration = header_field(c.result_path(commit), "duration")
            status = header_field(c.result_path(commit), "status")
            if status != "passed":
                raise BenchError(f"commit {commit}: status {status}")
            dur_s = float(duration.split()[0])
            if i > 0:
                samples.append((t_result - t0, dur_s, t_commit - t0, commit, wall0))
        cpu1 = {k: cpu_seconds(d.pid) for k, d in daemons.items()}
        cpu = {k: {"own_ms_per_job": (cpu1[k][0] - cpu0[k][0]) * 1000 / n,
                   "children_ms_per_job": (cpu1[k][1] - cpu0[k][1]) * 1000 / n}
               for k in daemons}
        lat = [s[0] * 1000 for s in samples]
        over = [(s[0] - s[1]) * 1000 for s in samples]
        durs = [s[1] * 1000 for s in samples]
        commits = [s[2] * 1000 for s in samples]
        table.add("latency", f"commit → result p50 ({n} commits)", percentile(lat, 50), "ms", 25)
        table.add("latency", f"commit → result p99 ({n} commits)", percentile(lat, 99), "ms", 100)
        table.add("latency", "per-job overhead median", statistics.median(over), "ms", 5,
                  note="latency minus the test's duration")
        table.add("latency", "per-job overhead after `git commit` returned, median",
                  statistics.median([(s[0] - s[2] - s[1]) * 1000 for s in samples]), "ms",
                  note="latency minus git's own time (hook included) minus the test's duration")
        table.add("latency", "git commit with its hook, median", statistics.median(commits), "ms")
        table.add("latency", "git commit alone (no hook, no CI), median",
                  git_commit_baseline(ctx.work, 10), "ms")
        table.add("latency", "test duration as reported, median", statistics.median(durs), "ms")
        table.add("latency", "CPU per job: dispatcher / runner (+ its test processes) / observer",
                  f"{cpu['dispatcher']['own_ms_per_job']:.1f} / "
                  f"{cpu['runner']['own_ms_per_job']:.1f} "
                  f"(+{cpu['runner']['children_ms_per_job']:.1f}) / "
                  f"{cpu['observer']['own_ms_per_job']:.1f} ms", "")
        stages = latency_stages(c, samples)
        extra["latency"] = {"samples_ms": lat, "overhead_ms": over, "duration_ms": durs,
                            "git_commit_ms": commits, "stages_median_ms": stages,
                            "cpu": cpu, "watch": c.watch.how}
    finally:
        c.stop()


def git_commit_baseline(work, n):
    """The median time of a bare `git commit` on this machine: the part of the latency
    that is git's own."""
    repo = os.path.join(work, "git-baseline")
    os.makedirs(repo)
    git(repo, "init", "-q", "-b", "master")
    path = os.path.join(repo, "file.txt")
    times = []
    for i in range(n + 1):
        with open(path, "a") as f:
            f.write(f"{i}\n")
        if i == 0:
            git(repo, "add", "file.txt")
        t0 = time.monotonic()
        git(repo, "commit", "-q", "-a", "-m", f"change {i}")
        if i > 0:
            times.append((time.monotonic() - t0) * 1000)
    return statistics.median(times)


def latency_stages(c, samples):
    """Medians of the stages of a commit's way, from the daemons' logs (millisecond
    timestamps): where the time goes."""
    obs = c.observer.text().splitlines()
    run = c.runners[0].text().splitlines()
    disp = c.dispatcher.text().splitlines()

    def first(lines, *needles):
        for line in lines:
            if all(n in line for n in needles):
                return log_time(line)
        return None

    stages = {"git commit returned": [], "commit → job queued in the dispatcher": [],
              "job queued → runner accepted it": [], "runner accepted → test started": [],
              "test started → test ended (checkout, test)": [],
              "test ended → results delivered (spool, dispatcher)": [],
              "commit → dispatcher logged the result": []}
    for lat, _, commit_s, commit, wall0 in samples:
        t_queued = first(disp, "queued: " + commit)
        t_acc = first(run, "commit " + commit + ": accepted")
        t_run = first(run, "commit " + commit + ": running")
        t_end = first(run, "commit " + commit + ": passed (")
        m = None
        for line in run:
            if "commit " + commit + ": accepted" in line:
                m = re.search(r"job (\d+) attempt (\d+)", line)
                break
        if not m or None in (t_queued, t_acc, t_run, t_end):
            continue
        t_deliv = first(run, f"job {m.group(1)} attempt {m.group(2)}: results delivered")
        t_logged = first(disp, f"job {m.group(1)} passed")
        if None in (t_deliv, t_logged):
            continue
        stages["git commit returned"].append(commit_s)
        stages["commit → job queued in the dispatcher"].append(t_queued - wall0)
        stages["job queued → runner accepted it"].append(t_acc - t_queued)
        stages["runner accepted → test started"].append(t_run - t_acc)
        stages["test started → test ended (checkout, test)"].append(t_end - t_run)
        stages["test ended → results delivered (spool, dispatcher)"].append(t_deliv - t_end)
        stages["commit → dispatcher logged the result"].append(t_logged - wall0)
    return {k: round(statistics.median(v) * 1000, 2) if v else None for k, v in stages.items()}


def fast_import(repo, parent, count):
    """Makes `count` commits on master at once with git fast-import; returns their ids,
    oldest first."""
    chunks = []
    base = 1700000000
    for i in range(count):
        msg = f"bulk {i}\n".encode()
        content = f"{i}\n".encode()
        chunks.append(b"commit refs/heads/master\n")
        chunks.append(f"mark :{i + 1}\n".encode())
        chunks.append(f"committer Bench <bench@example.com> {base + i} +0000\n".encode())
        chunks.append(f"data {len(msg)}\n".encode() + msg)
        if i == 0:
            chunks.append(f"from {parent}\n".encode())
        chunks.append(b"M 100644 inline file.txt\n")
        chunks.append(f"data {len(content)}\n".encode() + content + b"\n")
    git(repo, "fast-import", "--quiet", stdin=b"".join(chunks))
    return git(repo, "rev-list", "--reverse", f"{parent}..master").split()


def bench_throughput(ctx, table, extra):
    """N commits made at once on one branch, the observer poked once, per-commit mode,
    test command `true`: jobs per second until every result file is there. A run that
    would take longer than the time budget is measured over the results that came
    within it (the table says how many)."""
    n = ctx.throughput_commits
    extra["throughput"] = {}
    runs = [(r, [], "") for r in ctx.throughput_runners]
    if ctx.throughput_diagnostic:
        # The same with a dispatcher that pings every 10 ms: how fast the rest of the
        # system is when a runner marked busy is found idle again almost at once.
        runs.append((4, ["--heartbeat-interval", "0.01"], "heartbeat 0.01 s, diagnostic"))
    for runners, dispatcher_args, label in runs:
        key = f"{runners}" + (" diagnostic" if label else "")
        c = Cluster(ctx.bins, ctx.work, "throughput-" + key.replace(" ", "-"))
        try:
            c.start_dispatcher(*dispatcher_args)
            for _ in range(runners):
                c.start_runner("true")
            c.start_observer()
            commits = fast_import(c.master, c.first, n)
            if len(commits) != n:
                raise BenchError(f"fast-import made {len(commits)} commits, not {n}")
            t0 = time.monotonic()
            c.notify()
            done, t_last = c.watch.wait_some(commits, ctx.throughput_budget)
            if not done:
                raise BenchError(f"no result within {ctx.throughput_budget:g} s")
            seconds = t_last - t0
            rate = done / seconds
            target = 500 if runners == 4 and not label else None
            note = label
            if done < n:
                note = (note + "; " if note else "") + \
                    f"only {done} of {n} within the {ctx.throughput_budget:g} s budget"
            table.add("throughput", f"{n} trivial jobs, {runners} runner(s)", rate, "jobs/s",
                      target, better="higher", note=note)
            log = c.dispatcher.text()
            queued = [log_time(line) for line in log.splitlines() if " queued: " in line]
            handover = (queued[-1] - queued[0]) if len(queued) > 1 else None
            extra["throughput"][key] = {
                "commits": n, "results": done, "seconds": seconds, "jobs_per_s": rate,
                "jobs_queued": len(queued), "handover_seconds": handover,
                "busy_refusals": log.count(" is busy; job "), "requeued": log.count(" requeued: ")}
            if handover and len(queued) == n:
                table.add("throughput", f"observer handing {n} commits over, {runners} runner(s)",
                          n / handover, "commits/s", note=label)
        finally:
            c.stop()


def bench_sandbox(ctx, table, extra):
    """What the sandbox costs a job: one runner with the sandbox on (the default) and
    off, the same trivial test (`true`). Commits one after another through the hook
    (commit → result), then a batch of commits at once (jobs per second)."""
    n, batch = ctx.sandbox_commits, ctx.sandbox_batch
    medians, rates = {}, {}
    extra["sandbox"] = {}
    for mode in ("on", "off"):
        c = Cluster(ctx.bins, ctx.work, "sandbox-" + mode)
        try:
            c.start_dispatcher()
            c.start_runner("true", "--sandbox", mode)
            c.start_observer()
            env = c.install_hook()
            path = os.path.join(c.master, "file.txt")
            lat = []
            for i in range(n + 1):  # the first one warms up and is not counted
                with open(path, "a") as f:
                    f.write(f"{i}\n")
                t0 = time.monotonic()
                subprocess.run(["git", "-C", c.master, "commit", "-q", "-a", "-m", f"c{i}"],
                               env=env, check=True, stdout=subprocess.DEVNULL)
                commit = git(c.master, "rev-parse", "HEAD")
                t1 = c.watch.wait([commit], 30)
                if header_field(c.result_path(commit), "status") != "passed":
                    raise BenchError(f"sandbox {mode}: commit {commit} did not pass")
                if i > 0:
                    lat.append((t1 - t0) * 1000)
            medians[mode] = statistics.median(lat)
            head = git(c.master, "rev-parse", "HEAD")
            commits = fast_import(c.master, head, batch)
            t0 = time.monotonic()
            c.notify()
            done, t_last = c.watch.wait_some(commits, 60)
            if not done:
                raise BenchError(f"sandbox {mode}: no result of the batch within 60 s")
            rates[mode] = done / (t_last - t0)
            extra["sandbox"][mode] = {"latency_ms": lat, "batch": batch, "results": done,
                                      "jobs_per_s": rates[mode]}
            table.add("sandbox", f"commit → result p50, sandbox {mode} ({n} commits)",
                      medians[mode], "ms")
            table.add("sandbox", f"{batch} trivial jobs, 1 runner, sandbox {mode}", rates[mode],
                      "jobs/s", better="higher")
        finally:
            c.stop()
    table.add("sandbox", "cost of the sandbox per job (p50 latency, on − off)",
              medians["on"] - medians["off"], "ms", 5)
    table.add("sandbox", "cost of the sandbox per job (from jobs/s, on − off)",
              1000 / rates["on"] - 1000 / rates["off"], "ms", 5)


def run_generator(ctx, port, *args, stdin=None):
    return subprocess.Popen([os.path.join(ctx.bins, "ci-load-generator"), "--dispatcher",
                             f"127.0.0.1:{port}", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=stdin, text=True)


def bench_capacity(ctx, table, extra):
    """The load generator plays M runners against a real dispatcher (real SQLite
    store): jobs per second through it, and the dispatch latency."""
    extra["capacity"] = {}
    runs = [(m, None) for m in ctx.capacity_runners]
    if ctx.capacity_diagnostic and os.access("/dev/shm", os.W_OK):
        # The same at 1,000 runners with the state and the result files in memory
        # (tmpfs): what the dispatcher does when flushing to disk costs nothing.
        runs.append((1000, tempfile.mkdtemp(prefix="ci-bench-", dir="/dev/shm")))
    for m, shm in runs:
        key = f"{m}" + (" tmpfs" if shm else "")
        work = os.path.join(ctx.work, "capacity-" + key.replace(" ", "-"))
        os.makedirs(work)
        store = shm or work
        d = Daemon("dispatcher", [os.path.join(ctx.bins, "ci-dispatcher"), "--port", "0",
                                  "--results-dir", os.path.join(store, "test_results"),
                                  "--state-dir", os.path.join(store, "state")],
                   os.path.join(work, "dispatcher.log"))
        try:
            port = d.wait_port()
            gen = run_generator(ctx, port, "--runners", str(m), "--jobs", str(ctx.capacity_jobs),
                                "--paced-jobs", str(ctx.capacity_paced),
                                "--unloaded-jobs", str(ctx.capacity_unloaded),
                                "--budget", str(ctx.capacity_budget),
                                "--phase-seconds", str(ctx.capacity_phase),
                                "--deadline", str(ctx.deadline))
            out, err = gen.communicate()
            if gen.returncode != 0:
                raise BenchError(f"load generator with {m} runners failed ({gen.returncode}): "
                                 f"{err.strip()[-500:]}")
            res = json.loads(out)
            res["overtaken"] = overtaken_results(d.text())
            extra["capacity"][key] = res
            sat = res["saturated"]
            big = m == 1000 and not shm
            note = "state and results on tmpfs, diagnostic" if shm else ""
            if not sat["complete"]:
                note = (note + "; " if note else "") + (
                    f"only {sat['accepted']:,} within the {ctx.capacity_budget:g} s budget")
            table.add("capacity", f"M={m}: {sat['jobs']:,} jobs through the dispatcher",
                      sat["jobs_per_s"], "jobs/s", 10000 if big else None, better="higher",
                      note=note)
            if "paced" in res:
                paced, unl = res["paced"], res["unloaded"]
                table.add("capacity", f"M={m}: dispatch OK → runtest p50, at "
                          f"{paced['target_per_s']:.0f} jobs/s", paced["latency"]["p50_ms"], "ms",
                          note=note)
                table.add("capacity", f"M={m}: dispatch OK → runtest p99, at "
                          f"{paced['target_per_s']:.0f} jobs/s", paced["latency"]["p99_ms"], "ms",
                          2 if big else None, note=note)
                if m == 1000:
                    table.add("capacity", f"M={m}: dispatch OK → runtest p99, one job at a time",
                              unl["latency"]["p99_ms"], "ms", note=note)
                    table.add("capacity", f"M={m}: dispatch sent → runtest p99, at "
                              f"{paced['target_per_s']:.0f} jobs/s",
                              paced["latency_from_send"]["p99_ms"], "ms", note=note)
            if res["overtaken"]:
                table.add("capacity", f"M={m}: results that overtook the runner's OK",
                          res["overtaken"], "", note="the runner is freed at once all the same")
            if res["repeated_runtests"] or res["result_errors"]:
                table.add("capacity", f"M={m}: jobs offered again after their result",
                          res["repeated_runtests"], "",
                          note=f"{res['result_errors']} results refused")
        finally:
            d.stop()
            if shm:
                shutil.rmtree(shm, ignore_errors=True)


def overtaken_results(log):
    """Jobs whose result the dispatcher recorded with no "running on" before it: the
    result came in before the dispatcher had handled the runner's OK to the runtest."""
    running, overtaken = set(), 0
    for line in log.splitlines():
        m = re.search(r" job (\d+) attempt \d+ running on ", line)
        if m:
            running.add(m.group(1))
            continue
        m = re.search(r" job (\d+) passed on ", line)
        if m and m.group(1) not in running:
            overtaken += 1
    return overtaken


def bench_memory(ctx, table, extra):
    """Peak RSS (VmHWM) of each daemon idle; of the dispatcher with 1,000 runners and
    100,000 queued jobs; the rise of each daemon's while a job prints 50 MiB."""
    extra["memory"] = {}
    c = Cluster(ctx.bins, ctx.work, "memory-idle")
    try:
        c.start_dispatcher()
        c.start_runner("true")
        c.start_observer()
        time.sleep(ctx.idle_seconds)
        idle = {"dispatcher": c.dispatcher.memory(), "runner": c.runners[0].memory(),
                "observer": c.observer.memory()}
    finally:
        c.stop()
    extra["memory"]["idle"] = idle
    for name, target in (("dispatcher", 8), ("runner", 6), ("observer", 6)):
        table.add("memory", f"{name} idle, peak RSS", idle[name]["VmHWM"] / MiB, "MiB", target)
    if ctx.quick:
        return

    # The dispatcher with 1,000 runners registered (all BUSY) and 100,000 jobs queued.
    work = os.path.join(ctx.work, "memory-queue")
    os.makedirs(work)
    d = Daemon("dispatcher", [os.path.join(ctx.bins, "ci-dispatcher"), "--port", "0",
                              "--results-dir", os.path.join(work, "test_results"),
                              "--state-dir", os.path.join(work, "state")],
               os.path.join(work, "dispatcher.log"))
    gen = None
    try:
        port = d.wait_port()
        gen = run_generator(ctx, port, "--mode", "fill", "--runners", str(ctx.fill_runners),
                            "--jobs", str(ctx.fill_jobs), stdin=subprocess.PIPE)
        line = gen.stdout.readline()
        if not line:
            raise BenchError(f"load generator (fill) failed: {gen.stderr.read().strip()[-500:]}")
        filled = json.loads(line)
        # A few heartbeats, so that every runner has been pinged (and its connection kept).
        time.sleep(5)
        mem = d.memory()
        fds = len(os.listdir(f"/proc/{d.pid}/fd"))
        threads = len(os.listdir(f"/proc/{d.pid}/task"))
        extra["memory"]["queued"] = dict(filled, **mem, fds=fds, threads=threads)
        table.add("memory", f"dispatcher, {ctx.fill_runners:,} runners + "
                  f"{filled['queued']:,} queued, peak RSS", mem["VmHWM"] / MiB, "MiB", 64)
        table.add("memory", "dispatcher open descriptors in that state", fds, "")
    finally:
        if gen:
            gen.stdin.close()
            try:
                gen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                gen.kill()
        d.stop()

    # Every daemon while a job prints 50 MiB, a reporter following with a client on
    # its event stream, the log read back through the reporter once the job is done.
    import reporting
    c = Cluster(ctx.bins, ctx.work, "memory-output")
    stream = None
    try:
        c.start_dispatcher()
        c.start_runner("head -c 52428800 /dev/zero | tr '\\0' x")
        c.start_observer()
        reporter, port = reporting.start_reporter(c)
        stream = reporting.EventStream(port, lambda kind, data, t: None)
        time.sleep(1)
        daemons = {"dispatcher": c.dispatcher, "runner": c.runners[0], "observer": c.observer,
                   "reporter": reporter}
        before = {k: v.memory() for k, v in daemons.items()}
        with open(os.path.join(c.master, "file.txt"), "a") as f:
            f.write("big\n")
        git(c.master, "commit", "-q", "-a", "-m", "prints 50 MiB")
        commit = git(c.master, "rev-parse", "HEAD")
        c.notify()
        c.watch.wait([commit], ctx.deadline)
        job = harness.Ctl(ctx.bins, f"127.0.0.1:{c.dispatcher_port}").jobs(1)[0]["id"]
        reporting.wait_caught_up(port, 1, 60)
        client = reporting.Http(port)
        offset, read = 0, 0
        while True:
            status, headers, body, _ = client.get(f"/api/jobs/{job}/log?offset={offset}&max=1048576")
            if status != 200:
                raise BenchError(f"GET /api/jobs/{job}/log: {status}")
            offset = int(headers.get("X-Log-Start", offset)) + len(body)
            read += len(body)
            if not body and headers.get("X-Log-Done") == "1":
                break
        client.close()
        time.sleep(0.5)
        after = {k: v.memory() for k, v in daemons.items()}
        size = os.path.getsize(c.result_path(commit))
        files, complete, head, tail, why = reporting.check_big_log(c, job, 52428800)
    finally:
        if stream:
            stream.close()
        c.stop()
    extra["memory"]["output"] = {"before": before, "after": after, "result_bytes": size,
                                 "log_files": files, "log_complete": complete,
                                 "log_read_through_reporter": read}
    for name in ("dispatcher", "runner", "observer", "reporter"):
        rise = (after[name]["VmHWM"] - before[name]["VmHWM"]) / MiB
        table.add("memory", f"{name} peak RSS rise, job printing 50 MiB", rise, "MiB", 16,
                  note="its log read through it too" if name == "reporter" else "")
    table.add("memory", "dispatcher's log of that job on disk", sum(files.values()) / MiB, "MiB",
              6, note=", ".join(f"{k} {v:,} B" for k, v in sorted(files.items())))
    table.add("memory", "that log read back: a head, one omitted marker, a tail, 50 MiB in all",
              "yes" if complete else "NO", "", note=why)
    table.add("memory", "bytes of that log kept (the cap: a 2 MiB head and a 2 MiB tail)",
              (head + tail) / MiB, "MiB", note=why)


def bench_micro(ctx, table, extra):
    """Google Benchmark: the protocol's parser and serializer, one scheduling decision,
    the crypto of one token handshake."""
    args = [os.path.join(ctx.bins, "ci-micro-bench"), "--benchmark_format=json"]
    if ctx.quick:
        args.append("--benchmark_min_time=0.05")
    proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise BenchError(f"ci-micro-bench failed: {proc.stderr.strip()[-500:]}")
    res = json.loads(proc.stdout)
    extra["micro"] = res["benchmarks"]
    names = {
        "BM_ParseDispatch": "frame + parse a dispatch",
        "BM_ParseResults4KiB": "frame + parse a results with 4 KiB body",
        "BM_SerializeDispatch": "serialize a dispatch",
        "BM_SerializeResults4KiB": "serialize a results with 4 KiB body",
        "BM_SerializeRuntest": "serialize a runtest",
        "BM_SchedulerDecision": "one scheduling decision, 1,000 runners, 100,000 queued",
        "BM_SchedulerDecisionCore": "the same without taking the changes for store and log",
        "BM_Handshake": "one token handshake's crypto, both sides (2 nonces, 4 HMACs)",
        "BM_PlanOrphanBranch": "observer: plan an 800-commit orphan branch pushed on a "
                               "20,000-commit history",
        "BM_PlanBackdatedOrphanBranch": "observer: the same, the orphan branch dated before "
                                        "the whole history",
    }
    scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}
    for b in res["benchmarks"]:
        base = b["name"].split("/")[0]
        if base not in names or b.get("error_occurred"):
            if b.get("error_occurred"):
                raise BenchError(f"{b['name']}: {b.get('error_message')}")
            continue
        ns = b["real_time"] * scale[b["time_unit"]]
        if base.startswith("BM_Plan"):
            # "Well under a second" even for a hostile push.
            table.add("micro", names[base], ns / 1e6, "ms", 1000)
            table.add("micro", names[base] + ": commits read by the walk", b["commits_read"],
                      "commits")
        elif ns >= 1000:
            table.add("micro", names[base], ns / 1000, "µs")
        else:
            table.add("micro", names[base], ns, "ns")


# ---------------------------------------------------------------------------------------


def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    return {"cores": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem / 2**30, 1),
            "kernel": platform.release(), "load_before": os.getloadavg()}


class Context:
    pass


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a run of a few seconds (for CI): small counts, idle memory only")
    parser.add_argument("--bin", default=os.path.join(ROOT, "build", "release-bench", "bin"),
                        help="folder of the executables")
    parser.add_argument("--only", action="append",
                        choices=["latency", "throughput", "sandbox", "capacity", "memory",
                                 "micro", "log", "event", "api", "streams", "catchup",
                                 "repos"],
                        help="run only this benchmark (repeatable)")
    parser.add_argument("--results", default=os.path.join(HERE, "results"),
                        help="folder for the JSON of the run")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--show", metavar="JSON",
                        help="print the table of an earlier run's JSON and exit")
    args = parser.parse_args()
    if args.show:
        with open(args.show) as f:
            saved = json.load(f)
        table = Table()
        table.rows = saved["rows"]
        print(table.render(markdown=args.markdown))
        return 0

    ctx = Context()
    ctx.quick = args.quick
    ctx.bins = os.path.abspath(args.bin)
    # The executables the chosen benchmarks run: `--only latency` runs against a build
    # without the load generator and the micro benchmarks.
    chosen = set(args.only or ["latency", "throughput", "sandbox", "capacity", "memory", "micro",
                               "log", "event", "api", "streams", "catchup", "repos"])
    needed = ["ci-dispatcher", "ci-runner", "ci-observer", "cictl", "ci-reporter"]
    if chosen & {"capacity", "memory", "api", "streams", "catchup"}:
        needed.append("ci-load-generator")
    if "micro" in chosen:
        needed.append("ci-micro-bench")
    for exe in needed:
        if not os.access(os.path.join(ctx.bins, exe), os.X_OK):
            print(f"bench: {exe} not found in {ctx.bins}; run scripts/bench.sh",
                  file=sys.stderr)
            return 2
    if args.quick:
        ctx.latency_commits = 10
        ctx.throughput_commits, ctx.throughput_runners = 50, [2]
        ctx.throughput_budget, ctx.throughput_diagnostic = 5, False
        ctx.capacity_runners, ctx.capacity_jobs = [10], 500
        ctx.capacity_paced, ctx.capacity_unloaded = 100, 50
        ctx.capacity_diagnostic = False
        ctx.capacity_budget, ctx.capacity_phase = 10, 3
        ctx.idle_seconds = 2
        ctx.sandbox_commits, ctx.sandbox_batch = 5, 20
    else:
        ctx.latency_commits = 100
        ctx.throughput_commits, ctx.throughput_runners = 1000, [1, 2, 4]
        ctx.throughput_budget, ctx.throughput_diagnostic = 120, True
        ctx.capacity_runners, ctx.capacity_jobs = [1, 10, 100, 1000], 20000
        ctx.capacity_paced, ctx.capacity_unloaded = 2000, 500
        ctx.capacity_diagnostic = True
        ctx.capacity_budget, ctx.capacity_phase = 120, 20
        ctx.idle_seconds = 5
        ctx.sandbox_commits, ctx.sandbox_batch = 50, 300
    ctx.fill_runners, ctx.fill_jobs = 1000, 100000
    # The reporting's benchmarks; --quick runs only a few lines of `log` and a few jobs
    # of `event`.
    ctx.log_lines, ctx.log_gap = (5, 0.01) if args.quick else (200, 0.02)
    ctx.event_jobs = 5 if args.quick else 200
    # 10,000 jobs through the dispatcher, copied in the read model up to 100,000.
    ctx.api_jobs, ctx.api_requests, ctx.api_real_jobs = 100000, 300, 10000
    ctx.streams = 500
    ctx.capacity_jobs_reporter, ctx.capacity_rounds = 20000, 3
    ctx.catchup_jobs = 10000
    # Many repositories (bench/repos.py): slots against runners, a new repository's first
    # result, the fair queue behind a backlog, a runner's idle memory with repositories.
    if args.quick:
        ctx.slots_jobs, ctx.slots_budget = 20, 10
        ctx.first_files, ctx.first_blob, ctx.first_trials = 200, MiB, 1
        ctx.fair_backlog, ctx.fair_trials, ctx.fair_job_s = 20, 2, 0.1
        ctx.memory_repos = 2
    else:
        ctx.slots_jobs, ctx.slots_budget = 1000, 120
        ctx.first_files, ctx.first_blob, ctx.first_trials = 3000, 20 * MiB, 5
        ctx.fair_backlog, ctx.fair_trials, ctx.fair_job_s = 1000, 30, 0.2
        ctx.memory_repos = 10
    ctx.deadline = 900

    ctx.work = tempfile.mkdtemp(prefix="ci-bench-")
    table = Table()
    extra = {}
    broken = False
    started = time.monotonic()
    benches = [("latency", bench_latency), ("throughput", bench_throughput),
               ("sandbox", bench_sandbox),
               ("capacity", bench_capacity), ("memory", bench_memory), ("micro", bench_micro)]
    import reporting
    benches += [("log", reporting.bench_log), ("event", reporting.bench_event)]
    import repos
    benches += [("repos", repos.bench_repos)]
    if not args.quick:
        benches += [("api", reporting.bench_api), ("streams", reporting.bench_streams),
                    ("catchup", reporting.bench_catchup)]
    info = machine()
    try:
        for name, fn in benches:
            if args.only and name not in args.only:
                continue
            t = time.monotonic()
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            try:
                fn(ctx, table, extra)
            except (BenchError, OSError, subprocess.SubprocessError, ValueError,
                    http.client.HTTPException) as e:
                broken = True
                table.error(name, str(e))
                print(f"bench: {name} broke: {e}", file=sys.stderr)
            print(f"bench: {name} took {time.monotonic() - t:.1f} s", file=sys.stderr,
                  flush=True)
    finally:
        if args.keep or broken:
            print(f"bench: work folder kept in {ctx.work}", file=sys.stderr)
        else:
            shutil.rmtree(ctx.work, ignore_errors=True)

    info["load_after"] = os.getloadavg()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True).stdout.strip()
    report = {"timestamp": stamp, "commit": commit, "quick": args.quick, "machine": info,
              "seconds": round(time.monotonic() - started, 1), "rows": table.rows,
              "details": extra}
    os.makedirs(args.results, exist_ok=True)
    out = os.path.join(args.results, f"{stamp}{'-quick' if args.quick else ''}.json")
    with open(out, "w") as f:
        json.dump(report, f, indent=1)
    sys.stderr.flush()
    print(table.render(markdown=args.markdown))
    print(f"\n{info['cores']} cores, {info['cpu']}, {info['memory_gib']} GiB; load average "
          f"{info['load_before'][0]:.2f} before, {info['load_after'][0]:.2f} after; "
          f"{report['seconds']:.0f} s; written to {os.path.relpath(out, ROOT)}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
