#!/usr/bin/env python3
"""The web console's end-to-end test in a real browser: headless Chromium over WebDriver.

Usage (scripts/console-test/install.sh makes the venv and installs Debian's chromium and
chromium-driver; docs/console.md):

  target/console-test-venv/bin/python scripts/console-test/run.py --aurora target/release/aurora
      [--database-url postgres://postgres@127.0.0.1:5432/postgres --nats-url nats://127.0.0.1:4222]
      [--out target/console] [--rate-limits shadow|presets|off|FILE]

It starts `aurora serve` of its own on a free loopback port with a fresh temporary data
dir (embedded mode: SQLite and the in-process bus), or, given --database-url (a server: a
fresh database aurora_console_<id> is made on it and dropped at the end) and --nats-url (a
fresh subject prefix aurora_console_<id>, whose streams are deleted at the end), on those.
It creates the first admin (`aurora admin create`), registers a user over the API, makes a
4 s clip with ffmpeg, then drives the console as people would: sign in, upload and start a
run, watch it succeed and play its video, create, narrow and revoke an API key (checking
the keys over HTTP), change the user's tier as the admin, read and verify the audit log,
the health and blocks pages, and quality checks (CSP, browser console errors, phone width,
403 page). Screenshots go to <out>/screenshots/NN-<page>.png (failed-<step>.png for a step
that failed), Aurora's log to <out>/aurora.log, chromedriver's to <out>/chromedriver.log.

Prints PASS/FAIL per step; exits 0 when every step passed, 1 when one failed, 2 when the
stack could not be set up. Aurora, chromedriver and Chromium are always stopped (their
process groups), the database dropped and the NATS streams deleted.

Synchronisation is by explicit conditions only (WebDriverWait, and polling /ready and the
API with deadlines): no sleep stands for "it should be done by now".
"""

import argparse
import calendar
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

