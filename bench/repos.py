"""The benchmarks of many repositories: slots against runners, a new repository's
first result on a runner that provisions itself, the fair queue, and the idle memory
of a runner with slots and cloned repositories. Each function takes the suite's
context, table and details, as in bench.py.

Named repositories are announced and their commits dispatched with the line protocol
itself (`repo <name> <url>`, `dispatch <commit> master repo=<name>`), so that the
figures measure the daemons and not cictl's start-up."""

import json
import os
import socket
import statistics
import subprocess
import time

import bench as core
from bench import BenchError, MiB, percentile


def call(port, line, timeout=10):
    """Sends one request line to the dispatcher; returns (words of the reply's first
    line, body). The body is read when the reply is `OK <len>` to a verb that has one
    (job, repos, jobs, runners, status)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(line.encode() + b"\n")
        data = b""
        while b"\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                raise BenchError(f"`{line}`: the dispatcher closed the connection")
            data += chunk
        head, _, rest = data.partition(b"\n")
        words = head.decode(errors="replace").split()
        if not words or words[0] != "OK":
            raise BenchError(f"`{line}`: {head.decode(errors='replace')}")
        verb = line.split()[0]
        if verb in ("job", "repos", "jobs", "runners", "status") and len(words) == 2:
            size = int(words[1])
            while len(rest) < size:
                chunk = s.recv(65536)
                if not chunk:
                    raise BenchError(f"`{line}`: reply cut short")
                rest += chunk
            return words, rest[:size].decode(errors="replace")
        return words, ""


def announce(port, name, url):
    call(port, f"repo {name} {url}")


def dispatch(port, repo, commit):
    """Queues a commit of a named repository; returns its job id."""
    words, _ = call(port, f"dispatch {commit} master repo={repo}")
    return int(words[1])


def job_info(port, job):
    _, body = call(port, f"job {job}")
    return json.loads(body)


def make_repo(path, files=0, blob_bytes=0):
    """A repository with one commit of file.txt (and `files` small files and a blob of
    `blob_bytes` random bytes); returns its commit id."""
    os.makedirs(path)
    core.git(path, "init", "-q", "-b", "master")
    with open(os.path.join(path, "file.txt"), "w") as f:
        f.write("0\n")
    for i in range(files):
        d = os.path.join(path, "many", str(i // 100))
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, str(i)), "w") as f:
            f.write(f"{i}\n")
    if blob_bytes:
        with open(os.path.join(path, "blob"), "wb") as f:
            f.write(os.urandom(blob_bytes))
    core.git(path, "add", "-A")
    core.git(path, "commit", "-q", "-m", "first")
    return core.git(path, "rev-parse", "HEAD")


def start_workdir_runner(c, test_command, *extra):
    """A runner that provisions itself: only --workdir, no clone of its own."""
    i = len(c.runners)
    runner = core.Daemon(f"runner{i}", [
        c.bin("ci-runner"), "--port", "0",
        "--dispatcher-server", f"127.0.0.1:{c.dispatcher_port}",
        "--workdir", os.path.join(c.dir, f"runner{i}.work"),
        "--test-command", test_command, *extra],
        os.path.join(c.dir, f"runner{i}.log"))
    c.daemons.append(runner)
    c.runners.append(runner)
    runner.wait_log("registered with the dispatcher")
    return runner


def watch(c, repo):
    """A ResultWatch on test_results/<repo>/ (made first, so that it can be watched)."""
    folder = os.path.join(c.results, repo)
    os.makedirs(folder, exist_ok=True)
    w = core.ResultWatch(folder)
    c.extra_watches = getattr(c, "extra_watches", []) + [w]
    return w


def stop(c):
    c.stop()
    for w in getattr(c, "extra_watches", []):
        w.close()


def slots_run(ctx, name, runners, slots):
    """Jobs per second of `ctx.slots_jobs` trivial jobs of one named repository on
    `runners` runners of `slots` slots each, after a first job that provisioned it."""
    c = core.Cluster(ctx.bins, ctx.work, name)
    try:
        c.start_dispatcher()
        announce(c.dispatcher_port, "a", c.master)
        results = watch(c, "a")
        for _ in range(runners):
            start_workdir_runner(c, "true", "--slots", str(slots))
        commits = core.fast_import(c.master, c.first, ctx.slots_jobs + runners)
        # One job a runner first, so that every runner has the repository.
        warm, rest = commits[:runners], commits[runners:]
        for commit in warm:
            dispatch(c.dispatcher_port, "a", commit)
        results.wait(warm, ctx.deadline)
        t0 = time.monotonic()
        for commit in rest:
            dispatch(c.dispatcher_port, "a", commit)
        done, t_last = results.wait_some(rest, ctx.slots_budget)
        if not done:
            raise BenchError(f"no result within {ctx.slots_budget:g} s")
        return done / (t_last - t0), done
    finally:
        stop(c)


def bench_repos(ctx, table, extra):
    details = extra.setdefault("repos", {})

    # (a) One runner of 4 slots against four runners of 1 slot.
    one, done_one = slots_run(ctx, "repos-slots-1x4", 1, 4)
    four, done_four = slots_run(ctx, "repos-slots-4x1", 4, 1)
    details["slots"] = {"one_runner_4_slots": one, "four_runners_1_slot": four,
                        "jobs": ctx.slots_jobs, "done": [done_one, done_four]}
    table.add("repos", f"{ctx.slots_jobs} trivial jobs, 4 runners of 1 slot", four, "jobs/s")
    table.add("repos", f"{ctx.slots_jobs} trivial jobs, 1 runner of 4 slots", one, "jobs/s",
              0.9 * four, better="higher", note="target: within 10 % of 4 runners of 1 slot")

    # (b) A new repository's first commit to its result, on a runner that has never seen
    # it, beside the time `git clone` takes to clone that repository alone.
    c = core.Cluster(ctx.bins, ctx.work, "repos-first")
    try:
        big = os.path.join(c.dir, "big")
        commit = make_repo(big, files=ctx.first_files, blob_bytes=ctx.first_blob)
        clones = []
        for i in range(ctx.first_trials):
            t = time.monotonic()
            subprocess.run(["git", "clone", "-q", big, os.path.join(c.dir, f"clone{i}")],
                           check=True, env=core.GIT_ENV)
            clones.append(time.monotonic() - t)
        c.start_dispatcher()
        start_workdir_runner(c, "true")
        firsts = []
        for i in range(ctx.first_trials):
            name = f"new{i}"  # the same URL under a new name: a repository not seen yet
            results = watch(c, name)
            announce(c.dispatcher_port, name, big)
            t = time.monotonic()
            dispatch(c.dispatcher_port, name, commit)
            firsts.append(results.wait([commit], ctx.deadline) - t)
    finally:
        stop(c)
    clone_s = statistics.median(clones)
    first_s = statistics.median(firsts)
    details["first"] = {"files": ctx.first_files, "blob_bytes": ctx.first_blob,
                        "clone_s": clones, "first_result_s": firsts}
    table.add("repos", f"`git clone` of a repository of {ctx.first_files:,} files + "
              f"{ctx.first_blob / MiB:g} MiB, median", clone_s * 1000, "ms")
    table.add("repos", "its first commit to its result on a runner that never saw it, median",
              first_s * 1000, "ms", (clone_s + 0.05) * 1000, note="target: clone time + 50 ms")

    # (c) With a backlog on repository A, how long repository B's new commit waits to start.
    c = core.Cluster(ctx.bins, ctx.work, "repos-fair")
    try:
        b_dir = os.path.join(c.dir, "b")
        b_first = make_repo(b_dir)
        c.start_dispatcher()
        announce(c.dispatcher_port, "a", c.master)
        announce(c.dispatcher_port, "b", b_dir)
        b_results = watch(c, "b")
        start_workdir_runner(c, f"sleep {ctx.fair_job_s}")
        backlog = core.fast_import(c.master, c.first, ctx.fair_backlog)
        b_commits = core.fast_import(b_dir, b_first, ctx.fair_trials)
        # B provisioned first, so that the figure is the queue's and not the clone's.
        dispatch(c.dispatcher_port, "b", b_first)
        b_results.wait([b_first], ctx.deadline)
        for commit in backlog:
            dispatch(c.dispatcher_port, "a", commit)
        waits, durations = [], []
        for commit in b_commits:
            t = time.time()
            job = dispatch(c.dispatcher_port, "b", commit)
            b_results.wait([commit], ctx.deadline)
            started = job_info(c.dispatcher_port, job).get("started_ms", 0)
            if not started:
                raise BenchError(f"job {job} has no start time")
            waits.append(max(0.0, started / 1000 - t))
            durations.append(float(core.header_field(os.path.join(b_results.folder, commit),
                                                     "duration").split()[0]))
        queued = int(dict(line.split(None, 1) for line in call(
            c.dispatcher_port, "status")[1].splitlines())["jobs-queued"])
    finally:
        stop(c)
    p99 = percentile(waits, 99)
    job_s = statistics.median(durations)
    details["fair"] = {"backlog": ctx.fair_backlog, "waits_s": waits, "durations_s": durations,
                       "queued_at_end": queued}
    table.add("repos", "one job's duration (sleep), median", job_s * 1000, "ms")
    table.add("repos", f"{ctx.fair_backlog:,} queued on A: B's new commit waits to start, "
              f"p99 of {len(waits)}", p99 * 1000, "ms", job_s * 1000,
              note=f"target: one job's duration; {queued:,} of A still queued at the end")

    # (d) Idle memory: 4 slots and 10 repositories cloned, against 1 slot with a clone.
    c = core.Cluster(ctx.bins, ctx.work, "repos-memory")
    try:
        c.start_dispatcher()
        plain = c.start_runner("true")
        many = start_workdir_runner(c, "true", "--slots", "4")
        # The positional runner takes default-repository jobs only: the named ones go
        # to the runner with --workdir.
        names = []
        for i in range(ctx.memory_repos):
            name = f"r{i}"
            path = os.path.join(c.dir, name)
            commit = make_repo(path, files=100)
            announce(c.dispatcher_port, name, path)
            w = watch(c, name)
            dispatch(c.dispatcher_port, name, commit)
            names.append((w, commit))
        for w, commit in names:
            w.wait([commit], ctx.deadline)
        time.sleep(ctx.idle_seconds)
        plain_mem, many_mem = plain.memory(), many.memory()
    finally:
        stop(c)
    details["memory"] = {"one_slot_clone": plain_mem, "four_slots_repos": many_mem,
                         "repos": ctx.memory_repos}
    table.add("repos", "runner idle, 1 slot, a clone, RSS", plain_mem["VmRSS"] / MiB, "MiB")
    table.add("repos", f"runner idle, 4 slots, {ctx.memory_repos} repositories cloned, RSS",
              many_mem["VmRSS"] / MiB, "MiB", plain_mem["VmRSS"] / MiB + 4,
              note=f"target: the 1-slot figure + 4 MiB; peak {many_mem['VmHWM'] / MiB:.1f} MiB")
