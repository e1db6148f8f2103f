#!/usr/bin/env python3
"""The operators' console in a real browser (headless Chromium through Selenium and chromium-driver).

Starts `envoy serve` and `envoy worker` on the Redis of ENVOY_TEST_REDIS_URL (a key prefix of their own), with
Mailgun pointed at a mock here that refuses every message (400) until told to accept. Then, as an operator would:
sign-in refused without the token; sign in; see the email queue's dead count rise, without reloading, as sign-ups
queue welcome emails that Mailgun refuses; open a dead task, retry it once Mailgun accepts, see it complete; an
action without its CSRF token refused; a limited address looked up and reset, its next request admitted. A screenshot of each page goes to the report directory (argument 2).
Usage: console.py ENVOY_BINARY REPORT_DIR. Ends with `browser: N passed, N failed`; exits 1 if any failed.
"""
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.support.ui import WebDriverWait as SeleniumWait


def WebDriverWait(browser, seconds, poll_frequency=0.2):
    """A wait that looks again when the page changed under it (an element of the page a click just left)."""
    return SeleniumWait(
        browser, seconds, poll_frequency=poll_frequency,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))

def gone(element):
    """A wait condition: `element`'s page has been left. Chromium answers a question about an element of a page it is
    leaving either as stale or, mid-navigation, with an inspector error ("Node … does not belong to the document"):
    both mean gone."""
    def check(_):
        try:
            element.is_enabled()
            return False
        except WebDriverException:
            return True
    return check


TOKEN = "browser-test-admin-token-0123456789abcdef"
SIGN_UPS = 3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MockMailgun(http.server.BaseHTTPRequestHandler):
    """POST /v3/DOMAIN/messages: 400 while `accepting` is false, else 200 with a message id."""

    accepting = False
    received = []

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if MockMailgun.accepting:
            MockMailgun.received.append(body)
            reply, status = {"id": f"<{len(MockMailgun.received)}@mock>", "message": "Queued. Thank you."}, 200
        else:
            reply, status = {"message": "mailbox unavailable"}, 400
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def main():
    envoy, reports = sys.argv[1], sys.argv[2]
    os.makedirs(reports, exist_ok=True)
    directory = tempfile.mkdtemp(prefix="envoy-console-")
    mock = http.server.ThreadingHTTPServer(("127.0.0.1", 0), MockMailgun)
    threading.Thread(target=mock.serve_forever, daemon=True).start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    environment = dict(
        os.environ, PORT=str(port), HOST="127.0.0.1", ADMIN_TOKEN=TOKEN, BCRYPT_COST="4",
        DATABASE_URL=f"sqlite://{directory}/envoy.db", MAIL_OUTBOX_DIR=f"{directory}/outbox",
        REDIS_URL=os.environ["ENVOY_TEST_REDIS_URL"], REDIS_KEY_PREFIX=f"console{port}",
        JWT_SECRET="browser-test-jwt-secret-0123456789abcdef", MAILGUN_API_KEY="key-mock",
        MAILGUN_DOMAIN="mock.envoy.test", MAILGUN_API_BASE_URL=f"http://127.0.0.1:{mock.server_address[1]}",
        TRUSTED_PROXIES="127.0.0.1/32", WORKER_METRICS_PORT="0", LOG_LEVEL="warning")
    logs = open(os.path.join(reports, "envoy.log"), "w")
    serve = subprocess.Popen([envoy, "serve", "--no-worker"], env=environment, stdout=logs, stderr=logs)
    worker = subprocess.Popen([envoy, "worker"], env=environment, stdout=logs, stderr=logs)
    results = []
    browser = None
    try:
        wait_until(lambda: urllib.request.urlopen(base + "/health", timeout=2).status == 200, 30, "envoy serve")
        options = webdriver.ChromeOptions()
        for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=412,915"]:
            options.add_argument(argument)  # a phone's width: the console must be readable there
        options.binary_location = "/usr/bin/chromium"
        browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        browser.set_page_load_timeout(30)
        run_steps(browser, base, reports, results)
    except Exception:
        traceback.print_exc()
        results.append(("the stack and the browser start", False))
    finally:
        if browser:
            browser.quit()
        for process in (serve, worker):
            process.terminate()
            process.wait(timeout=30)
        mock.shutdown()
    for name, passed in results:
        print(("✔ " if passed else "✘ ") + name)
    failed = sum(1 for _, passed in results if not passed)
    print(f"browser: {len(results) - failed} passed, {failed} failed (screenshots in {reports})")
    sys.exit(1 if failed else 0)


def wait_until(condition, seconds, what):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if condition():
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def wait_for(browser, css, seconds=10):
    """The element `css` names once the page the last click led to shows it."""
    WebDriverWait(browser, seconds).until(lambda b: b.find_elements(By.CSS_SELECTOR, css))
    return browser.find_element(By.CSS_SELECTOR, css)


