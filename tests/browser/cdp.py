"""A headless Chromium driven through its DevTools protocol: start it with a fresh
profile, open a page, evaluate JavaScript in it, wait for what it shows, take a
screenshot. Debian's `chromium` and `python3-websocket` (scripts/install-deps.sh
--with-test-tools)."""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

import websocket


class BrowserError(Exception):
    pass


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise BrowserError("no chromium on PATH (scripts/install-deps.sh --with-test-tools installs it)")


class Browser:
    """One headless browser with one page. Use as a context manager."""

    def __init__(self, width=1280, height=900, timeout=30):
        self.profile = tempfile.mkdtemp(prefix="tinyci-browser-")
        self.timeout = timeout
        argv = [find_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-dev-shm-usage",
                f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
                f"--window-size={width},{height}", "about:blank"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.ws = None
        self.next_id = 0
        try:
            self._connect()
        except Exception:
            self.close()
            raise

    def _connect(self):
        # Chromium writes the port it chose into the profile once it listens.
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + self.timeout
        while not os.path.exists(port_file) or os.path.getsize(port_file) == 0:
            if self.proc.poll() is not None:
                raise BrowserError("chromium exited: " + self.proc.stderr.read().decode()[-2000:])
            if time.monotonic() > deadline:
                raise BrowserError("chromium did not start its DevTools server")
            time.sleep(0.05)
        port = int(open(port_file).read().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            targets = json.load(r)
        page = next(t for t in targets if t.get("type") == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=self.timeout)
        self.call("Page.enable")
        self.call("Runtime.enable")

    def call(self, method, **params):
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def open(self, url):
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", f"{url} to load")

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def text(self):
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def wait_for(self, expression, what, timeout=None):
        """Waits until `expression` is truthy in the page; returns its value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out waiting for {what}; the page shows:\n"
                                   + self.text()[:3000])
            time.sleep(0.05)

    def wait_text(self, needle, timeout=None):
        return self.wait_for(f"document.body && document.body.innerText.includes({json.dumps(needle)})",
                             f"the page to show {needle!r}", timeout)

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        if self.ws:
            try:
                self.ws.close()
            except Exception:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
