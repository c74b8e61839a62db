"""The console in a real browser: Debian's Chromium, headless, driven by Playwright, against the
proxy in Viceroy and the simulator. The screenshots it takes are the ones in the READMEs."""

import datetime
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from zoneinfo import ZoneInfo

import openai
import pytest

from harness import ADMIN_TOKEN, OTHER_TOKEN, ROOT, TOKEN, USAGE_HOLD_S, pool_lines, sim_keys
from harness import key as api_key

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As on this machine's kind: no background networking (the network is closed), no sandbox (root).
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
SHOTS = ROOT / "docs" / "screenshots"
FLASH, PRO = "gemini-3.5-flash", "gemini-3.1-pro-preview"


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


def open_console(browser, proxy, token=ADMIN_TOKEN, locale="en-US", viewport=None):
    context = browser.new_context(locale=locale, viewport=viewport or {"width": 1280, "height": 900})
    page = context.new_page()
    problems = []
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(proxy.url + "/")
    page.fill("#token", token)
    page.click("#form button")
    page.wait_for_selector("#banner.healthy, #banner.degraded", timeout=10_000)
    return page, problems


def chat(proxy, token=TOKEN, model=FLASH):
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=token, max_retries=0)
    try:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    except openai.APIStatusError:
        pass


@pytest.fixture
def pool(sim, proxies):
    """Six keys in three projects (one of them named with markup), and one key Google does not
    know."""
    projects = {1: "team-a", 2: "team-a", 3: "<b>équipe</b>", 4: "<b>équipe</b>"}
    sim.reset(sim_keys(6, projects), projects={"k5": {"rpm": {FLASH: 2}}})
    return proxies(pool_lines(6, projects) + ["AIzaSyTEST99999999999999999999999999999"],
                   settings={"strategy": "random"})


