"""The web console in a real headless Chromium (Playwright's sync API).

Run by crates/cli/tests/console.rs against a real `sagaflow server` started
with an auth token, with the travel saga (`trip-booking`), a saga waiting for
an approval callback (`trip-approval`) and one whose pivot is a callback that
times out (`charge-by-callback`) deployed. Everything is done through the
console, as a person would: sign in, start executions with the Start form,
read graphs, answer a callback, cancel, redrive, ask the failure explorer.

Environment: CONSOLE_URL (…/console/), CONSOLE_TOKEN, CONSOLE_CHROMIUM,
CONSOLE_SCREENSHOTS (a folder), CONSOLE_TRIP (examples/trip-success.json).
Prints `ok: …` / `FAIL: …` per check and exits 1 if any failed.
"""

import json
import os
import sys
import traceback
import uuid

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


def confirm(page):
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_be_visible(timeout=WAIT)
    dialog.get_by_test_id("confirm").click()
    expect(dialog).to_be_hidden(timeout=WAIT)


def main():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        page = browser.new_page(viewport={"width": 1500, "height": 950})
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
