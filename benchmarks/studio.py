"""Studio load test on loopback: simulated annotators fetching tasks and saving 1-megapixel
masks concurrently, against a real server process (uvicorn), on SQLite and on PostgreSQL.

    .venv/bin/python benchmarks/studio.py                       # SQLite, then PostgreSQL if reachable
    .venv/bin/python benchmarks/studio.py --db sqlite --seconds 30 --annotators 50
    .venv/bin/python benchmarks/studio.py --browser    # the editor on a 4000x3000 image, Chromium
    .venv/bin/python benchmarks/studio.py --team --workers 2 --levels 50,100,150,200 --seconds 40
        # issue 11: PostgreSQL, `segflow studio --workers N`, annotators added level by level

Each annotator loops for --seconds: fetch the next task (GET next-task, then its labels, as the
editor does), think for a random --think interval (people take seconds per edit), then save a
new 1000x1000 label map (PUT, ~20 objects). Afterwards every acknowledged save is read back
by version and compared pixel for pixel with what was sent: zero lost or corrupted saves is
the goal, with p95 < 200 ms per task fetch and < 300 ms per mask save (issue 5).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SIDE = 1000
ANN_PW = "quiet-harbour-lantern-42"  # passes the studio's password policy (zxcvbn score 4)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def label_map(seed: int) -> tuple[np.ndarray, list[dict]]:
    rng = np.random.default_rng(seed)
    ids = np.zeros((SIDE, SIDE), np.int32)
    yy, xx = np.ogrid[:SIDE, :SIDE]
    segs = []
    for k in range(1, 21):
        cy, cx, r = rng.integers(40, SIDE - 40, 2).tolist() + [int(rng.integers(15, 40))]
        ids[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = k
    for k in np.unique(ids):
        if k:
            segs.append({"id": int(k), "category_id": 2})
    return ids, segs


def png(arr: np.ndarray) -> bytes:
    import io

    from PIL import Image

    b = io.BytesIO()
    Image.fromarray(arr).save(b, format="PNG", compress_level=1)
    return b.getvalue()


def pg_url() -> str | None:
    try:
        import psycopg

        with psycopg.connect("host=127.0.0.1 port=5432 dbname=test user=postgres", connect_timeout=2,
                             autocommit=True) as c:
            schema = f"sfbench_{os.getpid()}"
            c.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            c.execute(f"CREATE SCHEMA {schema}")
        return f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    except Exception:
        return None


def drop_pg(url: str) -> None:
    import psycopg

    schema = url.rsplit("%3D", 1)[1]
    with psycopg.connect("host=127.0.0.1 port=5432 dbname=test user=postgres", autocommit=True) as c:
        c.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def prepare(db_url: str | None, data: Path) -> None:
    from segflow.studio import security
    from segflow.studio.app import create_app
    from segflow.studio.tables import User

    app = create_app(db_url, data)
    with app.state.sessions() as s:
        s.add(User(username="boss", password_hash=security.hash_password("boss-pass-1"), role="admin"))
        s.commit()
    app.state.engine.dispose()


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1000, q)) if xs else float("nan")


async def run(base: str, n_ann: int, seconds: float, think: tuple[float, float]) -> dict:
    import httpx

    limits = httpx.Limits(max_connections=n_ann + 10, max_keepalive_connections=n_ann + 10)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as c:
        tok = (await c.post("/api/auth/token", json={"username": "boss", "password": "boss-pass-1"})
               ).json()["token"]
        H = {"Authorization": f"Bearer {tok}"}
        schema = [{"id": 1, "name": "background"}, {"id": 2, "name": "object", "isthing": True}]
        pid = (await c.post("/api/projects", headers=H, json={
            "name": "load", "task_type": "instance", "schema": schema})).json()["id"]
        users = []
        for k in range(n_ann):
            r = await c.post("/api/users", headers=H, json={
                "username": f"ann{k}", "password": ANN_PW, "role": "annotator"})
            users.append(r.json()["id"])
        await c.post(f"/api/projects/{pid}/members", headers=H, json={"user_ids": users})
        rng = np.random.default_rng(0)
        for k in range(n_ann):  # one 1-megapixel image per annotator
            img = rng.integers(0, 255, (SIDE, SIDE, 3), dtype=np.uint8)
            await c.post(f"/api/projects/{pid}/images", headers=H,
                         files=[("files", (f"img{k}.png", png(img), "image/png"))])
        await c.post(f"/api/projects/{pid}/assign", headers=H, json={"mode": "balanced"})
        tokens = []
        for k in range(n_ann):
            r = await c.post("/api/auth/token", json={"username": f"ann{k}", "password": ANN_PW})
            tokens.append(r.json()["token"])
        from segflow.studio.services.masks import encode_runs

        bodies = []  # precomputed so the client spends its CPU on requests, not on encoding
        for k in range(8):
            ids, segs = label_map(k)
            bodies.append((encode_runs(ids), segs, hashlib.sha256(ids.tobytes()).hexdigest()))
        fetch, save, saved, errors = [], [], [], []
        t_end = time.perf_counter() + seconds

        async def annotator(k: int):
            h = {"Authorization": f"Bearer {tokens[k]}"}
            r_ = random.Random(k)
            await asyncio.sleep(r_.uniform(0, think[1]))  # people do not start in lockstep
            while time.perf_counter() < t_end:
                t0 = time.perf_counter()
                t = await c.get(f"/api/projects/{pid}/next-task", headers=h)
                a = await c.get(f"/api/tasks/{t.json()['id']}/annotation", headers=h)
                fetch.append(time.perf_counter() - t0)
                if t.status_code != 200 or a.status_code != 200:
                    errors.append(("fetch", t.status_code, a.status_code))
                    continue
                task = t.json()
                await asyncio.sleep(r_.uniform(*think))
                runs, segs, digest = bodies[r_.randrange(len(bodies))]
                payload = json.dumps({"base_version": task["version"], "width": SIDE, "height": SIDE,
                                      "runs": runs, "segments": segs, "seconds": 1.0})
                t0 = time.perf_counter()
                r = await c.put(f"/api/tasks/{task['id']}/annotation", content=payload,
                                headers={**h, "Content-Type": "application/json"})
                save.append(time.perf_counter() - t0)
                if r.status_code == 200:
                    saved.append((task["id"], r.json()["version"], digest, h))
                else:
                    errors.append(("save", r.status_code, r.text[:100]))

        t0 = time.perf_counter()
        await asyncio.gather(*(annotator(k) for k in range(n_ann)))
        wall = time.perf_counter() - t0
        from segflow.studio.services.masks import decode_runs

        bad = 0
        for tid, version, digest, h in saved:  # read every acknowledged save back
            a = (await c.get(f"/api/tasks/{tid}/annotation?version={version}", headers=h)).json()
            got = decode_runs(a["runs"], SIDE, SIDE)
            bad += hashlib.sha256(got.tobytes()).hexdigest() != digest
    return {"fetch": fetch, "save": save, "saves": len(saved), "errors": errors, "bad": bad,
            "wall": wall}


def bench(db: str, args) -> dict | None:
    url = None
    if db == "postgresql":
        url = pg_url()
        if url is None:
            print("PostgreSQL on 127.0.0.1:5432 not reachable: skipped")
            return None
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        prepare(url, data)
        port = free_port()
        code = ("import sys, uvicorn; from segflow.studio.app import create_app; "
                f"uvicorn.run(create_app({url!r}, {str(data)!r}), host='127.0.0.1', port={port}, "
                "log_level='warning')")
        srv = subprocess.Popen([sys.executable, "-c", code])
        try:
            import httpx

            for _ in range(200):
                try:
                    httpx.get(f"http://127.0.0.1:{port}/login", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            r = asyncio.run(run(f"http://127.0.0.1:{port}", args.annotators, args.seconds,
                                (args.think_min, args.think_max)))
        finally:
            srv.terminate()
            srv.wait(timeout=20)
            if url:
                drop_pg(url)
    ok = (pct(r["fetch"], 95) < 200 and pct(r["save"], 95) < 300 and r["bad"] == 0
          and not r["errors"])
    print(f"{db:10s} {args.annotators} annotators, {r['wall']:.0f} s: {len(r['fetch'])} task fetches "
          f"p50 {pct(r['fetch'], 50):.0f} ms p95 {pct(r['fetch'], 95):.0f} ms; {r['saves']} 1-MP saves "
          f"p50 {pct(r['save'], 50):.0f} ms p95 {pct(r['save'], 95):.0f} ms "
          f"({r['saves'] / r['wall']:.1f}/s); lost or corrupted {r['bad']}, errors {len(r['errors'])}"
          f" -> goal (fetch p95 < 200 ms, save p95 < 300 ms, none lost) {'met' if ok else 'NOT met'}",
          flush=True)
    if r["errors"]:
        print("  first errors:", r["errors"][:3])
    return r


# ---- a team on PostgreSQL with several worker processes (issue 11) ---------------------------


def team_prepare(url: str, data: Path, n: int) -> tuple[str, list[str]]:
    """The admin and n annotators with API tokens, written straight to the database: n logins
    would take n password hashes (and meet the login rate limit)."""
    from segflow.studio import security
    from segflow.studio.app import create_app
    from segflow.studio.tables import AuthToken, User

    app = create_app(url, data)
    pw = security.hash_password(ANN_PW)  # one hash for all: a benchmark, not accounts
    tokens = []
    with app.state.sessions() as s:
        s.add(User(username="boss", password_hash=security.hash_password("boss-pass-1"), role="admin"))
        for k in range(n + 1):
            u = User(username=f"ann{k}" if k < n else "boss-api", password_hash=pw,
                     role="annotator" if k < n else "admin")
            s.add(u)
            s.flush()
            tok, h = security.new_token()
            s.add(AuthToken(user_id=u.id, token_hash=h, kind="api", name="bench"))
            tokens.append(tok)
        s.commit()
    app.state.engine.dispose()
    return tokens[-1], tokens[:-1]


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its children (Linux /proc): the
    server's own cost, whatever else loads the machine."""
    total, todo = 0.0, [pid]
    tick = os.sysconf("SC_CLK_TCK")
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for t in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (t / "children").read_text().split()]
        except (OSError, ValueError, IndexError):
            continue
    return total


