"""Studio accounts on SQLite and PostgreSQL: login rate limits, timing of unknown users, the
password policy, expiring and revocable tokens, deactivation, password change and reset, the
audit log; and the scope of reviewers and managers."""

from __future__ import annotations

import contextlib
import statistics
import time
import uuid

import pytest

from tests.studio.conftest import setup_project

STRONG = "kiwi-lantern-97-otter"


def _login(st, user, password):
    return st.client.post("/api/auth/token", json={"username": user, "password": password})


def _audit_kinds(st) -> list[str]:
    return [e["kind"] for e in st.ok("admin", "GET", "/api/audit?limit=1000")]


def test_failed_logins_are_limited_per_user_and_per_address(studio):
    from segflow.studio.services.accounts import LoginLimits

    st = studio
    st.app.state.login_limits = LoginLimits("3/minute", "6/minute")
    for _ in range(3):
        assert _login(st, "annotator", "wrong-guess").status_code == 401
    r = _login(st, "annotator", "annotator-pw-123")  # even the right password waits now
    assert r.status_code == 429
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert "annotator" in r.json()["detail"] and "again in" in r.json()["detail"]
    assert _login(st, "reviewer", "reviewer-pw-123").status_code == 200  # other users are fine
    for name in ("x1", "x2", "x3"):  # 3 more failures from this address: 6 in all
        assert _login(st, name, "nope").status_code == 401
    r = _login(st, "manager", "manager-pw-123")
    assert r.status_code == 429 and "Retry-After" in r.headers  # the address is blocked
    kinds = _audit_kinds(st)
    assert kinds.count("login_failed") == 6 and kinds.count("login_rate_limited") == 2


def test_a_successful_login_clears_its_user_count(studio):
    from segflow.studio.services.accounts import LoginLimits

    st = studio
    st.app.state.login_limits = LoginLimits("3/minute", "100/minute")
    for _ in range(2):
        assert _login(st, "annotator", "wrong-guess").status_code == 401
    assert _login(st, "annotator", "annotator-pw-123").status_code == 200
    for _ in range(2):
        assert _login(st, "annotator", "wrong-guess").status_code == 401
    assert _login(st, "annotator", "annotator-pw-123").status_code == 200


def test_limits_in_redis_are_shared_by_workers(tmp_path):
    """Two apps (two worker processes) counting in the same Redis see each other's failures."""
    redis = pytest.importorskip("redis")
    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping()
    except Exception:
        pytest.skip("Redis on 127.0.0.1:6379 is not reachable")
    from segflow.studio.services.accounts import LoginLimits

    prefix = f"segflow-test-{uuid.uuid4().hex[:8]}"
    a = LoginLimits("2/minute", "100/minute", "redis://127.0.0.1:6379", prefix)
    b = LoginLimits("2/minute", "100/minute", "redis://127.0.0.1:6379", prefix)
    a.failed("alice", "10.0.0.1")
    assert b.retry_after("alice", "10.0.0.2") == 0
    b.failed("alice", "10.0.0.2")
    assert a.retry_after("alice", "10.0.0.3") > 0  # counted across both
    a.succeeded("alice")
    assert b.retry_after("alice", "10.0.0.3") == 0


def test_bad_limit_settings_are_one_line_errors(tmp_path):
    from segflow.errors import SegflowError
    from segflow.studio.app import create_app

    with pytest.raises(SegflowError, match="10/15 minutes"):
        create_app(None, tmp_path / "a", login_limit_per_user="ten per hour")
    with pytest.raises(SegflowError, match="rate-limit-storage"):
        create_app(None, tmp_path / "b", rate_limit_storage="mysql://nope")
    for bad in (0, -1, float("nan"), float("inf"), 1e9):
        with pytest.raises(SegflowError, match="token TTL"):
            create_app(None, tmp_path / "c", token_ttl_days=bad)


def test_unknown_users_take_as_long_as_known_ones(studio, monkeypatch):
    """An unknown name is verified against a dummy argon2 hash: same work, same time."""
    from segflow.studio import security

    st = studio
    calls = []
    real = security.verify_password
    monkeypatch.setattr(security, "verify_password", lambda h, p: calls.append(h) or real(h, p))
    assert _login(st, "nobody-here", "whatever-pw").status_code == 401
    assert calls == [security.dummy_hash()]

    def took(user):
        t = time.perf_counter()
        assert _login(st, user, "wrong-password-1").status_code == 401
        return time.perf_counter() - t

    known = statistics.median(took("admin") for _ in range(3))
    unknown = statistics.median(took(f"ghost{k}") for k in range(3))
    assert unknown > 0.5 * known, (known, unknown)  # before: ~3 ms against ~165 ms