# Selenium Manager must never try the network (only PyPI and Debian are reachable): the
# browser and the driver are given by path, and these keep it from phoning home.
os.environ["SE_AVOID_STATS"] = "true"
os.environ["SE_OFFLINE"] = "true"

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import (  # noqa: E402
    NoAlertPresentException,
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
TERMINAL = {"succeeded", "failed", "cancelled", "canceled"}

WAIT = 20  # seconds for a page to show what it should
RUN_WAIT = 90  # seconds for the run to finish
READY_WAIT = 60  # seconds for Aurora to answer /ready


class StepFailed(Exception):
    """A check did not hold: the message says what was seen."""


class Skipped(Exception):
    """A step that cannot run because an earlier one failed."""


def log(message):
    print(message, flush=True)


# ---------------------------------------------------------------------------------------
# HTTP (urllib only: no dependency but selenium)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def http(base, method, path, *, token=None, body=None, headers=None, timeout=15):
    """(status, headers, body bytes) of one request; never raises for an HTTP status."""
    url = path if path.startswith("http") else base + path
    data = None
    all_headers = {"accept": "application/json"}
    if body is not None:
        data = json.dumps(body).encode()
        all_headers["content-type"] = "application/json"
    if token:
        all_headers["authorization"] = f"Bearer {token}"
    all_headers.update(headers or {})
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with OPENER.open(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def poll(what, check, deadline_seconds, interval=0.2):
    """Calls check() until it returns a true value (returned) or the deadline passes."""
    deadline = time.monotonic() + deadline_seconds
    last = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise StepFailed(f"{what}: not within {deadline_seconds} s")
        time.sleep(interval)  # the interval of a poll with a deadline, not a synchronisation


# ---------------------------------------------------------------------------------------
# The stack: Postgres database, NATS prefix, Aurora


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def db_url(server_url, database):
    u = urllib.parse.urlsplit(server_url)
    return urllib.parse.urlunsplit(u._replace(path="/" + database))


def psql(server_url, sql):
    subprocess.run(["psql", "-q", "-X", "-v", "ON_ERROR_STOP=1", server_url, "-c", sql],
                   check=True, stdin=subprocess.DEVNULL, timeout=60)


def drop_stale_databases(server_url, older_than_seconds=3600):
    """Drops what killed runs left: aurora_console_<UTC time>_… databases over an hour old
    (a run takes a minute or two; a younger one may be another run's, in progress)."""
    listed = subprocess.run(
        ["psql", "-q", "-X", "-At", server_url, "-c",
         r"SELECT datname FROM pg_database WHERE datname LIKE 'aurora\_console\_%'"],
        capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL, timeout=60).stdout.split()
    now = time.time()
    for name in listed:
        found = re.fullmatch(r"aurora_console_(\d{14})_\d+_[0-9a-f]+", name)
        if not found:
            continue
        made = calendar.timegm(time.strptime(found.group(1), "%Y%m%d%H%M%S"))
        if now - made > older_than_seconds:
            log(f"dropping {name}, left by a run that did not finish")
            psql(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def shadow_presets():
    """The shipped rate-limit presets with every class in shadow mode, as scripts/load
    makes them: requests are classified and counted as in production, never refused (the
    whole test comes from one client address)."""
    source = (ROOT / "domain/src/limits/policy.rs").read_text()
    found = re.search(r'pub const PRESETS: &str = r#"(.*?)"#;', source, re.S)
    if not found:
        raise RuntimeError("no PRESETS in domain/src/limits/policy.rs")
    lines = ["# The shipped presets, every class in shadow mode (made by scripts/console-test)."]
    for line in found.group(1).split("\n"):
        if re.match(r"\s*mode\s*=", line):
            continue
        lines.append(line)
        if line.strip() == "[[class]]":
            lines.append('mode = "shadow"')
    return "\n".join(lines) + "\n"


class Stack:
    """One Aurora of this test's own, made and torn down."""

    def __init__(self, args, out):
        self.args = args
        self.out = out
        self.binary = str(Path(args.aurora).resolve())
        self.id = f"{time.strftime('%Y%m%d%H%M%S', time.gmtime())}_{os.getpid()}_{secrets.token_hex(3)}"
        self.work = Path(tempfile.mkdtemp(prefix="aurora-console-"))
        self.database = None
        self.prefix = None
        self.process = None
        self.log_file = None
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ)

    def start(self):
        env = self.env
        # Only this test's settings (AURORA_LOG may come from outside: the log's level).
        for name in list(env):
            if name in ("DATABASE_URL", "NATS_URL") or (name.startswith("AURORA_") and name != "AURORA_LOG"):
                del env[name]
        data = self.work / "data"
        data.mkdir()
        env.update({
            "AURORA_LISTEN": f"127.0.0.1:{self.port}",
            "AURORA_DATA_DIR": str(data),
            "AURORA_LOG_DIR": "off",
            "AURORA_LOG": env.get("AURORA_LOG", "info,warp=warn"),
            "AURORA_DRAIN_SECONDS": "2",
            "AURORA_ENVIRONMENT": "console-test",
        })
        limits = self.args.rate_limits
        if limits == "shadow":
            path = self.work / "rate-limits.toml"
            path.write_text(shadow_presets())
            limits = str(path)
        env["AURORA_RATE_LIMITS"] = limits
        if self.args.database_url:
            drop_stale_databases(self.args.database_url)
            self.database = f"aurora_console_{self.id}"
            psql(self.args.database_url, f"CREATE DATABASE {self.database}")
            env["DATABASE_URL"] = db_url(self.args.database_url, self.database)
        if self.args.nats_url:
            self.prefix = f"aurora_console_{self.id}"
            env["NATS_URL"] = self.args.nats_url
            env["AURORA_NATS_PREFIX"] = self.prefix
        log(f"aurora: {self.binary}, {self.base}, data {data}"
            + (f", database {self.database}" if self.database else ", SQLite")
            + (f", NATS prefix {self.prefix}" if self.prefix else ", in-process bus"))

        # The admin first, as scripts/load does: it applies the migrations and makes the
        # root keys the server then uses.
        self.admin = "admin"
        self.admin_password = "admin-" + secrets.token_urlsafe(18)
        made = subprocess.run([self.binary, "admin", "create", "--username", self.admin],
                              input=self.admin_password + "\n", env=env, capture_output=True,
                              text=True, timeout=120)
        if made.returncode != 0:
            raise RuntimeError(f"aurora admin create failed: {made.stderr.strip()[-2000:]}")

        self.log_file = open(self.out / "aurora.log", "w")
        self.process = subprocess.Popen([self.binary, "serve"], env=env, stdout=self.log_file,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)

        def ready():
            if self.process.poll() is not None:
                raise RuntimeError(f"aurora exited at start ({self.process.returncode}): "
                                   f"see {self.out / 'aurora.log'}\n{self.log_tail()}")
            try:
                return http(self.base, "GET", "/ready", timeout=2)[0] == 200
            except OSError:
                return False

        try:
            poll("GET /ready answering 200", ready, READY_WAIT)
        except StepFailed as error:
            raise RuntimeError(f"{error}\n{self.log_tail()}") from None

        self.user = "ada-" + secrets.token_hex(3)
        self.user_password = "user-" + secrets.token_urlsafe(18)
        status, _, body = http(self.base, "POST", "/api/v1/auth/register",
                               body={"username": self.user, "password": self.user_password})
        if status != 201:
            raise RuntimeError(f"POST /api/v1/auth/register: {status} {body[:500]!r}")

        self.clip = self.work / "clip.mp4"
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
             "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
             "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
             "-t", "4", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast",
             "-c:a", "aac", "-b:a", "96k", "-movflags", "+faststart", "-shortest",
             str(self.clip)],
            check=True, stdin=subprocess.DEVNULL, timeout=120)

    def log_tail(self, lines=25, problems_only=False):
        try:
            text = (self.out / "aurora.log").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        if problems_only:
            text = [line for line in text if re.search(r'"level":"(WARN|ERROR)"|\b(WARN|ERROR)\b', line)]
        return "\n".join("  aurora| " + line for line in text[-lines:]) or "  (none)"

    def stop(self):
        problems = []
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                problems.append("aurora did not stop within 20 s of SIGTERM: killed")
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait(timeout=10)
        if self.process is not None:
            # What it started (ffmpeg) goes with it.
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.log_file:
            self.log_file.close()
        if self.database:
            try:
                psql(self.args.database_url, f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")
            except Exception as error:  # noqa: BLE001
                problems.append(f"dropping database {self.database}: {error}")
        if self.prefix:
            stem = self.prefix.upper().replace("-", "_")
            tool = [sys.executable, str(ROOT / "deploy/load/nats_streams.py"), "--url", self.args.nats_url]
            try:
                listed = subprocess.run(tool + ["list", stem + "_"], capture_output=True, text=True,
                                        check=True, timeout=30).stdout.split()
                if listed:
                    subprocess.run(tool + ["delete"] + listed, capture_output=True, check=True, timeout=30)
            except Exception as error:  # noqa: BLE001
                problems.append(f"deleting the NATS streams of {self.prefix}: {error}")
        shutil.rmtree(self.work, ignore_errors=True)
        for problem in problems:
            log(f"cleanup: {problem}")


# ---------------------------------------------------------------------------------------
# The browser


def start_browser(out, profile_dir):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
        "--autoplay-policy=no-user-gesture-required", "--mute-audio",
        # Offline: nothing of Chromium's own reaches for the network.
        "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-default-apps",
        f"--user-data-dir={profile_dir}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER, log_output=str(out / "chromedriver.log"),
                      popen_kw={"start_new_session": True})
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(20)
    return driver, service