def percentiles(xs: list[float]) -> str:
    return f"{pct(xs, 50):.0f} / {pct(xs, 95):.0f}"


async def team_run(base: str, boss: str, tokens: list[str], levels: list[int], seconds: float,
                   think: tuple[float, float], server_pid: int) -> list[dict]:
    import httpx

    n = len(tokens)
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as c:
        H = {"Authorization": f"Bearer {boss}"}
        schema = [{"id": 1, "name": "background"}, {"id": 2, "name": "object", "isthing": True}]
        pid = (await c.post("/api/projects", headers=H, json={
            "name": "team", "task_type": "instance", "schema": schema})).json()["id"]
        uids = [(await c.get("/api/me", headers={"Authorization": f"Bearer {t}"})).json()["id"]
                for t in tokens]
        await c.post(f"/api/projects/{pid}/members", headers=H, json={"user_ids": uids})
        yy, xx = np.mgrid[:SIDE, :SIDE]
        for k in range(n):  # one 1-MP image per annotator (smooth: small PNGs, quick uploads)
            img = np.stack([(xx + k) % 256, (yy * 3) % 256, np.full_like(xx, k % 256)], -1).astype(np.uint8)
            r = await c.post(f"/api/projects/{pid}/images", headers=H,
                             files=[("files", (f"img{k}.png", png(img), "image/png"))])
            assert r.status_code == 201, r.text
        await c.post(f"/api/projects/{pid}/assign", headers=H, json={"mode": "balanced"})
        from segflow.studio.services.masks import decode_runs, encode_runs

        bodies = []
        for k in range(8):
            ids, segs = label_map(k)
            bodies.append((encode_runs(ids), segs, hashlib.sha256(ids.tobytes()).hexdigest()))
        saved, results = [], []
        async def annotator(k: int, level: int, t_end: float, rec: dict):
            h = {"Authorization": f"Bearer {tokens[k]}"}
            r_ = random.Random(k * 1000 + level)
            await asyncio.sleep(r_.uniform(0, think[1]))
            while time.perf_counter() < t_end:
                t0 = time.perf_counter()
                try:
                    t = await c.get(f"/api/projects/{pid}/next-task", headers=h)
                    a = await c.get(f"/api/tasks/{t.json()['id']}/annotation", headers=h)
                except httpx.HTTPError as e:
                    rec["errors"].append(("fetch", type(e).__name__))
                    continue
                rec["fetch"].append(time.perf_counter() - t0)
                if t.status_code != 200 or a.status_code != 200:
                    rec["errors"].append(("fetch", t.status_code, a.status_code))
                    continue
                task = t.json()
                await asyncio.sleep(r_.uniform(*think))
                runs, segs, digest = bodies[r_.randrange(len(bodies))]
                payload = json.dumps({"base_version": task["version"], "width": SIDE,
                                      "height": SIDE, "runs": runs, "segments": segs,
                                      "seconds": 1.0})
                t0 = time.perf_counter()
                try:
                    r = await c.put(f"/api/tasks/{task['id']}/annotation", content=payload,
                                    headers={**h, "Content-Type": "application/json"})
                except httpx.HTTPError as e:
                    rec["errors"].append(("save", type(e).__name__))
                    continue
                rec["save"].append(time.perf_counter() - t0)
                if r.status_code == 200:
                    saved.append((task["id"], r.json()["version"], digest, h))
                else:
                    rec["errors"].append(("save", r.status_code, r.text[:100]))

        for level in levels:
            rec = {"fetch": [], "save": [], "errors": []}
            fetch, save, errors = rec["fetch"], rec["save"], rec["errors"]
            t_end = time.perf_counter() + seconds
            t0, cpu0 = time.perf_counter(), tree_cpu(server_pid)
            await asyncio.gather(*(annotator(k, level, t_end, rec) for k in range(level)))
            wall, cpu = time.perf_counter() - t0, tree_cpu(server_pid) - cpu0
            results.append({"level": level, "fetch": fetch, "save": save, "errors": errors,
                            "wall": wall, "load": os.getloadavg()[0],
                            "cpu_per_cycle": cpu / max(1, len(save))})
            print(f"  {level:4d} annotators: {len(save)} saves ({len(save) / wall:.1f}/s), fetch "
                  f"p50/p95 {percentiles(fetch)} ms, save p50/p95 {percentiles(save)} ms, errors "
                  f"{len(errors)}, machine load {os.getloadavg()[0]:.1f}, server CPU "
                  f"{results[-1]['cpu_per_cycle'] * 1000:.0f} ms per fetch + save", flush=True)
            if errors:
                print("    first errors:", errors[:3], flush=True)
        bad = 0
        for tid, version, digest, h in saved:  # every acknowledged save, read back
            a = (await c.get(f"/api/tasks/{tid}/annotation?version={version}", headers=h)).json()
            bad += hashlib.sha256(decode_runs(a["runs"], SIDE, SIDE).tobytes()).hexdigest() != digest
    results.append({"saved": len(saved), "bad": bad})
    return results


