"""The web console in a real headless Chromium (Playwright's sync API).

Run by crates/cli/tests/console.rs against a real `sagaflow server` started
with an auth token, with the travel saga (`trip-booking`), a saga waiting for
an approval callback (`trip-approval`) and one whose pivot is a callback that
times out (`charge-by-callback`) deployed. Everything is done through the
console, as a person would: sign in, start executions with the Start form,
read graphs, answer a callback, cancel, redrive, filter and page the list,
ask the failure explorer; then an ASL machine (`hotel-nights`: a Task, a
Choice, a Parallel, a Map) and a durable function (`console-trip`).

The browser runs in New York's time zone, so that the list's start-time
filter (the browser's local time, sent as UTC) is checked converting.

Environment: CONSOLE_URL (…/console/), CONSOLE_TOKEN, CONSOLE_CHROMIUM,
CONSOLE_SCREENSHOTS (a folder), CONSOLE_TRIP (examples/trip-success.json),
CONSOLE_DURABLE (the durable function's name, empty: its check is skipped),
CONSOLE_ONLY (optional, while working on it: only the checks whose name
contains it, after signing in).
Prints `ok: …` / `FAIL: …` per check and exits 1 if any failed.
"""

import json
import os
import sys
import traceback
import uuid
from urllib.parse import parse_qs

from playwright.sync_api import expect, sync_playwright

URL = os.environ["CONSOLE_URL"]
TOKEN = os.environ["CONSOLE_TOKEN"]
CHROMIUM = os.environ["CONSOLE_CHROMIUM"]
SHOTS = os.environ["CONSOLE_SCREENSHOTS"]
with open(os.environ["CONSOLE_TRIP"], encoding="utf-8") as f:
    TRIP = json.load(f)

# Generous: the server and the browser share a small machine.
WAIT = 60_000
RUN = uuid.uuid4().hex[:6]
DURABLE = os.environ.get("CONSOLE_DURABLE", "")
ONLY = os.environ.get("CONSOLE_ONLY", "")
TIMEZONE = "America/New_York"
failures = []


def trip(run_type, trip_id):
    t = dict(TRIP)
    t["trip_id"] = trip_id
    t["run_type"] = run_type
    return t


def node(page, node_id):
    return page.get_by_test_id(f"node-{node_id}")


def status(page):
    return page.get_by_test_id("exec-status")


def check(page, name, fn):
    """Runs one check; on failure prints why and keeps a screenshot of the page."""
    if ONLY and ONLY not in name and not name.startswith("signing in"):
        return
    try:
        fn()
        print(f"ok: {name}", flush=True)
    except Exception:  # noqa: BLE001 - every failure is reported, then the next check runs
        failures.append(name)
        print(f"FAIL: {name}\n{traceback.format_exc()}", flush=True)
        slug = "".join(c if c.isalnum() else "-" for c in name)[:60]
        try:
            page.screenshot(path=os.path.join(SHOTS, f"failed-{slug}.png"), full_page=True)
        except Exception:  # noqa: BLE001
            pass


def start_with_form(page, definition, execution_id, payload):
    """Starts an execution with the definition page's Start form; lands on its page."""
    page.goto(f"{URL}#/definitions/{definition}")
    form = page.get_by_test_id("start-form")
    expect(form).to_be_visible(timeout=WAIT)
    form.get_by_test_id("start-input").fill(json.dumps(payload, indent=2))
    form.get_by_test_id("start-id").fill(execution_id)
    expect(form.get_by_test_id("start")).to_be_enabled()
    form.get_by_test_id("start").click()
    page.wait_for_url(f"**#/executions/{execution_id}", timeout=WAIT)
    expect(page.get_by_test_id("exec-status")).to_be_visible(timeout=WAIT)


def api_fetch(page, method, path, body=None, headers=None):
    """A request from the page with the token (what another client would do): (status, text)."""
    return page.evaluate(
        """async ([method, path, body, headers, token]) => {
             const r = await fetch(path, {method, headers: {Authorization: `Bearer ${token}`,
               'Content-Type': 'application/json', ...headers}, body: body === null ? undefined : body});
             return [r.status, await r.text()]; }""",
        [method, path, None if body is None else json.dumps(body), headers or {}, TOKEN],
    )


