"""A schemathesis run against the OpenAPI spec: no request the spec allows (and none of the
malformed ones it generates) may end in a server error - nor one with hostile headers, nor one
with times at the edges of the calendar."""

import itertools
from collections import Counter

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from inspector.web import create_app
from tests.conftest import authorize, judged_demo_line

# Streams that never end by themselves (a browser closes them): each request reads the status
# and headers, then hangs up.
STREAMS = ("/api/events", "/api/cameras/{camera_id}/stream.mjpg")
# The headers the app or its server reads, beyond what the spec declares.
HEADERS = ("Last-Event-ID", "X-CSRF-Token", "X-Forwarded-For", "X-Forwarded-Proto", "Accept", "Cookie",
           "Content-Type", "Authorization", "Origin", "If-None-Match", "Range", "Accept-Encoding")
# Times whose UTC or plant-time equivalent lies outside what a datetime holds, and the epoch.
EDGES = ("0001-01-01T00:00:00+05:00", "0001-01-01T00:00:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-05:00",
         "9999-12-31T23:59:59.999999", "9999-12-30T00:00:00", "1970-01-01T00:00:00Z", "1969-12-31T23:59:59+14:00",
         "2026-03-29T02:30:00", "0001-01-02T00:00:00")


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    pipe = judged_demo_line(tmp_path_factory.mktemp("fuzz"), 8)
    app = create_app(pipe.store, pipe.status, pipe.trigger, live=pipe.live, recipe=pipe.change_recipe)
    with TestClient(app, raise_server_exceptions=False) as c:
        authorize(c, pipe.store, "admin")
        yield app, c
    pipe.stop()


def operations(app):
    schema = schemathesis.openapi.from_dict(app.openapi())
    for result in schema.get_all_operations():
        yield result.ok()


def send(client, op, headers: dict, **kw):
    """The request, with the test's token unless `headers` brings its own; a stream is hung up
    on once its status is in."""
    headers = {"Authorization": client.headers["Authorization"], **headers}
    if op.path in STREAMS:
        with client.stream(headers=headers, **kw) as r:
            if r.status_code >= 300:
                r.read()  # an error's body ends
        if r.status_code >= 300:
            return r
        got = httpx.Response(r.status_code, headers=r.headers, content=b"", request=r.request)  # until hanging up
        got.elapsed = r.elapsed
        return got
    return client.request(headers=headers, **kw)


def test_openapi_lists_the_api(line):
    app, _ = line
    paths = {(op.method.upper(), op.path) for op in operations(app)}
    assert {("GET", "/api/verdicts"), ("GET", "/api/stats"), ("POST", "/api/inspections/{inspection_id}/reviews"),
            ("POST", "/api/cameras/{camera_id}/trigger"), ("POST", "/api/cameras/{camera_id}/recipe"),
            ("GET", "/api/recipes"), ("GET", "/api/cameras"), ("GET", "/metrics")} <= paths


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
            headers = {k: v for k, v in (kw.pop("headers", None) or {}).items() if k.lower() != "authorization"}
            response = send(client, op, headers, **{k: v for k, v in kw.items() if v is not None})
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


def test_the_spec_declares_the_last_event_id_header(line):
    """So that the run above fuzzes it (a garbage or huge one was a 500)."""
    app, _ = line
    (events,) = [op for op in operations(app) if op.path == "/api/events"]
    assert "Last-Event-ID" in {p.name for p in events.headers}


# Header values as a hostile client sends them: any bytes but the line breaks HTTP forbids.
header_value = st.binary(max_size=300).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b"\0", b"")) | \
    st.sampled_from([b"", b"abc", b"9" * 40, b"-1", b"Bearer ", b"Bearer insp_x", b"inspector_session=x" * 20,
                     b"application/json", b"multipart/form-data; boundary=", b"text/html", b"bytes=0-",
                     b"1.2.3.4, 5.6.7.8", b"\xff\xfe", b"*"])


def test_no_header_value_ends_in_a_server_error(line):
    """Every operation with valid parameters and hostile values in the headers the app reads."""
    app, client = line
    failures, calls = [], Counter()
    for op in operations(app):
        @given(case=op.as_strategy(GenerationMode.POSITIVE),
               headers=st.dictionaries(st.sampled_from(HEADERS), header_value, min_size=1, max_size=4))
        @settings(max_examples=25, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case, headers):
            kw = case.as_transport_kwargs(base_url="http://testserver")
            kw.pop("cookies", None)
            kw.pop("headers", None)
            response = send(client, op, headers, **{k: v for k, v in kw.items() if v is not None})
            calls[response.status_code // 100] += 1
            assert response.status_code < 500, (headers, response.status_code)

        try:
            run()
        except (Exception, BaseExceptionGroup) as e:
            failures.append(f"{op.method.upper()} {op.path}: {str(e)[:600]}")
    assert not failures, "\n".join(failures)
    assert calls[2] > 50 and calls[4] > 50, calls  # both reached the handlers and were refused


def test_times_at_the_edges_of_the_calendar_are_never_a_server_error(line):
    """Each time parameter of each operation, at each edge: a 2xx or a 4xx naming the range."""
    app, client = line
    spec, failures = app.openapi(), []
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            for p in op.get("parameters", []):
                schemas = p["schema"].get("anyOf", [p["schema"]])
                if p["in"] != "query" or not any(x.get("format") == "date-time" for x in schemas):
                    continue
                for value in EDGES:
                    r = send(client, next(o for o in operations(app) if o.path == path and o.method == method),
                             {}, method=method.upper(), url=path, params={p["name"]: value})
                    if r.status_code >= 500 or (r.status_code == 422 and "out of range" not in r.text
                                                 and "stats window" not in r.text):
                        failures.append(f"{method.upper()} {path}?{p['name']}={value}: {r.status_code}")
    assert not failures, "\n".join(failures)