@pytest.mark.parametrize("password, why", [
    ("password", "at least 10"), ("12345678", "at least 10"), (" " * 8, "at least 10"),
    (" " * 12, "only spaces"), ("passwordpassword", "too weak"), ("1234567890", "too weak"),
    ("newbie12345", "too weak"), ("qwertyuiop", "common password"),
])
def test_weak_passwords_are_refused_with_a_reason(studio, password, why):
    st = studio
    r = st.call("admin", "POST", "/api/users", json={"username": "newbie", "password": password,
                                                     "role": "annotator"})
    assert r.status_code == 422 and why in r.json()["detail"], r.text
    assert r.json()["detail"].startswith("password:")


def test_password_policy_on_change_and_reset(studio):
    st = studio
    uid = st.ok("admin", "POST", "/api/users", json={"username": "newbie", "password": STRONG,
                                                     "role": "annotator"})["id"]
    r = st.call("admin", "POST", f"/api/users/{uid}/password", json={"new_password": "12345678"})
    assert r.status_code == 422 and "new_password" in r.json()["detail"]
    r = st.call("annotator", "POST", "/api/auth/password",
                json={"old_password": "annotator-pw-123", "new_password": "password"})
    assert r.status_code == 422 and "new_password" in r.json()["detail"]


def test_tokens_expire_and_can_be_listed_and_revoked(studio):
    from segflow.studio.tables import AuthToken, now

    st = studio
    r = st.client.post("/api/auth/token", json={"username": "annotator",
                                                "password": "annotator-pw-123", "name": "ci",
                                                "expires_in_days": 2})
    tok = r.json()
    assert tok["expires_at"] is not None
    h = {"Authorization": f"Bearer {tok['token']}"}
    mine = st.client.get("/api/auth/tokens", headers=h).json()
    assert {t["name"] for t in mine} >= {"ci", "api"} and all("token" not in t for t in mine)
    # at most the studio's TTL (30 days by default)
    r = st.client.post("/api/auth/token", json={"username": "annotator",
                                                "password": "annotator-pw-123",
                                                "expires_in_days": 31})
    assert r.status_code == 422 and "30" in r.json()["detail"]
    # an expired token no longer works
    with st.app.state.sessions() as s:
        s.get(AuthToken, tok["id"]).expires_at = now()
        s.commit()
    assert st.client.get("/api/me", headers=h).status_code == 401
    # others cannot revoke my token; I and admins can
    t2 = _login(st, "annotator", "annotator-pw-123").json()
    assert st.call("annotator2", "DELETE", f"/api/auth/tokens/{t2['id']}").status_code == 404
    assert st.call("manager", "GET", f"/api/auth/tokens?user_id={st.ids['annotator']}").status_code == 404
    assert st.ok("annotator", "DELETE", f"/api/auth/tokens/{t2['id']}") == {"revoked": t2["id"]}
    assert st.client.get("/api/me", headers={"Authorization": f"Bearer {t2['token']}"}).status_code == 401
    t3 = _login(st, "annotator", "annotator-pw-123").json()
    listed = st.ok("admin", "GET", f"/api/auth/tokens?user_id={st.ids['annotator']}")
    assert t3["id"] in {t["id"] for t in listed}
    st.ok("admin", "DELETE", f"/api/auth/tokens/{t3['id']}")
    assert st.client.get("/api/me", headers={"Authorization": f"Bearer {t3['token']}"}).status_code == 401
    kinds = _audit_kinds(st)
    assert kinds.count("token_revoked") == 2 and "token_created" in kinds


def test_logout_revokes_the_session_and_the_token_used(studio):
    st = studio
    tok = _login(st, "reviewer", "reviewer-pw-123").json()["token"]
    h = {"Authorization": f"Bearer {tok}"}
    assert st.client.post("/api/auth/logout", headers=h).status_code == 200
    assert st.client.get("/api/me", headers=h).status_code == 401
    assert st.call("reviewer", "GET", "/api/me").status_code == 200  # other tokens live on
    c = st.client
    assert c.post("/api/auth/login", json={"username": "reviewer",
                                           "password": "reviewer-pw-123"}).status_code == 200
    session = c.cookies["segflow_session"]
    assert c.get("/api/me").status_code == 200
    assert c.post("/api/auth/logout", headers={"X-CSRF-Token": c.cookies["segflow_csrf"]}).status_code == 200
    c.cookies.set("segflow_session", session)  # a copied cookie is dead too
    assert c.get("/api/me").status_code == 401
    assert "logout" in _audit_kinds(st)


