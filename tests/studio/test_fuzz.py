"""Property-based fuzzing of the studio's REST API from its own OpenAPI schema (schemathesis).

Every operation gets generated requests (valid and invalid bodies, parameters at and past
their bounds), each sent as every role and anonymously, once with the generated path ids
and once with the ids of a real project, task and image, so requests reach the code behind
the permission checks. The property: no answer is a server error (>= 500) and the server
never crashes.

A modest run is part of the default suite. A larger run:

    SEGFLOW_FUZZ_EXAMPLES=200 SEGFLOW_FUZZ_DB=both .venv/bin/python -m pytest tests/studio/test_fuzz.py
"""

from __future__ import annotations

import contextlib
import os

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402

from tests.studio.conftest import make_studio, pg_available, pg_schema, setup_project  # noqa: E402

EXAMPLES = int(os.environ.get("SEGFLOW_FUZZ_EXAMPLES", "5"))
ROLES = ("admin", "manager", "annotator", "reviewer", "outsider", None)
# the slowest operations (a chart, image segmentation, a password hash) get two roles in the
# default run: one that may call them and one that may not; every role in a larger run
SLOW = {"/api/projects/{pid}/dashboard.png": ("manager", "outsider"),
        "/api/tasks/{tid}/assist": ("annotator", "manager"),
        "/api/projects/{pid}/quality.png": ("manager", "annotator"),
        "/api/users": ("admin", "manager")}


@pytest.fixture(scope="module")
def fuzz_studio(tmp_path_factory):
    with contextlib.ExitStack() as stack:
        url = None
        if os.environ.get("SEGFLOW_FUZZ_DB", "sqlite") in ("postgresql", "both") and pg_available():
            url = stack.enter_context(pg_schema("sf_fuzz"))
        st = make_studio(tmp_path_factory.mktemp("fuzz"), url)
        ctx = setup_project(st, 2)
        task = st.ok("admin", "GET", f"/api/tasks/{ctx['tasks'][0]}")
        st.real = {"pid": ctx["pid"], "tid": ctx["tasks"][0], "iid": task["image"]["id"],
                   "vid": 1, "version": 1}
        yield st
        st.app.state.jobs.shutdown()
        st.app.state.engine.dispose()


def send(st, case) -> None:
    """``case`` as every role and anonymously, with generated and with real path ids."""
    if case.path_parameters and "jid" not in case.path_parameters:
        variants = [dict(case.path_parameters),
                    {k: st.real.get(k, v) for k, v in case.path_parameters.items()}]
    else:
        variants = [case.path_parameters]
    if case.query and isinstance(case.query.get("wait"), (int, float)):
        case.query["wait"] = min(case.query["wait"], 1)  # keep the run short
    roles = SLOW.get(case.path, ROLES) if EXAMPLES <= 10 else ROLES
    for role in roles:
        if role == "admin" and case.path.endswith(("/import", "/volumes", "/rasters")):
            continue  # an admin may import any server folder: fuzzing would import the disk
        for params in variants:
            case.path_parameters = params
            r = case.call(headers=st.as_(role))
            assert r.status_code < 500, (role, case.method, case.formatted_path, r.status_code,
                                         r.text[:500])


def test_no_server_errors(fuzz_studio):
    st = fuzz_studio
    schema = schemathesis.openapi.from_asgi("/openapi.json", st.app)
    ops = [r.ok() for r in schema.get_all_operations()]
    assert len(ops) >= 25  # every operation of the API is fuzzed
    for op in ops:
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def run(case):
            send(st, case)

        run()