def start_via_api(page, definition, execution_id, payload):
    status, text = api_fetch(page, "POST", "/v1/executions",
                             {"definition": definition, "input": payload, "execution_id": execution_id})
    assert status in (200, 201), f"starting {execution_id}: {status} {text}"


def row_ids(page):
    return page.get_by_test_id("executions").locator("tr[data-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.id)")


def hash_query(page):
    return {k: v[0] for k, v in parse_qs(page.url.split("#", 1)[1].split("?", 1)[1] if "?" in page.url else "").items()}


def bbox(page, locator, what):
    """Where `locator` is drawn; again if a live refresh redrew the graph while it was measured."""
    for _ in range(50):
        b = locator.bounding_box()
        if b:
            return b
        page.wait_for_timeout(100)
    raise AssertionError(f"{what} is drawn")


def box(page, node_id):
    return bbox(page, node(page, node_id), node_id)


def inside(inner, outer, what):
    ok = (inner["x"] >= outer["x"] - 0.5 and inner["y"] >= outer["y"] - 0.5
          and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5
          and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 0.5)
    assert ok, f"{what}: {inner} is inside {outer}"


def confirm(page):
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_be_visible(timeout=WAIT)
    dialog.get_by_test_id("confirm").click()
    expect(dialog).to_be_hidden(timeout=WAIT)


def main():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        page = browser.new_page(viewport={"width": 1500, "height": 950}, timezone_id=TIMEZONE)
        assets = os.environ.get("CONSOLE_ASSETS")
        if assets:
            # Working on the console: its files from this folder, not the ones built into the binary.
            def from_disk(route):
                name = route.request.url.split("?")[0].rsplit("/", 1)[-1] or "index.html"
                route.fulfill(path=os.path.join(assets, name))

            page.route("**/console/*", from_disk)
        page.on("pageerror", lambda e: print(f"page error: {e}", flush=True))
        run_checks(page)
        browser.close()


