"""Issue 10 in a real headless Chromium: the manager starts training from the Training page and
sees its progress, cancels that run, completes another, opens its assessment, promotes the
model to pre-labeller, and a new task carries the model's labels. Tiny images, a tiny U-Net
and a few steps. Screenshots go to out/test-artifacts/e2e/."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from tests.studio.conftest import blob_image, make_studio, png_bytes
from tests.studio.test_e2e import CHROMIUM, FLAGS, login, shot, wait_js
from tests.studio.training_helpers import SIZE, semantic_project

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's chromium is not installed (make test installs it)")


@pytest.fixture
def served(tmp_path):
    import uvicorn

    st = make_studio(tmp_path, None)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    srv = uvicorn.Server(uvicorn.Config(st.app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    yield st, f"http://127.0.0.1:{port}"
    srv.should_exit = True
    th.join(timeout=10)
    st.app.state.jobs.shutdown()
    st.app.state.engine.dispose()


def run_row(page, state: str | None = None) -> str:
    sel = "#t-runs tbody tr" + (f"[data-state={state}]" if state else "")
    return sel


def test_train_cancel_complete_assess_promote_prelabel(served):
    from playwright.sync_api import sync_playwright

    from segflow.studio.services import masks

    st, base = served
    pid = semantic_project(st, 6, accepted=5)["pid"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        page = login(browser, base, "manager", "manager-pw-123")
        page.goto(f"{base}/projects/{pid}")
        page.click("#to-training")
        page.wait_for_url(f"{base}/projects/{pid}/training")
        wait_js(page, "() => document.querySelectorAll('#t-model option').length > 0")
        assert page.input_value("#t-model") == "unet"
        # run 1: long; progress (step of total, loss) shows on the page, then it is cancelled
        page.fill("#t-steps", "500")
        page.click("#t-start")
        wait_js(page, """() => { const r = document.querySelector('#t-runs tbody tr');
            return r && r.dataset.state === 'running' && /^ *[1-9]\\d* \\/ 500/.test(
              r.children[3].textContent) && r.children[4].textContent !== '–'; }""",
                timeout=120)
        shot(page, "training-progress")
        page.click("#t-runs tbody tr[data-state=running] .t-cancel")
        wait_js(page, "() => !!document.querySelector('#t-runs tbody tr[data-state=cancelled]')",
                timeout=60)
        # run 2: a few steps, to completion, with a model and its assessment
        page.fill("#t-steps", "4")
        page.click("#t-start")
        wait_js(page, "() => !!document.querySelector('#t-runs tbody tr[data-state=done] "
                      ".t-assess')", timeout=180)
        page.click("#t-runs tbody tr[data-state=cancelled] .t-showlog")
        wait_js(page, "() => /cancelled/.test(document.getElementById('t-log').textContent)")
        shot(page, "training-done")
        page.click("#t-runs tbody tr[data-state=done] .t-assess")
        page.wait_for_url(f"{base}/models/**")
        wait_js(page, "() => document.querySelectorAll('#m-targets tbody tr').length === 1")
        verdict = page.text_content("#m-verdict")
        assert verdict in ("meets the brief", "retrain"), verdict
        assert "miou >= 0.5" in page.text_content("#m-targets")
        assert "manager" in page.text_content("#m-lineage")
        mid = page.text_content("#m-id")
        shot(page, "assessment")
        page.click("#m-promote")
        wait_js(page, "() => /pre-labels new tasks/.test("
                      "document.getElementById('m-prelabeller').textContent)", timeout=60)
        assert page.errors == []
        browser.close()
    # the registry knows the model, with its lineage; the project's pre-labeller is it
    m = st.ok("manager", "GET", f"/api/models/{mid}")
    assert m["prelabeller"] and m["started_by"] == "manager" and m["project_id"] == pid
    assert len(m["dataset"]["annotations"]) >= 2 and m["dataset"]["hash"]
    assert st.ok("manager", "GET", f"/api/projects/{pid}")["prelabel"]["model_id"] == mid
    # a new task gets the model's labels: exactly its prediction of the new image
    img = blob_image(99, SIZE)
    up = st.ok("manager", "POST", f"/api/projects/{pid}/images",
               files=[("files", ("new.png", png_bytes(img), "image/png"))])
    job = st.app.state.jobs.wait(up["prelabel_job"]["id"], 60)
    assert job["state"] == "done" and job["result"]["prelabelled"] == 1, job
    tid = up["task_ids"][0]
    ann = st.ok("manager", "GET", f"/api/tasks/{tid}/annotation")
    assert ann["version"] == 1
    ids = masks.decode_runs(np.asarray(ann["runs"]), ann["height"], ann["width"])
    cat = {s["id"]: s["category_id"] for s in ann["segments"]}
    got = np.vectorize(lambda i: cat.get(int(i), 0))(ids)
    from segflow.predict.predictor import Predictor

    _, sem = Predictor(st.app.state.data_dir / "models" / mid / "model.pt",
                       device="cpu").instances(img)
    assert (got == sem).mean() == 1.0