def test_deactivated_users_cannot_log_in_and_their_tokens_stop(studio):
    st = studio
    uid = st.ids["annotator"]
    c = st.client
    assert c.post("/api/auth/login", json={"username": "annotator",
                                           "password": "annotator-pw-123"}).status_code == 200
    assert c.get("/api/me").status_code == 200
    assert st.call("manager", "PATCH", f"/api/users/{uid}", json={"active": False}).status_code == 403
    assert st.call("admin", "PATCH", f"/api/users/{st.ids['admin']}",
                   json={"active": False}).status_code == 409  # not oneself
    u = st.ok("admin", "PATCH", f"/api/users/{uid}", json={"active": False})
    assert u["active"] is False
    assert st.call("annotator", "GET", "/api/me").status_code == 401
    assert c.get("/api/me").status_code == 401  # the browser session too
    r = _login(st, "annotator", "annotator-pw-123")
    assert r.status_code == 401
    st.ok("admin", "PATCH", f"/api/users/{uid}", json={"active": True})
    assert _login(st, "annotator", "annotator-pw-123").status_code == 200
    assert st.call("annotator", "GET", "/api/me").status_code == 401  # revoked, not paused
    kinds = _audit_kinds(st)
    assert {"user_deactivated", "user_activated", "login_failed"} <= set(kinds)
    failed = next(e for e in st.ok("admin", "GET", "/api/audit?kind=login_failed"))
    assert failed["detail"] == "deactivated" and failed["username"] == "annotator"


def test_password_change_needs_the_old_one_and_admin_reset(studio):
    st = studio
    other = _login(st, "annotator", "annotator-pw-123").json()["token"]
    r = st.call("annotator", "POST", "/api/auth/password",
                json={"old_password": "not-my-password", "new_password": STRONG})
    assert r.status_code == 403 and "old_password" in r.json()["detail"]
    r = st.ok("annotator", "POST", "/api/auth/password",
              json={"old_password": "annotator-pw-123", "new_password": STRONG})
    assert r["revoked"] >= 1
    assert st.call("annotator", "GET", "/api/me").status_code == 200  # the token used stays
    assert st.client.get("/api/me", headers={"Authorization": f"Bearer {other}"}).status_code == 401
    assert _login(st, "annotator", "annotator-pw-123").status_code == 401
    assert _login(st, "annotator", STRONG).status_code == 200
    # admin reset: the user's sessions and tokens all end
    new = "otter-kiwi-lantern-42"
    assert st.call("manager", "POST", f"/api/users/{st.ids['annotator']}/password",
                   json={"new_password": new}).status_code == 403
    st.ok("admin", "POST", f"/api/users/{st.ids['annotator']}/password", json={"new_password": new})
    assert st.call("annotator", "GET", "/api/me").status_code == 401
    assert _login(st, "annotator", new).status_code == 200
    assert st.call("admin", "POST", "/api/users/99999/password",
                   json={"new_password": new}).status_code == 404
    kinds = _audit_kinds(st)
    assert {"password_changed", "password_reset", "token_created"} <= set(kinds)


def test_audit_log_is_for_admins(studio):
    st = studio
    _login(st, "manager", "bad-password-1")
    for who in ("manager", "annotator", "reviewer"):
        assert st.call(who, "GET", "/api/audit").status_code == 403
    ev = st.ok("admin", "GET", "/api/audit?kind=login_failed")
    assert ev[0]["username"] == "manager" and ev[0]["ip"] and ev[0]["detail"] == "wrong password"
    assert st.call("admin", "GET", "/api/audit?kind=nonsense").status_code == 422
    assert st.call("admin", "GET", "/api/audit?limit=100000").status_code == 422
    page = st.call("admin", "GET", "/audit")
    assert page.status_code == 200 and 'id="audit"' in page.text
    assert st.call("manager", "GET", "/audit").status_code == 403