def run_checks(page):
    ids = {
        "success": f"ui-{RUN}-success",
        "failPayment": f"ui-{RUN}-failPayment",
        "failCarReservation": f"ui-{RUN}-failCar",
        "approved": f"ui-{RUN}-approved",
        "cancelled": f"ui-{RUN}-cancelled",
        "watched": f"ui-{RUN}-watched",
        "redriven": f"ui-{RUN}-redriven",
        "refused": f"ui-{RUN}-refused",
        "asl": f"ui-{RUN}-asl",
    }

    def signs_in():
        page.goto(URL)
        signin = page.get_by_test_id("signin")
        expect(signin).to_be_visible(timeout=WAIT)
        page.get_by_test_id("token-input").fill("not-the-token")
        page.get_by_test_id("signin-submit").click()
        expect(page.get_by_test_id("signin-error")).to_contain_text("invalid_token", timeout=WAIT)
        page.get_by_test_id("token-input").fill(TOKEN)
        page.get_by_test_id("signin-submit").click()
        expect(signin).to_be_hidden(timeout=WAIT)
        expect(page.locator("h1")).to_contain_text("Executions", timeout=WAIT)
        assert TOKEN not in page.url, f"the token is not in the URL: {page.url}"
        stored = page.evaluate("sessionStorage.getItem('sagaflow.token')")
        assert stored == TOKEN, f"the token is kept in sessionStorage, not {stored!r}"

    check(page, "signing in with the token (a wrong one is refused) shows the executions list", signs_in)

    def invalid_input_is_refused():
        page.goto(f"{URL}#/definitions/trip-booking")
        form = page.get_by_test_id("start-form")
        expect(form).to_be_visible(timeout=WAIT)
        form.get_by_test_id("start-input").fill('{"trip_id": "x",, }')
        expect(form.get_by_test_id("start-input-error")).to_contain_text("Invalid JSON", timeout=WAIT)
        expect(form.get_by_test_id("start-input-error")).to_contain_text("column")
        expect(form.get_by_test_id("start")).to_be_disabled()

    check(page, "the Start form names an invalid JSON input's problem and position and will not start it",
          invalid_input_is_refused)

    for run_type, expected in [("success", "succeeded"), ("failPayment", "compensated"),
                               ("failCarReservation", "compensated")]:
        def starts(run_type=run_type, expected=expected):
            start_with_form(page, "trip-booking", ids[run_type], trip(run_type, ids[run_type]))
            expect(status(page)).to_have_attribute("data-status", expected, timeout=WAIT)
            if expected == "succeeded":
                expect(page.get_by_test_id("why")).to_be_hidden()
            else:
                expect(page.get_by_test_id("why")).to_be_visible()
                expect(page.get_by_test_id("why")).not_to_be_empty()

        check(page, f"a {run_type} trip started with the Start form ends {expected}", starts)

    def compensated_graph():
        page.goto(f"{URL}#/executions/{ids['failPayment']}")
        expect(status(page)).to_have_attribute("data-status", "compensated", timeout=WAIT)
        expect(node(page, "take_payment")).to_have_attribute("data-state", "failed", timeout=WAIT)
        expect(node(page, "take_payment")).to_have_attribute("data-pivot", "true")
        for step in ["reserve_hotel", "reserve_flight", "reserve_car"]:
            expect(node(page, f"{step}/compensation")).to_have_attribute("data-state", "compensated")
        for step in ["confirm_hotel", "confirm_flight", "confirm_car"]:
            expect(node(page, step)).to_have_attribute("data-state", "pending")
        page.screenshot(path=os.path.join(SHOTS, "execution-compensated.png"))
        # A node's panel shows its error.
        node(page, "take_payment").click()
        panel = page.get_by_test_id("node-panel")
        expect(panel).to_be_visible(timeout=WAIT)
        expect(panel.get_by_test_id("panel-state")).to_contain_text("failed")
        expect(panel.get_by_test_id("panel-error")).to_be_visible()
        page.screenshot(path=os.path.join(SHOTS, "execution-node-panel.png"), full_page=True)
        # The history lists what happened, each event expandable to its JSON.
        history = page.get_by_test_id("history")
        expect(history.locator("tr[data-type=compensation_succeeded]")).to_have_count(3, timeout=WAIT)
        first = history.locator("tr.ev").first
        first.click()
        expect(history.locator("tr.ev-detail").first).to_be_visible()

    check(page, "a compensated trip's graph shows the failed payment and the three compensations done",
          compensated_graph)

    def list_and_search():
        page.goto(f"{URL}#/executions")
        rows = page.get_by_test_id("executions")
        for key in ["success", "failPayment", "failCarReservation"]:
            expect(rows.get_by_test_id(f"exec-row-{ids[key]}")).to_be_visible(timeout=WAIT)
        expect(rows.get_by_test_id(f"status-{ids['success']}")).to_have_text("succeeded")
        page.get_by_test_id("filter-status").select_option("compensated")
        expect(rows.get_by_test_id(f"exec-row-{ids['success']}")).to_have_count(0, timeout=WAIT)
        expect(rows.get_by_test_id(f"exec-row-{ids['failPayment']}")).to_be_visible()
        page.get_by_test_id("filter-status").select_option("")
        page.get_by_test_id("search").fill("no-such-execution")
        page.get_by_test_id("search-go").click()
        expect(page.get_by_test_id("search-error")).to_contain_text("no-such-execution", timeout=WAIT)
        page.get_by_test_id("search").fill(ids["failCarReservation"])
        page.get_by_test_id("search-go").click()
        page.wait_for_url(f"**#/executions/{ids['failCarReservation']}", timeout=WAIT)
        expect(node(page, "reserve_car")).to_have_attribute("data-state", "failed", timeout=WAIT)

    check(page, "the list shows the executions, filters by status and the search jumps to one (or says it is not there)",
          list_and_search)

    def paging():
        ticks = [f"tick-{RUN}-{i:02}" for i in range(25)]
        page.goto(f"{URL}#/executions")
        expect(page.locator("h1")).to_contain_text("Executions", timeout=WAIT)
        for t in ticks:
            start_via_api(page, "tick", t, {"tick": t})
        page.get_by_test_id("filter-definition").select_option("tick")
        expect(page.get_by_test_id("executions").locator("tr[data-id]")).to_have_count(25, timeout=WAIT)
        expect(page.get_by_test_id("next-page")).to_be_hidden()
        page.get_by_test_id("page-size").select_option("20")
        page.wait_for_url("**limit=20**", timeout=WAIT)
        rows = page.get_by_test_id("executions").locator("tr[data-id]")
        expect(rows).to_have_count(20, timeout=WAIT)
        expect(page.get_by_test_id("page-size")).to_have_value("20")
        first = row_ids(page)
        assert first == sorted(ticks, reverse=True)[:20], f"newest first: {first}"
        page.get_by_test_id("next-page").click()
        expect(rows).to_have_count(5, timeout=WAIT)
        expect(page.get_by_test_id("page-number")).to_have_attribute("data-page", "2")
        second = row_ids(page)
        assert not set(first) & set(second), f"the pages do not overlap: {first} / {second}"
        assert sorted(first + second) == sorted(ticks), f"the two pages hold every tick: {second}"
        expect(page.get_by_test_id("next-page")).to_be_hidden()
        page.screenshot(path=os.path.join(SHOTS, "executions-page-2.png"), full_page=True)
        page.get_by_test_id("first-page").click()
        expect(rows).to_have_count(20, timeout=WAIT)
        assert row_ids(page) == first, "the first page again"

    check(page, "the list pages by cursor with Next page (20 per page: 20 then 5, no overlap)", paging)

    def time_range():
        rows = page.get_by_test_id("executions").locator("tr[data-id]")
        page.goto(f"{URL}#/executions?definition=tick")
        expect(rows).to_have_count(25, timeout=WAIT)
        # A range in the future (New York's midnight is 05:00 UTC): nothing.
        page.get_by_test_id("filter-from").fill("2099-01-01T00:00")
        page.wait_for_url("**started_after=**", timeout=WAIT)
        assert hash_query(page).get("started_after") == "2099-01-01T05:00:00.000Z", \
            f"the local time is sent as UTC: {page.url}"
        expect(page.get_by_test_id("no-executions")).to_be_visible(timeout=WAIT)
        expect(rows).to_have_count(0)
        expect(page.get_by_test_id("filter-from")).to_have_value("2099-01-01T00:00")
        page.screenshot(path=os.path.join(SHOTS, "executions-future-range.png"), full_page=True)
        # Cleared: every one again.
        page.get_by_test_id("filter-clear-time").click()
        expect(rows).to_have_count(25, timeout=WAIT)
        assert "started_after" not in page.url, page.url
        # Before 2000: nothing; 2000 to 2099: all, and a new one appears live.
        page.get_by_test_id("filter-to").fill("2000-01-01T00:00")
        expect(page.get_by_test_id("no-executions")).to_be_visible(timeout=WAIT)
        assert hash_query(page).get("started_before") == "2000-01-01T05:00:00.000Z", page.url
        page.get_by_test_id("filter-from").fill("1999-12-31T00:00")
        page.get_by_test_id("filter-to").fill("2099-01-01T00:00")
        expect(rows).to_have_count(25, timeout=WAIT)
        q = hash_query(page)
        assert q.get("started_after") == "1999-12-31T05:00:00.000Z" and q.get("definition") == "tick", page.url
        page.evaluate("window.__same_page = true")
        late = f"tick-{RUN}-late"
        start_via_api(page, "tick", late, {"tick": late})
        expect(page.get_by_test_id(f"exec-row-{late}")).to_be_visible(timeout=WAIT)
        assert page.evaluate("window.__same_page === true"), "the list was not reloaded"
        # A time the server cannot read: its answer, naming the parameter, in the banner.
        page.goto(f"{URL}#/executions?started_after=yesterday")
        banner = page.get_by_test_id("error-banner")
        expect(banner).to_be_visible(timeout=WAIT)
        expect(banner).to_contain_text("invalid_parameter")
        expect(banner).to_contain_text("started_after")

    check(page, "the start-time range filters the list (local time sent as UTC), live too; a bad time is named",
          time_range)

    def callback_answered_live():
        start_with_form(page, "trip-approval", ids["approved"], trip("success", ids["approved"]))
        expect(node(page, "approve")).to_have_attribute("data-state", "parked", timeout=WAIT)
        expect(status(page)).to_have_attribute("data-status", "running")
        page.evaluate("window.__same_page = true")
        node(page, "approve").click()
        panel = page.get_by_test_id("node-panel")
        expect(panel.get_by_test_id("callback-success")).to_be_visible(timeout=WAIT)
        page.screenshot(path=os.path.join(SHOTS, "callback-parked.png"), full_page=True)
        panel.get_by_test_id("callback-output").fill('{"approved": true, "by": "console"}')
        panel.get_by_test_id("callback-success").click()
        # The page follows the execution: no reload.
        expect(status(page)).to_have_attribute("data-status", "succeeded", timeout=WAIT)
        expect(node(page, "take_payment")).to_have_attribute("data-state", "succeeded", timeout=WAIT)
        assert page.evaluate("window.__same_page === true"), "the page was not reloaded"

    check(page, "a parked approval answered with Send success makes the open execution succeed live",
          callback_answered_live)

    def callback_refused():
        start_with_form(page, "trip-approval", ids["refused"], trip("success", ids["refused"]))
        expect(node(page, "approve")).to_have_attribute("data-state", "parked", timeout=WAIT)
        node(page, "approve").click()
        panel = page.get_by_test_id("node-panel")
        expect(panel.get_by_test_id("callback-failure")).to_be_visible(timeout=WAIT)
        panel.get_by_test_id("callback-error").fill("NotApproved")
        panel.get_by_test_id("callback-cause").fill("the manager said no")
        panel.get_by_test_id("callback-failure").click()
        expect(status(page)).to_have_attribute("data-status", "compensated", timeout=WAIT)
        expect(node(page, "approve")).to_have_attribute("data-state", "failed", timeout=WAIT)
        expect(node(page, "reserve_hotel/compensation")).to_have_attribute("data-state", "compensated", timeout=WAIT)
        expect(node(page, "take_payment")).to_have_attribute("data-state", "pending")
        node(page, "approve").click()
        expect(panel.get_by_test_id("panel-error")).to_contain_text("NotApproved", timeout=WAIT)

    check(page, "a parked approval answered with Send failure makes the saga compensate", callback_refused)

    def cancel_with_dialog():
        start_with_form(page, "trip-approval", ids["cancelled"], trip("success", ids["cancelled"]))
        expect(node(page, "approve")).to_have_attribute("data-state", "parked", timeout=WAIT)
        page.get_by_test_id("cancel").click()
        dialog = page.get_by_test_id("confirm-dialog")
        expect(dialog).to_be_visible(timeout=WAIT)
        dialog.get_by_test_id("confirm-cancel").click()
        expect(dialog).to_be_hidden()
        expect(status(page)).to_have_attribute("data-status", "running")
        page.get_by_test_id("cancel").click()
        confirm(page)
        expect(status(page)).to_have_attribute("data-status", "cancelled", timeout=WAIT)
        expect(node(page, "reserve_hotel/compensation")).to_have_attribute("data-state", "compensated", timeout=WAIT)
        expect(page.get_by_test_id("why")).to_be_visible()

    check(page, "Cancel, confirmed in its dialog (and not when dismissed), compensates the waiting trip",
          cancel_with_dialog)

    def list_updates_live():
        start_with_form(page, "trip-approval", ids["watched"], trip("success", ids["watched"]))
        expect(node(page, "approve")).to_have_attribute("data-state", "parked", timeout=WAIT)
        page.goto(f"{URL}#/executions")
        row = page.get_by_test_id(f"status-{ids['watched']}")
        expect(row).to_have_text("running", timeout=WAIT)
        page.evaluate("window.__same_page = true")
        # Someone else cancels it (the API, not this page): the row follows.
        answer = page.evaluate(
            """async ([id, token]) => {
                 const r = await fetch(`/v1/executions/${id}/cancel`, {method: 'POST',
                   headers: {Authorization: `Bearer ${token}`, 'Content-Type': 'application/json'}, body: '{}'});
                 return r.status; }""",
            [ids["watched"], TOKEN],
        )
        assert answer in (200, 202), f"the cancel was accepted, not {answer}"
        expect(page.get_by_test_id(f"status-{ids['watched']}")).to_have_text("cancelled", timeout=WAIT)
        assert page.evaluate("window.__same_page === true"), "the list was not reloaded"

    check(page, "the executions list updates a row live when its execution changes", list_updates_live)

    def redrive_failed():
        start_with_form(page, "charge-by-callback", ids["redriven"], trip("success", ids["redriven"]))
        expect(node(page, "charge")).to_have_attribute("data-state", "parked", timeout=WAIT)
        # Nobody answers: the pivot times out, and a pivot cannot be undone.
        expect(status(page)).to_have_attribute("data-status", "failed", timeout=WAIT)
        expect(page.get_by_test_id("why")).to_contain_text("charge")
        expect(page.get_by_test_id("redrive")).to_be_enabled()
        page.screenshot(path=os.path.join(SHOTS, "execution-failed.png"), full_page=True)
        page.get_by_test_id("redrive").click()
        confirm(page)
        expect(node(page, "charge")).to_have_attribute("data-state", "parked", timeout=WAIT)
        node(page, "charge").click()
        panel = page.get_by_test_id("node-panel")
        expect(panel.get_by_test_id("callback-success")).to_be_visible(timeout=WAIT)
        panel.get_by_test_id("callback-success").click()
        expect(status(page)).to_have_attribute("data-status", "succeeded", timeout=WAIT)

    check(page, "a failed execution (its pivot timed out) is redriven from the console and then succeeds",
          redrive_failed)

    def failure_explorer():
        page.goto(f"{URL}#/definitions/trip-booking")
        expect(node(page, "take_payment")).to_be_visible(timeout=WAIT)
        node(page, "take_payment").click()
        explorer = page.get_by_test_id("explorer")
        expect(explorer).to_contain_text("take_payment", timeout=WAIT)
        explorer.get_by_test_id("fail-business").check()
        explorer.get_by_test_id("fail-error-name").fill("PaymentDeclined")
        explorer.get_by_test_id("explain").click()
        result = explorer.get_by_test_id("explain-result")
        expect(result.get_by_test_id("explain-summary")).to_contain_text("PaymentDeclined", timeout=WAIT)
        for n, step in enumerate(["reserve_car", "reserve_flight", "reserve_hotel"], start=1):
            expect(result.get_by_test_id(f"explain-comp-{n}")).to_contain_text(step)
            expect(page.get_by_test_id(f"order-{step}/compensation")).to_have_text(str(n))
            expect(node(page, f"{step}/compensation")).to_have_attribute("data-state", "compensated")
        expect(result.get_by_test_id("explain-end")).to_contain_text("compensated")
        expect(result.get_by_test_id("explain-time")).not_to_be_empty()
        expect(node(page, "take_payment")).to_have_attribute("data-state", "failed")
        page.screenshot(path=os.path.join(SHOTS, "failure-explorer.png"))
        # A compensation that keeps failing never ends by itself.
        explorer.get_by_test_id("fail-compensation").check()
        explorer.get_by_test_id("fail-compensation-step").select_option("reserve_flight")
        explorer.get_by_test_id("explain").click()
        expect(result.get_by_test_id("explain-end")).to_contain_text("reserve_flight", timeout=WAIT)
        expect(node(page, "reserve_flight/compensation")).to_have_attribute("data-state", "stuck")
        page.screenshot(path=os.path.join(SHOTS, "failure-explorer-stuck-compensation.png"), full_page=True)

    check(page, "the failure explorer predicts the compensations, in order, when the payment is declined",
          failure_explorer)

    def validation():
        page.goto(f"{URL}#/definitions/trip-booking")
        source = page.get_by_test_id("validate-source")
        expect(source).to_be_visible(timeout=WAIT)
        text = source.input_value()
        # A compensation after the pivot is refused.
        bad = text.replace(
            '          action: { http: { url: "${TRAVEL_URL}/hotel/confirm" } }',
            '          action: { http: { url: "${TRAVEL_URL}/hotel/confirm" } }\n'
            '          compensation: { http: { url: "${TRAVEL_URL}/hotel/cancel" } }',
        )
        assert bad != text, "the travel saga's source has the hotel confirmation"
        source.fill(bad)
        page.get_by_test_id("validate").click()
        problems = page.get_by_test_id("problems")
        expect(problems.locator("li").first).to_be_visible(timeout=WAIT)
        expect(page.get_by_test_id("validate-graph").locator("[data-problem=true]").first).to_be_visible(timeout=WAIT)
        page.screenshot(path=os.path.join(SHOTS, "validation-problems.png"), full_page=True)
        source.fill(text)
        page.get_by_test_id("validate").click()
        expect(page.get_by_test_id("valid")).to_be_visible(timeout=WAIT)

    check(page, "Validate lists a new source's problems and marks the node they name", validation)

    def asl_machine():
        payload = trip("success", ids["asl"])
        payload["nights"] = ["2017-07-10", "2017-07-11", "2017-07-12"]
        start_with_form(page, "hotel-nights", ids["asl"], payload)
        expect(status(page)).to_have_attribute("data-status", "succeeded", timeout=WAIT)
        expect(page.get_by_test_id("graph")).to_have_attribute("data-kind", "asl")
        for state in ["ReserveHotel", "IsReserved", "Prepare", "Invoice", "Notify", "Remind",
                      "PriceNights", "PriceNight", "Booked"]:
            expect(node(page, state)).to_have_attribute("data-state", "succeeded", timeout=WAIT)
        expect(node(page, "NotReserved")).to_have_attribute("data-state", "pending")
        # The Parallel and the Map are frames around their branches / processor.
        expect(node(page, "Prepare")).to_have_attribute("data-type", "Parallel")
        expect(node(page, "Prepare")).to_have_class("group")
        expect(node(page, "PriceNights")).to_have_attribute("data-type", "Map")
        expect(node(page, "PriceNights")).to_have_class("group")
        prepare, b0, b1 = box(page, "Prepare"), box(page, "Prepare/branch0"), box(page, "Prepare/branch1")
        inside(b0, prepare, "branch 1 in the Parallel")
        inside(b1, prepare, "branch 2 in the Parallel")
        inside(box(page, "Invoice"), b0, "Invoice in branch 1")
        inside(box(page, "Notify"), b1, "Notify in branch 2")
        inside(box(page, "Remind"), b1, "Remind in branch 2")
        assert b0["x"] + b0["width"] <= b1["x"] or b1["x"] + b1["width"] <= b0["x"], \
            f"the branches side by side: {b0} {b1}"
        mapbox, proc = box(page, "PriceNights"), box(page, "PriceNights/processor")
        inside(proc, mapbox, "the processor in the Map")
        inside(box(page, "PriceNight"), proc, "PriceNight in the processor")
        # Top to bottom, in the order they run.
        ys = [box(page, s)["y"] for s in ["ReserveHotel", "IsReserved", "Prepare", "PriceNights", "Booked"]]
        assert ys == sorted(ys) and len(set(ys)) == len(ys), f"drawn top to bottom: {ys}"
        assert box(page, "Notify")["y"] < box(page, "Remind")["y"], "Remind under Notify"
        # The Map's iterations, in its panel.
        node(page, "PriceNights").click(position={"x": 40, "y": 8})
        panel = page.get_by_test_id("node-panel")
        expect(panel).to_be_visible(timeout=WAIT)
        items = panel.get_by_test_id("panel-iterations").locator("li")
        expect(items).to_have_count(3, timeout=WAIT)
        for i in range(3):
            expect(panel.get_by_test_id(f"iteration-{i}")).to_have_attribute("data-state", "succeeded")
        page.screenshot(path=os.path.join(SHOTS, "asl-machine.png"), full_page=True)

    check(page, "an ASL machine is drawn top to bottom, its Parallel and Map framed, the Map's 3 iterations listed",
          asl_machine)

    def durable_function():
        if not DURABLE:
            print("skipped: the durable function check (the interpreter cannot host one)", flush=True)
            return
        name = f"console-{RUN}"
        status_code, text = api_fetch(
            page, "POST", f"/2015-03-31/functions/{DURABLE}/invocations", {"trip_id": RUN},
            {"X-Amz-Invocation-Type": "Event", "X-Amz-Durable-Execution-Name": name})
        assert status_code == 202, f"the durable function starts: {status_code} {text}"
        page.goto(f"{URL}#/executions?definition={DURABLE}")
        link = page.get_by_test_id("executions").locator("tr[data-id] a").first
        expect(link).to_be_visible(timeout=WAIT)
        link.click()
        page.wait_for_url("**#/executions/**", timeout=WAIT)
        expect(status(page)).to_have_attribute("data-status", "succeeded", timeout=3 * WAIT)
        graph = page.get_by_test_id("graph")
        expect(graph).to_have_attribute("data-kind", "durable")
        expect(graph.locator("[data-type=function]")).to_have_attribute("data-state", "succeeded", timeout=WAIT)
        expect(graph.locator("[data-type=STEP]")).to_have_count(4, timeout=WAIT)
        expect(graph.locator("[data-type=WAIT]")).to_have_count(1)
        context = graph.locator("[data-type=CONTEXT]")
        expect(context).to_have_count(1)
        ctx_id = context.get_attribute("data-testid").removeprefix("node-")
        children = graph.locator(f'[data-parent="{ctx_id}"]')
        expect(children).to_have_count(2)
        ctx = bbox(page, context, "the child context")
        for i in range(2):
            c = children.nth(i)
            expect(c).to_have_attribute("data-type", "STEP")
            expect(c).to_have_attribute("data-state", "succeeded")
            b = bbox(page, c, f"the context's child {i}")
            assert b["x"] > ctx["x"] and b["y"] > ctx["y"], f"a child is drawn under its context, indented: {b} {ctx}"
        for n in range(graph.locator("[data-type=STEP]").count()):
            expect(graph.locator("[data-type=STEP]").nth(n)).to_have_attribute("data-state", "succeeded")
        invocations = page.get_by_test_id("invocations")
        expect(invocations).to_be_visible(timeout=WAIT)
        expect(invocations.locator("[data-testid^=invocation-]").first).to_be_visible()
        count = invocations.locator("[data-testid^=invocation-]").count()
        assert count >= 1, f"at least one invocation on the timeline, not {count}"
        expect(invocations.locator(f"[data-testid=invocation-{count}]")).to_have_attribute(
            "data-outcome", "succeeded", timeout=WAIT)
        history = page.get_by_test_id("history")
        expect(history.locator("tr[data-type=durable_operation]", has_text="book-hotel").first).to_be_visible()
        page.screenshot(path=os.path.join(SHOTS, "durable-function.png"))

    check(page, "a durable function's operation tree (steps under their context) and its invocations are drawn",
          durable_function)

    def signs_out():
        page.get_by_test_id("sign-out").click()
        expect(page.get_by_test_id("signin")).to_be_visible(timeout=WAIT)
        assert page.evaluate("sessionStorage.getItem('sagaflow.token')") is None, "the token is forgotten"

    check(page, "Sign out forgets the token and asks for it again", signs_out)


if __name__ == "__main__":
    main()
    if failures:
        print(f"{len(failures)} check(s) failed: {failures}", flush=True)
        sys.exit(1)
    print("every console check passed", flush=True)
