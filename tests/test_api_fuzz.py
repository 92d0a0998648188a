"""A schemathesis run against the OpenAPI spec: no request the spec allows (and none of the
malformed ones it generates) may end in a server error."""

import itertools
from collections import Counter

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from inspector.web import create_app
from tests.conftest import authorize, judged_demo_line

# Streams that never end by themselves (a browser closes them); their parameters are checked
# in test_web.py and test_live_view.py.
STREAMS = ("/api/events", "/api/cameras/{camera_id}/stream.mjpg")


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    pipe = judged_demo_line(tmp_path_factory.mktemp("fuzz"), 8)
    app = create_app(pipe.store, pipe.status, pipe.trigger, live=pipe.live)
    with TestClient(app, raise_server_exceptions=False) as c:
        authorize(c, pipe.store, "admin")
        yield app, c
    pipe.stop()


def operations(app):
    schema = schemathesis.openapi.from_dict(app.openapi())
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path not in STREAMS:
            yield op


def test_openapi_lists_the_api(line):
    app, _ = line
    paths = {(op.method.upper(), op.path) for op in operations(app)}
    assert {("GET", "/api/verdicts"), ("GET", "/api/stats"), ("POST", "/api/inspections/{inspection_id}/reviews"),
            ("POST", "/api/cameras/{camera_id}/trigger"), ("GET", "/api/cameras"), ("GET", "/metrics")} <= paths


def test_no_request_ends_in_a_server_error(line):
    """Every operation, positive and negative cases (schemathesis' generation modes): a 5xx fails."""
    app, client = line
    failures, calls = [], Counter()
    for op, mode in itertools.product(list(operations(app)), (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)):
        @given(case=op.as_strategy(mode))
        @settings(max_examples=30, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            kw = case.as_transport_kwargs(base_url="http://testserver")
            kw.pop("cookies", None)
            headers = {**(kw.pop("headers", None) or {}), "Authorization": client.headers["Authorization"]}
            response = client.request(headers=headers, **{k: v for k, v in kw.items() if v is not None})
            calls[mode, response.status_code // 100] += 1
            case.validate_response(response, checks=[not_a_server_error])

        try:
            run()
        except Unsatisfiable:  # nothing to get wrong: no parameters, or only a free-form string
            assert mode is GenerationMode.NEGATIVE
        except (Exception, BaseExceptionGroup) as e:  # every operation's failure, then one report
            failures.append(f"{op.method.upper()} {op.path} ({mode.value}): {str(e)[:600]}")
    assert not failures, "\n".join(failures)
    # Both kinds ran and reached the handlers: valid requests answered 2xx, malformed ones 4xx.
    assert calls[GenerationMode.POSITIVE, 2] > 100 and calls[GenerationMode.NEGATIVE, 4] > 100, calls