def test_sign_in_see_cooling_check_keys_and_read_it_in_chinese(browser, sim, pool, edge):
    page, problems = open_console(browser, pool)
    assert page.text_content("#cTotal") == "7"
    assert page.is_visible("#checkSection") and page.is_visible("#usageSection")
    # The token is kept in the tab's sessionStorage, never in the address.
    assert page.evaluate("sessionStorage.getItem('token')") == ADMIN_TOKEN and ADMIN_TOKEN not in page.url

    # Google runs team-a out of its per-minute flash quota: the console shows both its keys
    # cooling, with a countdown that moves.
    sim.behave("k1", "per_minute", model=FLASH, retry_delay_s=50)
    sim.behave("k2", "per_minute", model=FLASH, retry_delay_s=50)
    for _ in range(12):
        chat(pool)
    chat(pool, OTHER_TOKEN, PRO)
    page.wait_for_selector("td.cooling", timeout=10_000)
    rows = page.locator("#matrix tr", has_text="…0001")
    assert "cooling" in rows.first.text_content()
    # The countdown moves (each second; within 5 s even if a refresh re-rendered the matrix
    # with a mark written a moment later).
    first = page.locator("td.cooling").first.text_content()
    page.wait_for_function("first => document.querySelector('td.cooling').textContent !== first",
                           arg=first, timeout=5_000)

    # The operator's project name is text, not markup.
    assert page.locator("#matrix b").count() == 0
    assert page.locator("#matrix td", has_text="<b>équipe</b>").count() == 2

    # A key check over the pool marks the key Google does not know dead.
    page.click("#check")
    page.wait_for_selector("#checkResults tr.error", timeout=15_000)
    assert "…9999" in page.text_content("#checkResults")
    page.wait_for_function("document.querySelector('#progress').value === document.querySelector('#progress').max")
    page.wait_for_selector("#matrix td.dead", timeout=10_000)
    assert "API key not valid or expired" in page.locator("#matrix tr", has_text="…9999").text_content()
    page.wait_for_selector("#usageKeys tr:nth-child(2)")
    page.wait_for_function("() => document.querySelector('#usageClients').textContent.includes('second client')",
                           timeout=10_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = "" if edge == "fastly" else f"-{edge}"
    page.screenshot(path=str(SHOTS / f"console-en{shot}.png"), full_page=True)

    # 中文.
    page.select_option("#lang", "zh")
    assert page.text_content("[data-t=checkAll]") == "检测全部密钥"
    assert page.text_content("[data-t=pool]") == "密钥池"
    assert "失效" in page.text_content("#matrix")
    page.screenshot(path=str(SHOTS / f"console-zh{shot}.png"), full_page=True)
    assert problems == [], problems  # no script error, no content-security-policy refusal


def test_the_language_starts_from_the_browser_and_the_page_fits_a_phone(browser, sim, pool, edge):
    page, problems = open_console(browser, pool, locale="zh-CN", viewport={"width": 390, "height": 844})
    assert page.text_content("[data-t=pool]") == "密钥池"
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "no sideways scrolling of the page"
    if edge == "fastly":
        page.screenshot(path=str(SHOTS / "console-phone-zh.png"), full_page=True)
    assert problems == []


def test_a_client_token_gets_the_read_only_view(browser, sim, pool):
    page, problems = open_console(browser, pool, token=TOKEN)
    assert page.is_hidden("#checkSection") and page.is_hidden("#usageSection")
    assert "admin token" in page.text_content("#role")
    page.click("#signout")
    assert page.is_visible("#signin") and page.evaluate("sessionStorage.getItem('token')") is None
    page.fill("#token", "not-a-token")
    page.click("#form button")
    page.wait_for_selector("#signinError:has-text('refused')", timeout=10_000)
    assert problems == [] or all("401" in p for p in problems), problems


def test_many_models_keep_the_matrix_small(browser, sim, proxies, edge):
    """Fifteen models in use and 300 invented names: the matrix shows 12 models and names the
    rest; the invented names appear nowhere (they count under `(other)`)."""
    sim.reset(sim_keys(2))
    proxy = proxies(pool_lines(2))
    for i in range(1, 16):
        chat(proxy, model=f"gemini-sim-{i:03d}")
    with ThreadPoolExecutor(8) as threads:
        list(threads.map(lambda n: chat(proxy, model=f"gemini-invented-{n:04d}"), range(300)))
    time.sleep(USAGE_HOLD_S)  # the counts the instances hold are written
    started = time.time()
    page, problems = open_console(browser, proxy)
    page.wait_for_function("document.querySelector('#matrixNote').textContent.includes('3 more models')",
                           timeout=10_000)
    took = time.time() - started
    print(f"\n{edge}: console signed in and drew 12 of 15 models in {took * 1000:.0f} ms")
    assert page.evaluate("document.querySelector('#matrix tr').children.length") == 2 + 12
    assert "gemini-invented" not in page.content()
    assert problems == [], problems


def history_items(days: int = 14) -> dict:
    """Usage of the past `days` quota days (Pacific), as the proxy itself would have appended
    it: two clients, two models, three keys, with tokens — preloaded into Viceroy's KV store."""

    def fingerprint(text: str) -> str:
        h = 0xCBF29CE484222325
        for b in text.encode():
            h = ((h ^ b) * 0x100000001B3) % (1 << 64)
        return f"{h:016x}"
    today = datetime.datetime.now(ZoneInfo("America/Los_Angeles")).date()  # the quota day, daylight saving and all
    items = {}
    for back in range(1, days):
        day = (today - datetime.timedelta(days=back)).isoformat()
        lines = []
        for n, (client, model, k) in enumerate([("e2e tests", FLASH, 1), ("second client", PRO, 3),
                                                 ("e2e tests", PRO, 5)]):
            requests = 5 + (back * 7 + n * 11) % 23
            tokens = requests * (40 + n * 25)
            lines.append(f"c {client.replace(' ', '%20')} {model} {requests} 1 {tokens // 2} {tokens // 2} 0 0")
            lines.append(f"k {fingerprint(api_key(k))} {model} {requests} 1 {tokens // 2} {tokens // 2} 0 0")
        items[f"usage/{day}/{back % 8}"] = "\n".join(lines) + "\n"
    return items


def test_charts_limits_and_recent_failures(browser, sim, proxies, edge):
    """Per day, requests and tokens by client, model and key drawn by the page itself, a
    sparkline per key, each client's limits and what is left, the recent failures — in English
    and Chinese, and on a phone."""
    sim.reset(sim_keys(6))
    history = history_items() if edge == "fastly" else None  # the Workers edge's state cannot be preloaded
    proxy = proxies(pool_lines(6), kv_items=history,
                    policies={"e2e tests": {"rpd": 500, "tokens_per_day": 100000, "models": ["gemini-*"]}})
    for _ in range(4):
        chat(proxy)
    chat(proxy, OTHER_TOKEN, PRO)
    # Every key answers its next flash call with a 429: the next request meets at least one.
    for n in range(1, 7):
        sim.behave(f"k{n}", "per_minute", model=FLASH, times=1, retry_delay_s=20)
    for _ in range(6):
        chat(proxy)
    time.sleep(USAGE_HOLD_S)  # the counts the instances hold are written
    page, problems = open_console(browser, proxy)
    page.wait_for_selector("#chart svg rect", timeout=10_000)
    legend = page.text_content("#legend")
    assert "e2e tests" in legend and "second client" in legend
    days_drawn = page.evaluate("new Set([...document.querySelectorAll('#chart rect')].map(r => r.getAttribute('x'))).size")
    assert days_drawn >= (14 if history else 1), days_drawn
    page.select_option("#hBy", "model")
    page.wait_for_function("() => document.querySelector('#legend').textContent.includes('gemini-3.1-pro-preview')",
                           timeout=10_000)
    page.select_option("#hMetric", "total_tokens")
    assert page.locator("#chart rect").count() > 0
    # Limits: the client's, with what is left today.
    page.wait_for_selector("#limits tr:nth-child(2)", timeout=10_000)
    limits = page.text_content("#limits")
    assert "e2e tests" in limits and "500" in limits and "100000" in limits
    # Failures: the two 429s, by key mask, scrubbed (no key anywhere on the page).
    page.wait_for_selector("#failures tr:nth-child(2)", timeout=10_000)
    failures = page.text_content("#failures")
    assert "429" in failures and "…000" in failures
    assert "AIzaSy" not in page.content() and "AQ.Ab8" not in page.content()
    page.wait_for_selector("#usageKeys svg.spark", timeout=10_000)
    page.select_option("#hBy", "client")
    page.select_option("#hMetric", "requests")
    page.wait_for_selector("#chart svg rect")
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = "" if edge == "fastly" else f"-{edge}"
    page.locator("#historySection").screenshot(path=str(SHOTS / f"console-history-en{shot}.png"))
    page.select_option("#lang", "zh")
    assert page.text_content("[data-t=history]") == "每日用量" and page.text_content("[data-t=limits]") == "客户端限额"
    assert page.text_content("[data-t=failures]") == "最近失败"
    page.locator("#historySection").screenshot(path=str(SHOTS / f"console-history-zh{shot}.png"))
    assert problems == [], problems
    phone, problems = open_console(browser, proxy, locale="zh-CN", viewport={"width": 390, "height": 844})
    phone.wait_for_selector("#chart svg rect", timeout=10_000)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    if edge == "fastly":
        phone.locator("#historySection").screenshot(path=str(SHOTS / "console-history-phone-zh.png"))
    assert problems == [], problems
