"""/docs renders in a browser with every request to another host blocked (issue 11: Swagger UI
came from a CDN, so the page was blank offline)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's chromium is not installed (make test installs it)")


@pytest.mark.slow
def test_docs_render_offline(tmp_path):
    import uvicorn
    from playwright.sync_api import sync_playwright

    from segflow.studio.app import create_app

    app = create_app(None, tmp_path / "d")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    while not srv.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    blocked, errors = [], []
    try:
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
            ctx = b.new_context()

            def only_local(route):
                if route.request.url.startswith(base):
                    route.continue_()
                else:
                    blocked.append(route.request.url)
                    route.abort()

            ctx.route("**/*", only_local)
            page = ctx.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(f"{base}/docs")
            page.wait_for_selector(".opblock", timeout=60_000)
            n = page.locator(".opblock").count()
            title = page.locator(".title").first.inner_text()
            b.close()
    finally:
        srv.should_exit = True
        th.join(timeout=10)
        app.state.engine.dispose()
    assert n >= 25 and "segflow studio" in title, (n, title)
    assert blocked == [] and errors == [], (blocked, errors)
