"""Schemathesis over the API's own OpenAPI document, on both databases (one demo donor): for every operation,
generated parameters and bodies give no server error and every response matches its documented schema (status code,
content type, headers, body), with a technician's token and without any token (then never a success: 401; 422 for a
request the schema itself refuses, 400 for a body that is not JSON, 405 for a method the path does not take). The
rate limit is off here (its own test is tests/api/test_api_common.py)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlmodel import Session

from biobank.api import create_app
from biobank.models import User
from biobank.services import tokens

schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", create_app(rate_limit_per_minute=0))

pytestmark = pytest.mark.demo(1)

#: No server error, and every response as documented: status code, content type, headers, body.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
SUPPRESS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much]


@pytest.fixture(autouse=True)
def attachment_store(store_dir) -> None:
    """Whatever an upload keeps goes to the test's own directory (tests/conftest.py), not the working directory."""


@pytest.fixture
def token(engine) -> str:
    with Session(engine, expire_on_commit=False) as session:
        user = User(username="api_fuzz", role="technician")
        session.add(user)
        session.commit()
        issued = tokens.issue_personal_token(session, user=user, name="fuzz").token
        session.commit()
        return issued


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=SUPPRESS)
def test_every_operation_conforms_to_its_schema_and_never_fails_with_5xx(case, token):
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)


@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=SUPPRESS)
def test_without_a_token_every_operation_is_refused_as_documented(case, engine):
    response = case.call_and_validate(checks=CHECKS)
    if case.method.upper() != case.operation.method.upper():  # schemathesis tries undocumented methods too
        assert response.status_code == 405, response.text
    else:
        assert response.status_code in (400, 401, 422), response.text