def stop_browser(driver, service):
    pid = None
    try:
        pid = service.process.pid if service and service.process else None
    except Exception:  # noqa: BLE001
        pass
    if driver is not None:
        try:
            driver.quit()
        except Exception as error:  # noqa: BLE001
            log(f"cleanup: driver.quit(): {error}")
    if pid:
        try:
            os.killpg(pid, signal.SIGKILL)  # chromedriver and the Chromium it started
        except (ProcessLookupError, PermissionError):
            pass


class Console:
    """The console in the browser: navigation, waits, checks, evidence."""

    def __init__(self, driver, base, shots):
        self.d = driver
        self.base = base
        self.shots = shots
        self.browser_log = []  # every entry of the browser's console, in order

    # -- evidence --
    def drain_log(self):
        try:
            entries = self.d.get_log("browser")
        except WebDriverException:
            return []
        self.browser_log.extend(entries)
        return entries

    def screenshot(self, name):
        path = self.shots / f"{name}.png"
        try:
            size = self.d.execute_script(
                "return [Math.max(document.documentElement.scrollWidth, innerWidth),"
                " Math.min(Math.max(document.documentElement.scrollHeight, innerHeight), 4000)]")
            shot = self.d.execute_cdp_cmd("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1},
            })
            import base64

            path.write_bytes(base64.b64decode(shot["data"]))
        except Exception:  # noqa: BLE001
            self.d.save_screenshot(str(path))
        return path

    def visible_text(self, limit=3000):
        try:
            text = self.d.find_element(By.TAG_NAME, "body").text
        except WebDriverException as error:
            return f"(no text: {error.msg})"
        return text if len(text) <= limit else text[:limit] + " …"

    # -- navigation and waiting --
    def go(self, route):
        """Opens #<route> of the console (a same-document navigation once it is loaded)."""
        self.d.get(f"{self.base}/console/#{route}")

    def wait(self, condition, what, timeout=WAIT, allow_error=False, poll=0.1):
        """Waits for condition(driver) to be truthy and returns it. Fails at once, with the
        message, when the page shows an error notice (unless allow_error)."""

        def check(d):
            if not allow_error:
                notice = d.execute_script(
                    "const n = document.querySelector('#main div.notice.error');"
                    "return n ? [n.dataset.status || '', n.textContent.trim()] : null")
                if notice:
                    raise StepFailed(f"while waiting for {what}, the page shows an error "
                                     f"(data-status={notice[0]!r}): {notice[1]!r}")
            try:
                return condition(d)
            except (NoSuchElementException, StaleElementReferenceException):
                return False

        try:
            return WebDriverWait(self.d, timeout, poll_frequency=poll,
                                 ignored_exceptions=(StaleElementReferenceException,)).until(check)
        except TimeoutException:
            raise StepFailed(f"{what}: not within {timeout} s") from None

    def el(self, css, what=None, timeout=WAIT):
        def find(d):
            found = d.find_elements(By.CSS_SELECTOR, css)
            return found[0] if found else False

        return self.wait(find, what or f"{css} on the page", timeout)

    def settled(self, what="the page to load", timeout=WAIT):
        """Main is no longer 'Loading…'."""
        self.wait(lambda d: d.execute_script(
            "const m = document.getElementById('main');"
            "return !!m && !m.querySelector('.loading, [aria-busy=\"true\"]')"
            " && m.textContent.trim().length > 0"), what, timeout)

    def click(self, css_or_element, what=None):
        element = css_or_element
        if isinstance(css_or_element, str):
            element = self.el(css_or_element, what)
        self.d.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        self.wait(lambda d: element.is_displayed() and element.is_enabled(),
                  what or "an element to be clickable")
        element.click()

    def type(self, css, text):
        element = self.el(css)
        element.clear()
        element.send_keys(text)
        return element

    def check_box(self, css, on=True):
        box = self.el(css)
        if box.is_selected() != on:
            self.click(box, f"{css} to be clickable")
        self.wait(lambda d: box.is_selected() == on, f"{css} to be {'on' if on else 'off'}")

    def text(self, css):
        return self.el(css).text.strip()

    def accept_confirm(self, timeout=3):
        """Accepts a confirm() the page opens, if it opens one within the timeout."""
        try:
            WebDriverWait(self.d, timeout, poll_frequency=0.1).until(EC.alert_is_present())
        except TimeoutException:
            return None
        try:
            alert = self.d.switch_to.alert
            message = alert.text
            alert.accept()
            return message
        except NoAlertPresentException:
            return None

    def sign_in(self, username, password):
        self.go("/sign-in")
        self.el("#username", "the sign-in form")
        self.type("#username", username)
        self.type("#password", password)
        self.click("#sign-in")
        self.wait(lambda d: username in d.find_element(By.ID, "whoami").text,
                  f"#whoami to show {username}")

    def sign_out(self):
        button = self.d.find_element(By.ID, "sign-out")
        self.d.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
        button.click()
        self.wait(lambda d: d.find_elements(By.ID, "username"), "the sign-in form after signing out",
                  allow_error=True)

    def whoami(self):
        found = self.d.find_elements(By.ID, "whoami")
        return found[0].text if found else ""

    def overflow(self):
        """Elements sticking out to the right of the viewport (for the phone-width check)."""
        return self.d.execute_script(r"""
          const w = window.innerWidth, out = [];
          for (const e of document.body.querySelectorAll('*')) {
            const r = e.getBoundingClientRect();
            if (r.width > 0 && r.right > w + 1) {
              out.push(e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
                (typeof e.className === 'string' && e.className ? '.' + e.className.trim().split(/\s+/).join('.') : '') +
                ` (right ${Math.round(r.right)} px)`);
            }
          }
          return {scrollWidth: document.documentElement.scrollWidth, innerWidth: w, out: out.slice(0, 8)};
        """)


