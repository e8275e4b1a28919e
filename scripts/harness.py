"""The project's daemons as processes, for the scripts that drive a whole system
(scripts/chaos.py, bench/bench.py): start, stop and kill them, wait for a line in a
log or for the port they listen on, and ask the dispatcher what it is doing through
`cictl --json` (never by reading reply text ourselves)."""

import json
import os
import re
import signal
import socket
import subprocess
import time


class HarnessError(Exception):
    """Something broke: a daemon did not start or exited, a wait timed out, git or
    cictl failed."""


def git_env(name):
    """An environment for git commits by `name`, free of the machine's git config."""
    email = f"{name.lower()}@example.com"
    return dict(os.environ, GIT_AUTHOR_NAME=name, GIT_AUTHOR_EMAIL=email,
                GIT_COMMITTER_NAME=name, GIT_COMMITTER_EMAIL=email,
                GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)


def git(repo, *args, env=None, stdin=None):
    """Runs git in `repo`; returns its output, stripped."""
    proc = subprocess.run(["git", "-C", repo, *args], env=env or git_env("Harness"),
                          input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise HarnessError(f"git {' '.join(args)} in {repo}: {proc.stderr.decode().strip()}")
    return proc.stdout.decode().strip()


def wait_for(condition, timeout, what, step=0.01):
    """Calls condition() until it returns something true, which it returns; raises
    HarnessError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise HarnessError(f"timed out after {timeout:g} s waiting for {what}")


def free_port():
    """A loopback port free at the moment (the kernel's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """A daemon of the project as a real process, its output appended to a log file.
    It may be started again after it was killed or stopped."""

    def __init__(self, name, argv, log, cwd=None, stdin=None):
        self.name, self.argv, self.log = name, argv, log
        self.cwd, self.stdin = cwd, stdin
        self.proc = None

    def start(self):
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT,
                stdin=self.stdin if self.stdin is not None else subprocess.DEVNULL, cwd=self.cwd)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def check_running(self):
        if not self.running():
            code = self.proc.returncode if self.proc else None
            raise HarnessError(f"{self.name} exited ({code}); see {self.log}")

    def wait_log(self, pattern, timeout=30):
        """Waits for `pattern` (a regular expression) in the log; returns the match."""
        rx = re.compile(pattern)

        def found():
            self.check_running()
            return rx.search(self.text())
        return wait_for(found, timeout, f"{self.name} to log '{pattern}'", step=0.02)

    def wait_port(self, timeout=30):
        """The port the daemon logged it listens on."""
        m = self.wait_log(r"listening on [0-9.]+:(\d+)", timeout)
        return int(m.group(1))

    def kill(self):
        """SIGKILL, and reap."""
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout=15):
        """SIGTERM; SIGKILL if it has not exited within `timeout` seconds."""
        if self.running():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()


class Ctl:
    """The built cictl, asking with --json: each answer is the one JSON object cictl
    prints (see src/ctl/ctl.h for its shapes)."""

    def __init__(self, bin_dir, server, token_file=None, timeout=5.0):
        self.cictl = os.path.join(bin_dir, "cictl")
        self.server, self.token_file, self.timeout = server, token_file, timeout

    def run(self, *args, server=True):
        """Runs `cictl --json <args>`; returns its object, or raises HarnessError with
        cictl's reason."""
        argv = [self.cictl, "--json", "--timeout", f"{self.timeout:g}"]
        if server:
            argv += ["--dispatcher-server", self.server]
        if self.token_file:
            argv += ["--token-file", self.token_file]
        argv += list(args)
        try:
            proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL, timeout=self.timeout + 10)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise HarnessError(f"cictl {' '.join(args)}: {e}") from e
        try:
            answer = json.loads(proc.stdout)
        except ValueError as e:
            raise HarnessError(f"cictl {' '.join(args)} printed no JSON (exit {proc.returncode}): "
                               f"{proc.stderr.decode(errors='replace').strip()}") from e
        if proc.returncode != 0 or "error" in answer:
            raise HarnessError(f"cictl {' '.join(args)}: {answer.get('error', '?')}")
        return answer

    def status(self):
        return self.run("status")

    def runners(self):
        return self.run("runners")["runners"]

    def jobs(self, limit=1000000):
        return self.run("jobs", "--limit", str(limit))["jobs"]

    def notify(self, observer):
        return self.run("notify", "--observer", observer, server=False)

    def try_status(self):
        """The status, or None while the dispatcher cannot answer."""
        try:
            return self.status()
        except HarnessError:
            return None