def test_reviewer_reads_an_image_only_once_submitted(studio):
    from tests.studio.test_api import _disc_labels, labels_body

    st = studio
    ctx = setup_project(st, 1)
    tid = ctx["tasks"][0]
    iid = st.ok("manager", "GET", f"/api/tasks/{tid}")["image"]["id"]
    assert st.call("reviewer", "GET", f"/api/images/{iid}").status_code == 404
    assert st.call("reviewer", "GET", f"/api/tasks/{tid}/annotation").status_code == 404
    ids, segs = _disc_labels()
    st.ok("annotator", "PUT", f"/api/tasks/{tid}/annotation", json=labels_body(st, tid, ids, segs))
    assert st.call("reviewer", "GET", f"/api/images/{iid}").status_code == 404  # saved, not submitted
    st.ok("annotator", "POST", f"/api/tasks/{tid}/submit")
    assert st.call("reviewer", "GET", f"/api/images/{iid}").status_code == 200
    assert st.call("reviewer", "GET", f"/api/tasks/{tid}/annotation").status_code == 200


def test_a_manager_lists_only_the_users_of_their_projects(studio):
    st = studio
    setup_project(st, 1)  # manager's project: annotator, annotator2, reviewer
    names = {u["username"] for u in st.ok("manager", "GET", "/api/users")}
    assert names == {"manager", "annotator", "annotator2", "reviewer"}  # not admin, outsider
    everyone = {u["username"] for u in st.ok("admin", "GET", "/api/users")}
    assert {"admin", "outsider"} <= everyone


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migration_0002_upgrades_existing_data(tmp_path, backend):
    """A database at 0001 with a pre-labelled task and a never-expiring token: after the
    upgrade the task is flagged untouched, the token expires, users are active, and no row
    is lost (on SQLite, copying a table in batch mode used to cascade-delete its children)."""
    from alembic import command
    from sqlalchemy import text

    from segflow.studio.db import alembic_config, make_engine
    from tests.studio.conftest import pg_schema

    with contextlib.ExitStack() as stack:
        url = (stack.enter_context(pg_schema()) if backend == "postgresql"
               else f"sqlite:///{tmp_path / 'old.db'}")
        engine = make_engine(url)
        stack.callback(engine.dispose)
        command.upgrade(alembic_config(engine), "0001")
        with engine.begin() as c:
            c.execute(text("INSERT INTO users (id, username, password_hash, role, created_at) "
                           "VALUES (1, 'u', 'x', 'admin', '2026-01-01')"))
            c.execute(text("INSERT INTO auth_tokens (user_id, token_hash, kind, name, csrf, "
                           "created_at) VALUES (1, 'h', 'api', 'old', '', '2026-01-01')"))
            c.execute(text("INSERT INTO projects (id, name, task_type, goals, target_metric, "
                           "target_threshold, image_count, domains, schema, prelabel, created_at) "
                           "VALUES (1, 'p', 'semantic', '', 'miou', 0.8, 0, '[]', '[]', '{}', "
                           "'2026-01-01')"))
            c.execute(text("INSERT INTO images (id, project_id, sha256, ext, filename, width, "
                           "height, created_at) VALUES (1, 1, 's', 'png', 'a.png', 2, 2, "
                           "'2026-01-01'), (2, 1, 't', 'png', 'b.png', 2, 2, '2026-01-01')"))
            c.execute(text("INSERT INTO tasks (id, project_id, image_id, state, version, "
                           "seconds_spent, updated_at) VALUES (1, 1, 1, 'assigned', 1, 0, "
                           "'2026-01-01'), (2, 1, 2, 'assigned', 2, 0, '2026-01-01')"))
            c.execute(text("INSERT INTO annotations (task_id, version, kind, segments, created_at) "
                           "VALUES (1, 1, 'prelabel', '[]', '2026-01-01'), "
                           "(2, 1, 'prelabel', '[]', '2026-01-01'), (2, 2, 'save', '[]', '2026-01-01')"))
        command.upgrade(alembic_config(engine), "heads")
        with engine.connect() as c:
            flags = dict(c.execute(text("SELECT id, prelabel_untouched FROM tasks")).all())
            assert {k: bool(v) for k, v in flags.items()} == {1: True, 2: False}
            assert c.execute(text("SELECT expires_at FROM auth_tokens")).scalar() is not None
            assert bool(c.execute(text("SELECT active FROM users")).scalar())
            assert c.execute(text("SELECT count(*) FROM annotations")).scalar() == 3  # kept
        command.downgrade(alembic_config(engine), "0001")  # and back, losing nothing
        with engine.connect() as c:
            assert c.execute(text("SELECT count(*) FROM annotations")).scalar() == 3
            assert c.execute(text("SELECT count(*) FROM auth_tokens")).scalar() == 1