# ---------------------------------------------------------------------------------------
# The test


class Test:
    def __init__(self, stack, console):
        self.s = stack
        self.c = console
        self.results = []  # (step, outcome, seconds, detail)
        self.run_id = None
        self.key = None
        self.key_label = None
        self.narrowed = None

    def step(self, name, title, function, needs=()):
        log(f"\n--- {name}: {title}")
        started = time.monotonic()
        outcome, detail = "PASS", ""
        try:
            for need in needs:
                if not getattr(self, need):
                    raise Skipped(f"needs {need}, which an earlier step did not provide")
            detail = function() or ""
        except Skipped as skipped:
            outcome, detail = "SKIP", str(skipped)
        except Exception as error:  # noqa: BLE001
            outcome = "FAIL"
            detail = str(error) if isinstance(error, StepFailed) else \
                f"{type(error).__name__}: {error}\n{traceback.format_exc()}"
            self.evidence(name)
        self.c.drain_log()
        seconds = time.monotonic() - started
        self.results.append((name, outcome, seconds, detail))
        log(f"{outcome} {name} ({seconds:.1f} s){': ' + detail if detail else ''}")

    def evidence(self, name):
        """What a failed step leaves: a screenshot, the page's text, the browser's log."""
        try:
            path = self.c.screenshot(f"failed-{name}")
            log(f"  screenshot: {path}")
            log(f"  url: {self.c.d.current_url}")
            log("  visible text:\n" + "\n".join("    " + line for line in self.c.visible_text().splitlines()))
        except Exception as error:  # noqa: BLE001
            log(f"  (no screenshot: {error})")
        entries = self.c.drain_log()
        log("  browser log (this step):" + ("" if entries else " empty"))
        for entry in entries:
            log(f"    {entry.get('level')} {entry.get('source')}: {entry.get('message')}")
        log("  aurora log (its last warnings and errors):\n" + self.s.log_tail(10, problems_only=True))

    # a. sign in
    def sign_in(self):
        c = self.c
        c.d.get(self.s.base + "/")
        c.wait(lambda d: d.current_url.startswith(self.s.base + "/console/"),
               "GET / to redirect to /console/")
        c.el("#username", "the sign-in form (#username)")
        c.el("#password")
        c.el("#sign-in")
        c.screenshot("01-sign-in")
        c.type("#username", self.s.user)
        c.type("#password", self.s.user_password)
        c.click("#sign-in")
        c.wait(lambda d: self.s.user in d.find_element(By.ID, "whoami").text,
               f"#whoami to show {self.s.user}")
        return f"redirected to {urllib.parse.urlsplit(c.d.current_url).path}; #whoami: {c.text('#whoami')!r}"

    # b. new run
    def new_run(self):
        c = self.c
        c.go("/runs/new")
        c.el("form#new-run-form", "form#new-run-form")
        c.el("input#media-file").send_keys(str(self.s.clip))

        def uploaded(d):
            state = d.execute_script("""
              const p = document.querySelector('progress#upload-progress');
              const t = document.querySelector('#upload-text');
              const b = document.querySelector('button#start-run');
              const i = document.querySelector('#media-info');
              const e = document.querySelector('#new-run-form .field-error:not(:empty)');
              return {value: p ? p.value : null, max: p ? p.max : null,
                      text: t ? t.textContent.trim() : null, start: b ? !b.disabled : null,
                      accepted: i ? i.textContent.trim().length > 0 : /uploaded/i.test(t ? t.textContent : ''),
                      error: e ? e.textContent.trim() : null};""")
            if state["error"]:
                raise StepFailed(f"the upload was refused: {state['error']!r} ({state['text']!r})")
            done = state["max"] and state["value"] >= state["max"] and state["start"] and state["accepted"]
            return state if done else False

        state = c.wait(uploaded, "progress#upload-progress at its max and the media accepted (#media-info)")
        c.check_box("#step-probe")
        c.check_box("#step-transcode")
        Select(c.el("select#transcode-format")).select_by_value("webm")
        quality = Select(c.el("select#transcode-quality"))
        values = [o.get_attribute("value") for o in quality.options]
        if "low" in values:
            quality.select_by_value("low")
        resolution = Select(c.el("select#transcode-resolution"))
        values = [o.get_attribute("value") for o in resolution.options]
        sized = sorted((int(v[:-1]), v) for v in values if re.fullmatch(r"\d+p", v or ""))
        chosen = "360p" if "360p" in values else (sized[0][1] if sized else values[0])
        resolution.select_by_value(chosen)
        c.check_box("#step-thumbnail")
        c.type("input#thumbnail-at", "1")
        c.screenshot("03-new-run-upload")
        c.click("button#start-run")
        found = c.wait(lambda d: re.search(rf"#/runs/({UUID})$", d.current_url),
                       "the URL to become #/runs/<uuid> after #start-run")
        self.run_id = found.group(1)
        return (f"upload {state['value']}/{state['max']} ({state['text']!r}); "
                f"webm at {chosen}, thumbnail at 1 s; run {self.run_id}")

    # c. run page
    def run_page(self):
        c = self.c
        if not re.search(rf"#/runs/{self.run_id}$", c.d.current_url):
            c.go(f"/runs/{self.run_id}")
        c.el("#run-status", "#run-status")
        seen = {"max": None, "values": [], "statuses": []}

        def finished(d):
            state = d.execute_script("""
              const s = document.querySelector('#run-status');
              const p = document.querySelector('progress#step-progress');
              const t = document.querySelector('#progress-text');
              return {status: s ? (s.dataset.status || s.textContent).trim().toLowerCase() : null,
                      text: s ? s.textContent.trim() : null,
                      value: p && p.position >= 0 ? p.value : null, max: p ? p.max : null,
                      progressText: t ? t.textContent.trim() : null};""")
            if state["value"] is not None and state["max"]:
                percent = round(100 * state["value"] / state["max"], 1)
                if not seen["values"] or seen["values"][-1] != percent:
                    seen["values"].append(percent)
                seen["max"] = percent if seen["max"] is None else max(seen["max"], percent)
            if not seen["statuses"] or seen["statuses"][-1] != state["status"]:
                seen["statuses"].append(state["status"])
            seen["last"] = state
            return state if state["status"] in TERMINAL else False

        state = c.wait(finished, f"#run-status to reach a final status (seen {seen['statuses']})",
                       timeout=RUN_WAIT, poll=0.05)
        summary = (f"statuses {seen['statuses']}, #step-progress values seen {seen['values'][:30]}, "
                   f"#progress-text {state['progressText']!r}")
        if state["status"] != "succeeded":
            raise StepFailed(f"the run ended {state['status']!r} ({state['text']!r}); {summary}")
        # Once the run is over the bar stays in the transcode step it measured: it must
        # show that step done, at 100 %, and every step of ol#timeline must have succeeded.
        bar_script = ("const p = document.querySelector('progress#step-progress');"
                      "return p && p.isConnected && p.position >= 0 ? 100 * p.value / p.max : null")
        try:
            bar = c.wait(lambda d: d.execute_script(bar_script) == 100 and 100,
                         "progress#step-progress at 100 %", timeout=10, poll=0.05)
        except Exception:
            bar = c.d.execute_script(bar_script)
        steps = c.d.execute_script(
            "return [...document.querySelectorAll('ol#timeline > li[data-step]')].map(li => li.dataset.state)")
        all_done = bool(steps) and all(state == "succeeded" for state in steps)
        if not (all_done and bar == 100):
            raise StepFailed(f"the run succeeded but the progress did not reach 100 %: steps {steps}, "
                             f"bar now {bar}; {summary}")
        summary += f"; timeline {steps}, bar at the end: {'removed' if bar is None else bar}"
        status_text = c.text("#run-status")
        if status_text.lower() != "succeeded":
            raise StepFailed(f"#run-status text is {status_text!r}, its data-status succeeded")

        # The video is looked up afresh each time: the page may render the artifacts once
        # more as the run ends (a replaced player is played again).
        video = "document.querySelector('video#artifact-video')"
        c.el("video#artifact-video", "video#artifact-video")
        c.d.execute_script(f"{video}.scrollIntoView({{block: 'center'}})")
        c.wait(lambda d: d.execute_script(f"const v = {video}; return v && v.readyState >= 2"),
               "video#artifact-video readyState >= 2 (HAVE_CURRENT_DATA)")
        played = c.d.execute_async_script(
            f"const v = {video}, done = arguments[arguments.length - 1];"
            "v.muted = true; v.consoleTestPlayed = true;"
            "v.play().then(() => done('ok'), e => done(String(e)));")
        if played != "ok":
            raise StepFailed(f"video.play() was refused: {played}")

        def advancing(d):
            state = d.execute_script(
                f"const v = {video}; if (!v) return null;"
                "if (!v.consoleTestPlayed) { v.consoleTestPlayed = true; v.muted = true; v.play().catch(() => {}); }"
                "return {t: v.currentTime, error: v.error && v.error.code}")
            if state and state["error"]:
                raise StepFailed(f"the video has a media error {state['error']}")
            return bool(state) and state["t"] >= 0.5

        c.wait(advancing, "the video's currentTime to advance past 0.5 s after play()")
        facts = c.d.execute_script(
            f"const v = {video}; v.pause();"
            "return {w: v.videoWidth, h: v.videoHeight, duration: v.duration, t: v.currentTime}")

        c.wait(lambda d: d.execute_script(
            "return [...document.querySelectorAll('img.thumb')]"
            ".some(i => i.complete && i.naturalWidth > 0)"), "an img.thumb with naturalWidth > 0")
        thumb = c.d.execute_script(
            "const i = [...document.querySelectorAll('img.thumb')].find(i => i.naturalWidth > 0);"
            "return [i.naturalWidth, i.naturalHeight]")
        links = c.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "table#artifacts-table a.download"),
                       "table#artifacts-table with a.download links")
        hrefs = [a.get_property("href") for a in links]
        # Fetched by the page, as following the link would (the session cookie is the
        # browser's: HttpOnly, Path=/api/).
        for href in hrefs:
            got = c.d.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "fetch(arguments[0], {credentials: 'same-origin'})"
                ".then(r => r.arrayBuffer().then(b => done([r.status, b.byteLength])))"
                ".catch(e => done([0, String(e)]));", href)
            if got[0] != 200 or not got[1]:
                raise StepFailed(f"download {href} in the page: status {got[0]}, {got[1]} bytes")
        c.d.execute_script("arguments[0].scrollIntoView({block: 'start'})", c.el("#run-status"))
        c.screenshot("04-run-succeeded")
        return (f"{summary}; video {facts['w']}x{facts['h']} {facts['duration']:.1f} s played to "
                f"{facts['t']:.2f} s; thumbnail {thumb[0]}x{thumb[1]}; {len(hrefs)} downloads fetched")

    # the runs list, with the run in it
    def runs_list(self):
        c = self.c
        c.go("/runs")
        css = f"table#runs-table tr[data-run-id='{self.run_id}']"
        c.el(css, "the run's row in table#runs-table")
        c.el("select#status-filter")
        c.wait(lambda d: "succeeded" in d.find_element(By.CSS_SELECTOR, css).text.lower(),
               "the run's row to say succeeded")
        text = " ".join(c.d.find_element(By.CSS_SELECTOR, css).text.split())
        c.el("#prev-page")
        c.el("#next-page")
        c.wait(lambda d: d.find_element(By.ID, "live-state").get_attribute("data-state") == "live",
               "#live-state to be live (the runs feed connected)")
        c.screenshot("02-runs")
        rows = len(c.d.find_elements(By.CSS_SELECTOR, "table#runs-table tr[data-run-id]"))

        # The status filter: the run leaves the list for "failed", is back for "succeeded".
        def pick(value):
            Select(c.d.find_element(By.CSS_SELECTOR, "select#status-filter")).select_by_value(value)

        pick("failed")
        c.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, css), "the run to leave the list filtered on failed")
        pick("succeeded")
        c.el(css, "the run back in the list filtered on succeeded")
        pick("")
        c.el(css, "the run in the unfiltered list")
        return f"{rows} row(s); the run's: {text!r}; #live-state live; the status filter works"

    # d. API keys: create, narrow, check over HTTP, revoke
    def keys(self):
        c = self.c
        c.go("/keys")
        self.key_label = "console-test-" + secrets.token_hex(2)
        c.type("input#key-label", self.key_label)
        c.click("button#create-key")
        secret = c.wait(lambda d: d.find_element(By.CSS_SELECTOR, "code#new-key-secret").text.strip(),
                        "code#new-key-secret to show the new key")
        self.key = secret
        row = c.wait(lambda d: [r for r in d.find_elements(By.CSS_SELECTOR, "table#keys-table tr[data-token-id]")
                                if self.key_label in r.text] or False,
                     f"the key {self.key_label!r} in table#keys-table")[0]
        self.key_row_id = row.get_attribute("data-token-id")

        source = c.el("textarea#narrow-source")
        if source.get_property("value").strip() != secret:
            source.clear()
            c.d.execute_script("arguments[0].value = arguments[1];"
                               "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));",
                               source, secret)
        c.check_box("#narrow-read-only")
        c.click("button#narrow-key")
        narrowed = c.wait(lambda d: d.find_element(By.CSS_SELECTOR, "code#narrowed-key").text.strip(),
                          "code#narrowed-key to show the narrowed key")
        if narrowed == secret:
            raise StepFailed("code#narrowed-key shows the key itself, not a narrowed one")
        self.narrowed = narrowed
        c.screenshot("05-keys")

        base = self.s.base
        status, _, body = http(base, "GET", "/api/v1/runs", token=secret)
        if status != 200:
            raise StepFailed(f"GET /api/v1/runs with the new key: {status} {body[:300]!r}")
        status, _, body = http(base, "GET", "/api/v1/runs", token=narrowed)
        if status != 200 or self.run_id.encode() not in body:
            raise StepFailed(f"GET /api/v1/runs with the narrowed key: {status}, "
                             f"run {'listed' if self.run_id.encode() in body else 'not listed'}: {body[:300]!r}")
        spec = {"input": {"url": "https://media.example/clip.mp4"}, "steps": [{"kind": "probe"}]}
        status, _, body = http(base, "GET", f"/api/v1/runs/{self.run_id}", token=narrowed)
        if status == 200:
            run = json.loads(body)
            found = run.get("spec", run)
            if isinstance(found.get("input"), dict):
                spec["input"] = found["input"]
        status, _, body = http(base, "POST", "/api/v1/runs", token=narrowed, body=spec)
        if status != 403:
            raise StepFailed(f"POST /api/v1/runs {json.dumps(spec)} with the read-only narrowed key: "
                             f"{status} (want 403) {body[:300]!r}")

        revoke = c.el(f"table#keys-table tr[data-token-id='{self.key_row_id}'] .revoke-key",
                      "the key's .revoke-key")
        c.click(revoke)
        confirmed = c.accept_confirm()
        c.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, f"tr[data-token-id='{self.key_row_id}']")
               or "revoked" in d.find_element(By.CSS_SELECTOR, f"tr[data-token-id='{self.key_row_id}']").text.lower(),
               "the revoked key to leave table#keys-table")

        def refused():
            a = http(base, "GET", "/api/v1/runs", token=secret)[0]
            b = http(base, "GET", "/api/v1/runs", token=narrowed)[0]
            refused.last = (a, b)
            return a == 401 and b == 401

        try:
            poll("the revoked key and its narrowed key to get 401", refused, 10)
        except StepFailed:
            raise StepFailed(f"after revoking, GET /api/v1/runs answers {refused.last[0]} to the key and "
                             f"{refused.last[1]} to the narrowed key (want 401 and 401)") from None
        return (f"key {self.key_row_id} ({self.key_label}); narrowed read-only key: GET /api/v1/runs 200 "
                f"with the run, POST /api/v1/runs 403; revoked (confirm: {confirmed!r}); both now 401")

    # h. at phone width
    def phone(self):
        c = self.c
        c.d.set_window_size(390, 844)
        try:
            problems, facts = [], []
            for route, ready, shot in (
                ("/runs", f"table#runs-table tr[data-run-id='{self.run_id}']", "10-phone-runs"),
                (f"/runs/{self.run_id}", "#run-status", None),
                ("/keys", "input#key-label", None),
            ):
                c.go(route)
                c.el(ready, f"{ready} at phone width")
                c.settled()
                size = c.overflow()
                if shot:
                    c.screenshot(shot)
                facts.append(f"{route}: scrollWidth {size['scrollWidth']} for innerWidth {size['innerWidth']}")
                if size["scrollWidth"] > size["innerWidth"] + 1:
                    problems.append(f"{route} overflows horizontally: scrollWidth {size['scrollWidth']} > "
                                    f"innerWidth {size['innerWidth']}; sticking out: {size['out']}")
            if problems:
                raise StepFailed("; ".join(problems))
            return "; ".join(facts)
        finally:
            c.d.set_window_size(1280, 900)

    # h. the 403 page
    def forbidden(self):
        c = self.c
        c.go("/admin/users")
        c.wait(lambda d: "not allowed" in d.find_element(By.ID, "main").text.lower(),
               "a 'not allowed' message on #/admin/users for a user", allow_error=True)
        notice = c.d.find_elements(By.CSS_SELECTOR, "#main div.notice.error[data-status='403']")
        if not notice:
            raise StepFailed("no div.notice.error[data-status='403'] on the 403 page")
        admin_links = c.d.find_elements(By.CSS_SELECTOR, "nav a[href^='#/admin']")
        if admin_links:
            raise StepFailed(f"a user's navigation shows admin links: {[a.text for a in admin_links]}")
        c.screenshot("11-forbidden")
        return f"{notice[0].text.strip()!r}"

    # e. the admin changes the user's tier
    def as_admin(self):
        c = self.c
        if c.whoami().split(" ")[0] == self.s.admin:
            return
        if c.whoami():
            c.sign_out()
        c.sign_in(self.s.admin, self.s.admin_password)

    def users(self):
        c = self.c
        self.as_admin()
        c.go("/admin/users")
        css = f"table#users-table tr[data-username='{self.s.user}']"
        row = c.el(css, f"the user's row ({css})")
        before = row.find_element(By.CSS_SELECTOR, "td.tier").text.strip()
        select = Select(row.find_element(By.CSS_SELECTOR, "select.tier-select"))
        values = [o.get_attribute("value") for o in select.options]
        current = select.first_selected_option.get_attribute("value")
        target = "pro" if "pro" in values and current != "pro" else next(v for v in values if v != current)
        select.select_by_value(target)  # the page applies a change of the select (PATCH)
        c.wait(lambda d: d.find_element(By.CSS_SELECTOR, f"{css} td.tier").text.strip().lower() == target,
               f"td.tier of {self.s.user} to show {target}")
        c.screenshot("06-users")
        c.d.refresh()
        c.wait(lambda d: d.find_element(By.CSS_SELECTOR, f"{css} td.tier").text.strip().lower() == target,
               f"td.tier of {self.s.user} to show {target} after a reload")
        return f"tier {before!r} → {target!r}, kept after a reload"

    # f. audit
    def audit(self):
        c = self.c
        self.as_admin()
        c.go(f"/admin/audit?resource={self.run_id}")
        c.el("table#audit-table", "table#audit-table")
        wanted = ("RunRequested", "RunSucceeded")
        last_filter = [time.monotonic()]

        def entries(d):
            text = " ".join(r.text for r in d.find_elements(By.CSS_SELECTOR, "table#audit-table tr.audit-entry"))
            if all(w in text for w in wanted):
                return text
            # The audit log is a projection: ask again now and then until it caught up.
            if time.monotonic() - last_filter[0] > 2:
                last_filter[0] = time.monotonic()
                box = d.find_element(By.CSS_SELECTOR, "#audit-resource")
                if box.get_property("value") != self.run_id:
                    box.clear()
                    box.send_keys(self.run_id)
                d.find_element(By.CSS_SELECTOR, "#audit-filter").click()
            return False

        text = c.wait(entries, f"tr.audit-entry rows with {' and '.join(wanted)} of the run")
        rows = c.d.execute_script(
            "return [...document.querySelectorAll('table#audit-table tr.audit-entry')].map(r => r.textContent)")
        others = [r for r in rows if self.run_id not in r and self.run_id[:8] not in r]
        c.click("#audit-verify")
        result = c.wait(lambda d: (d.find_element(By.CSS_SELECTOR, "#audit-verify-result")
                                   .get_attribute("data-result") or "") not in ("", "pending", "running")
                        and d.find_element(By.CSS_SELECTOR, "#audit-verify-result"),
                        "#audit-verify-result[data-result] to be set")
        verdict = result.get_attribute("data-result")
        c.screenshot("07-audit")
        if verdict != "ok":
            raise StepFailed(f"#audit-verify-result data-result={verdict!r}: {result.text!r}")
        actions = [a for a in re.findall(r"\b(Run[A-Z]\w+|Step[A-Z]\w+)\b", text)]
        note = f"; {len(others)} row(s) not naming the run" if others else ""
        return (f"{len(rows)} entries ({', '.join(dict.fromkeys(actions))}){note}; "
                f"verify: {result.text.strip()!r}")

    # g. health and blocks
    def health_blocks(self):
        c = self.c
        self.as_admin()
        c.go("/admin/health")
        services = c.wait(lambda d: d.find_element(By.ID, "health-services").text.strip(),
                          "#health-services to show the services")
        c.settled()
        # The live figures: a second sample (every 2 s) makes a line of the charts.
        c.wait(lambda d: d.execute_script(
            "return [...document.querySelectorAll('.chart polyline')].some(p =>"
            " new Set((p.getAttribute('points') || '').trim().split(/\\s+/)).size >= 2)"),
            "a .chart to draw a line of two samples", timeout=15)
        c.screenshot("08-health")
        charts = len(c.d.find_elements(By.CSS_SELECTOR, ".chart"))
        lags = bool(c.d.find_elements(By.CSS_SELECTOR, "#projection-lags"))
        if not lags or not charts:
            raise StepFailed(f"the health page has {'no' if not lags else 'a'} #projection-lags and {charts} .chart")
        c.go("/admin/blocks")
        c.settled("the blocks page")
        table = c.d.find_elements(By.CSS_SELECTOR, "table#blocks-table")
        if not table:
            text = c.d.find_element(By.ID, "main").text.strip()
            if not re.search(r"\bno\b|none|empty", text, re.I):
                raise StepFailed(f"no table#blocks-table and no empty state: {text[:300]!r}")
            shown = f"empty state {text[:80]!r}"
        else:
            blocks = c.d.execute_script(
                "const t = document.querySelector('table#blocks-table');"
                "return [t.querySelectorAll('tr[data-key]').length, !!t.querySelector('tr.empty, #blocks-empty')]")
            shown = f"table#blocks-table, {blocks[0]} block(s){' (its empty state)' if blocks[1] else ''}"
        c.screenshot("09-blocks")
        return (f"#health-services {' '.join(services.split())[:80]!r}…, #projection-lags "
                f"{'present' if lags else 'absent'}, {charts} .chart; blocks: {shown}")

    # h. CSP and the browser's console
    def csp_and_log(self):
        status, headers, _ = http(self.s.base, "GET", "/console/", headers={"accept": "text/html"})
        problems = []
        csp = headers.get("content-security-policy") if headers else None
        if status != 200:
            problems.append(f"GET /console/ answered {status}")
        if not csp:
            problems.append("GET /console/ has no Content-Security-Policy header")
        elif "unsafe-inline" in csp:
            problems.append(f"the Content-Security-Policy allows 'unsafe-inline': {csp}")
        self.c.drain_log()
        severe = [e for e in self.c.browser_log if e.get("level") == "SEVERE"]
        bad = [e for e in severe if e.get("source") in ("javascript", "security")
               or re.search(r"Content[- ]Security[- ]Policy|Refused to|Uncaught", e.get("message", ""), re.I)]
        for entry in severe:
            log(f"  browser SEVERE {'(counts) ' if entry in bad else ''}{entry.get('source')}: {entry.get('message')}")
        if bad:
            problems.append(f"{len(bad)} CSP violation(s) or uncaught error(s) in the browser's console: "
                            + " | ".join(e.get("message", "")[:300] for e in bad[:5]))
        server_errors = [e for e in severe if re.search(r"status of 5\d\d", e.get("message", ""))]
        if server_errors:
            problems.append(f"{len(server_errors)} server error(s) (5xx) answered to the console: "
                            + " | ".join(e.get("message", "")[:300] for e in server_errors[:5]))
        if problems:
            raise StepFailed("; ".join(problems))
        return (f"CSP: {csp}; browser log: {len(self.c.browser_log)} entries, {len(severe)} SEVERE "
                f"(refusals the console expects), none a CSP violation, an uncaught error or a 5xx")

    def run(self):
        self.step("a-sign-in", "/ redirects to /console/; sign in as the user", self.sign_in)
        self.step("b-new-run", "upload the clip, choose the steps, start the run", self.new_run)
        self.step("c-run-page", "progress to 100 %, succeeded, video plays, thumbnail, downloads",
                  self.run_page, needs=("run_id",))
        self.step("runs-list", "the runs list shows the run", self.runs_list, needs=("run_id",))
        self.step("d-keys", "create, narrow (read-only) and revoke an API key; checked over HTTP",
                  self.keys, needs=("run_id",))
        self.step("h-phone-width", "no horizontal overflow at 390x844", self.phone, needs=("run_id",))
        self.step("h-forbidden", "a user on #/admin/users sees 'not allowed'", self.forbidden)
        self.step("e-users", "the admin changes the user's tier; kept after a reload", self.users)
        self.step("f-audit", "the run's events in the audit log; the chain verifies",
                  self.audit, needs=("run_id",))
        self.step("g-health-blocks", "#/admin/health and #/admin/blocks render", self.health_blocks)
        self.step("h-csp-console", "CSP without 'unsafe-inline'; no CSP violation, uncaught error or 5xx",
                  self.csp_and_log)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--aurora", required=True, help="the aurora binary")
    parser.add_argument("--database-url", help="a Postgres server URL: a fresh database is made on it")
    parser.add_argument("--nats-url", help="a NATS JetStream URL: a fresh subject prefix is used on it")
    parser.add_argument("--out", default=str(ROOT / "target/console"),
                        help="where screenshots (<out>/screenshots) and logs go (default target/console)")
    parser.add_argument("--rate-limits", default="shadow",
                        help="shadow (the presets, never refusing; default), presets, off, or a policy file")
    args = parser.parse_args()

    out = Path(args.out).resolve()
    shots = out / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    for old in shots.glob("*.png"):
        old.unlink()
    mode = ("Postgres" if args.database_url else "SQLite") + " + " + ("NATS" if args.nats_url else "in-process bus")
    log(f"console browser test ({mode}); screenshots in {shots}")

    # SIGTERM (a CI's timeout, scripts/test's cleanup) stops like ^C: through the finally.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    stack = Stack(args, out)
    driver = service = None
    test = None
    interrupted = None
    started = time.monotonic()
    try:
        try:
            stack.start()
            driver, service = start_browser(out, stack.work / "chromium-profile")
        except Exception as error:  # noqa: BLE001
            log(f"FAIL setup: {error}")
            if not isinstance(error, (RuntimeError, subprocess.CalledProcessError)):
                traceback.print_exc()
            return 2
        test = Test(stack, Console(driver, stack.base, shots))
        test.run()
    except (KeyboardInterrupt, SystemExit) as stop:
        interrupted = 130 if isinstance(stop, KeyboardInterrupt) else (stop.code or 1)
        log(f"\ninterrupted ({'SIGINT' if interrupted == 130 else 'SIGTERM'}): stopping Aurora and the browser")
    finally:
        stop_browser(driver, service)
        stack.stop()

    log(f"\n=== console browser test ({mode}): {time.monotonic() - started:.0f} s")
    results = test.results if test else []
    for name, outcome, seconds, _ in results:
        log(f"{outcome:4} {name} ({seconds:.1f} s)")
    failed = [r for r in results if r[1] != "PASS"]
    log(f"console: {len(results) - len(failed)} passed, {len(failed)} failed"
        + (", interrupted" if interrupted else ""))
    log(f"screenshots: {shots}; aurora log: {out / 'aurora.log'}")
    if interrupted:
        return interrupted
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())