def team_bench(args) -> None:
    url = pg_url()
    if url is None:
        print("PostgreSQL on 127.0.0.1:5432 not reachable: skipped")
        return
    levels = [int(x) for x in args.levels.split(",")]
    print(f"{os.cpu_count()} CPUs, load average before: {os.getloadavg()[0]:.1f} (server and "
          f"clients share this machine)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        boss, tokens = team_prepare(url, data, max(levels))
        port = free_port()
        srv = subprocess.Popen([sys.executable, "-m", "segflow", "studio", "--db", url, "--data",
                                str(data), "--port", str(port), "--workers", str(args.workers)])
        try:
            import httpx

            for _ in range(600):
                try:
                    httpx.get(f"http://127.0.0.1:{port}/login", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            res = asyncio.run(team_run(f"http://127.0.0.1:{port}", boss, tokens, levels,
                                       args.seconds, (args.think_min, args.think_max), srv.pid))
        finally:
            srv.terminate()
            srv.wait(timeout=30)
            drop_pg(url)
    end = res.pop()
    sat = next((r["level"] for r in res if pct(r["save"], 95) >= 300 or pct(r["fetch"], 95) >= 300),
               None)
    print(f"PostgreSQL, {args.workers} workers: {end['saved']} acknowledged saves read back, "
          f"{end['bad']} lost or corrupted; p95 >= 300 ms first at "
          f"{sat if sat else 'none of the levels'} annotators")
    print("| annotators | saves (/s) | fetch p50 / p95 ms | save p50 / p95 ms | errors | load | "
          "server CPU per fetch + save |")
    print("|---|---|---|---|---|---|---|")
    for r in res:
        print(f"| {r['level']} | {len(r['save'])} ({len(r['save']) / r['wall']:.1f}) | "
              f"{percentiles(r['fetch'])} | {percentiles(r['save'])} | {len(r['errors'])} | "
              f"{r['load']:.1f} | {r['cpu_per_cycle'] * 1000:.0f} ms |")


def browser_bench() -> None:
    """The editor in Debian's headless Chromium on a 4000x3000 image: time to open, per
    brush move (paint + overlay update + redraw), a 12-megapixel bucket fill, undo, and save."""
    import threading

    import httpx
    import uvicorn
    from playwright.sync_api import sync_playwright

    from segflow.studio import security
    from segflow.studio.app import create_app
    from segflow.studio.tables import User

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(None, Path(tmp) / "data")
        with app.state.sessions() as s:
            s.add(User(username="boss", password_hash=security.hash_password("boss-pass-1"), role="admin"))
            s.add(User(username="ann", password_hash=security.hash_password("ann-pass-1"), role="annotator"))
            s.commit()
        port = free_port()
        srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        threading.Thread(target=srv.run, daemon=True).start()
        while not srv.started:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        c = httpx.Client(base_url=base, timeout=120)
        h = {"Authorization": "Bearer " + c.post("/api/auth/token", json={
            "username": "boss", "password": "boss-pass-1"}).json()["token"]}
        pid = c.post("/api/projects", headers=h, json={"name": "big", "task_type": "panoptic", "schema": [
            {"id": 1, "name": "ground", "hotkey": "g"}, {"id": 2, "name": "thing", "isthing": True,
                                                         "hotkey": "t"}]}).json()["id"]
        c.post(f"/api/projects/{pid}/members", headers=h, json={"user_ids": [2]})
        yy, xx = np.mgrid[:3000, :4000]
        img = np.stack([(xx // 16) % 256, (yy // 12) % 256, np.full_like(xx, 90)], -1).astype(np.uint8)
        c.post(f"/api/projects/{pid}/images", headers=h,
               files=[("files", ("big.png", png(img), "image/png"))])
        c.post(f"/api/projects/{pid}/assign", headers=h, json={"mode": "balanced"})
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=flags)
            page = b.new_context(viewport={"width": 1400, "height": 900}).new_page()
            page.goto(f"{base}/login")
            page.fill("#username", "ann")
            page.fill("#password", "ann-pass-1")
            page.click("#login")
            page.wait_for_url(f"{base}/")
            t0 = time.perf_counter()
            page.goto(f"{base}/tasks/1/edit")
            while not page.evaluate("() => !!(window.studio && window.studio.ready)"):
                time.sleep(0.01)
            t_open = time.perf_counter() - t0

            def xy(x, y):
                return page.evaluate("""([x, y]) => { const r = document.getElementById('canvas')
                    .getBoundingClientRect(), S = window.studio;
                    return [r.left + S.ox + x * S.scale, r.top + S.oy + y * S.scale]; }""", [x, y])

            page.keyboard.press("g")
            page.click("[data-tool=fill]")
            t0 = time.perf_counter()
            page.mouse.click(*xy(100, 100))
            page.evaluate("() => new Promise(requestAnimationFrame)")
            t_fill = time.perf_counter() - t0
            page.keyboard.press("t")
            page.click("[data-tool=brush]")
            page.evaluate("window.studio.size = 60")
            page.mouse.move(*xy(500, 1500))
            page.mouse.down()
            pts = [xy(500 + 25 * k, 1500 + 300 * np.sin(k / 10)) for k in range(120)]
            t0 = time.perf_counter()
            for p in pts:
                page.mouse.move(*p)
            page.evaluate("() => new Promise(requestAnimationFrame)")
            t_move = (time.perf_counter() - t0) / len(pts)
            t0 = time.perf_counter()
            page.mouse.up()
            t_up = time.perf_counter() - t0
            t0 = time.perf_counter()
            page.keyboard.press("Control+z")
            t_undo = time.perf_counter() - t0
            page.keyboard.press("Control+y")
            t0 = time.perf_counter()
            page.click("#save")
            while "saved version 1" not in page.inner_text("#flash"):
                time.sleep(0.005)
            t_save = time.perf_counter() - t0
            b.close()
        srv.should_exit = True
    print(f"editor, 4000x3000 image in headless Chromium: open {t_open * 1000:.0f} ms; brush move "
          f"(60 px) {t_move * 1000:.1f} ms each; stroke end (undo record + lists) {t_up * 1000:.0f} ms; "
          f"bucket fill of 12 MP {t_fill * 1000:.0f} ms; undo {t_undo * 1000:.0f} ms; save "
          f"(encode + PUT + store) {t_save * 1000:.0f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--annotators", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=45)
    ap.add_argument("--think-min", type=float, default=2.0, help="seconds between fetch and save")
    ap.add_argument("--think-max", type=float, default=6.0)
    ap.add_argument("--browser", action="store_true", help="time the editor on a 4000x3000 image")
    ap.add_argument("--team", action="store_true", help="PostgreSQL, several server workers, "
                                                        "annotators added level by level")
    ap.add_argument("--workers", type=int, default=2, help="server worker processes (--team)")
    ap.add_argument("--levels", default="50,100,150,200", help="annotators per level (--team)")
    args = ap.parse_args()
    if args.team:
        team_bench(args)
        return 0
    if args.browser:
        browser_bench()
        return 0
    for db in (["sqlite", "postgresql"] if args.db == "both" else [args.db]):
        bench(db, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