def run_steps(browser, base, reports, results):
    def step(name, action):
        if results and not results[-1][1]:
            results.append((name + " (not run: an earlier step failed)", False))
            return
        try:
            action()
            results.append((name, True))
        except Exception:
            traceback.print_exc()
            results.append((name, False))

    def shot(name):
        browser.save_screenshot(os.path.join(reports, name + ".png"))

    def text():
        return browser.find_element(By.TAG_NAME, "body").text

    def sign_in_refused():
        browser.get(base + "/admin")
        assert browser.current_url.endswith("/admin/login"), browser.current_url
        browser.find_element(By.ID, "token").send_keys("a-wrong-token-that-is-long-enough-too")
        browser.find_element(By.ID, "sign-in").click()
        assert "Sign-in refused: wrong token" in wait_for(browser, "#error").text
        browser.get(base + "/admin/dead")
        assert browser.current_url.endswith("/admin/login"), "no page without a session"
        shot("1-sign-in-refused")

    def sign_in():
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.ID, "sign-in").click()
        WebDriverWait(browser, 10).until(lambda b: b.find_element(By.TAG_NAME, "h1").text == "Overview")
        assert TOKEN not in browser.page_source
        shot("2-overview")

    def counts_change_live():
        # The page stays open; sign-ups queue welcome emails, Mailgun refuses them, they die: the dead count rises.
        for n in range(SIGN_UPS):
            request = urllib.request.Request(
                base + "/v1/auth/register", method="POST",
                data=json.dumps({"email": f"console{n}@example.com", "password": "correct horse battery",
                                 "name": f"Console {n}"}).encode(),
                headers={"Content-Type": "application/json", "X-Forwarded-For": f"198.51.100.{n + 1}"})
            assert urllib.request.urlopen(request, timeout=10).status == 201

        def dead_count(b):
            cells = b.find_elements(By.CSS_SELECTOR, 'tr[data-queue="email"] td[data-field="dead"]')
            return cells and cells[0].text == str(SIGN_UPS)

        WebDriverWait(browser, 20).until(dead_count)
        assert browser.find_element(By.ID, "redis").text == "ok"
        shot("3-overview-dead-counted")

    def open_dead_task():
        browser.get(base + "/admin/dead?type=send_email")
        assert browser.find_element(By.ID, "count").text == str(SIGN_UPS), text()
        shot("4-dead-letters")
        browser.find_element(By.CSS_SELECTOR, "#dead tbody tr a").click()
        state = wait_for(browser, 'dd[data-field="state"]').text
        assert state == "dead", state
        history = browser.find_element(By.ID, "history").text
        assert "mailbox unavailable" in history, history
        payload = browser.find_element(By.ID, "payload").text
        assert "@example.com" not in payload and "console" not in payload.lower(), payload
        shot("5-dead-task")

    def retry_and_complete():
        MockMailgun.accepting = True
        task_url = browser.current_url
        retry = browser.find_element(By.XPATH, "//button[text()='Retry']")
        retry.click()
        # The form's answer is a new page (back to the task): wait until the old one is gone before reloading it,
        # or the reload could cancel the POST.
        WebDriverWait(browser, 10).until(gone(retry))

        def completed(b):
            b.get(task_url)
            return "it completed" in b.find_element(By.TAG_NAME, "body").text

        WebDriverWait(browser, 30, poll_frequency=0.5).until(completed)
        assert len(MockMailgun.received) == 1, len(MockMailgun.received)
        shot("6-task-completed")

    def action_without_csrf_refused():
        browser.get(base + "/admin/dead")
        assert browser.find_element(By.ID, "count").text == str(SIGN_UPS - 1), text()
        # Remove the forms' CSRF token, then press "Retry all": the server must refuse.
        browser.execute_script("document.querySelectorAll('input[name=csrf]').forEach(e => e.remove())")
        browser.find_element(By.XPATH, "//button[starts-with(text(), 'Retry all')]").click()
        WebDriverWait(browser, 10).until(lambda b: "CSRF" in b.find_element(By.TAG_NAME, "body").text)
        browser.get(base + "/admin/dead")
        assert browser.find_element(By.ID, "count").text == str(SIGN_UPS - 1), "nothing was retried"
        shot("7-csrf-refused")

    def login_attempt(address):
        request = urllib.request.Request(
            base + "/v1/auth/login", method="POST",
            data=json.dumps({"email": "nobody@example.com", "password": "wrong horse battery"}).encode(),
            headers={"Content-Type": "application/json", "X-Forwarded-For": address})
        try:
            return urllib.request.urlopen(request, timeout=10).status
        except urllib.error.HTTPError as error:
            return error.code

    def limits_reset():
        address = "203.0.113.50"
        statuses = [login_attempt(address) for _ in range(6)]  # the login policy: 5 an hour per address
        assert statuses == [401] * 5 + [429], statuses
        browser.get(base + "/admin/limits")
        browser.find_element(By.ID, "subject").send_keys("ip:" + address)
        browser.find_element(By.ID, "look-up").click()
        remaining = wait_for(browser, 'tr[data-policy="login"] td[data-field="remaining"]').text
        now = browser.find_element(By.CSS_SELECTOR, 'tr[data-policy="login"] td[data-field="allowed"]').text
        assert remaining == "0" and now == "refused", (remaining, now)
        assert ("ip:" + address) in browser.find_element(By.ID, "refused").text, "most refused in the last hour"
        shot("8-limits-refused")
        browser.find_element(By.XPATH, "//button[starts-with(text(), 'Reset ip:')]").click()
        assert "Done: reset" in wait_for(browser, "#done").text, text()  # the address's windows, every policy
        remaining = browser.find_element(By.CSS_SELECTOR, 'tr[data-policy="login"] td[data-field="remaining"]').text
        assert remaining == "5", remaining
        assert login_attempt(address) == 401, "the next request is admitted (and its wrong password refused)"
        shot("9-limits-reset")

    step("sign-in refused without the token", sign_in_refused)
    step("sign in with the token", sign_in)
    step("the overview's queue counts change as tasks are added, without a reload", counts_change_live)
    step("a dead task: its failures, its payload redacted", open_dead_task)
    step("retry a dead task and see it complete", retry_and_complete)
    step("an action without the CSRF token is refused", action_without_csrf_refused)
    step("a limited address looked up and reset: the next request is admitted", limits_reset)


if __name__ == "__main__":
    main()
