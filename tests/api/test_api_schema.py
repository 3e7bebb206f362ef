"""Schemathesis over the API's own OpenAPI document (SQLite, one demo donor, a technician's token): for every
operation, generated parameters and bodies give no server error and every response matches its documented schema
(status code, content type, body)."""

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

schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", create_app())

pytestmark = pytest.mark.demo(1)

#: No server error, and every response as documented: status code, content type, headers, body.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


@pytest.fixture
def backend() -> str:
    return "sqlite"  # bounded: the API's behaviour on both databases is tests/api/test_api.py's


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
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_every_operation_conforms_to_its_schema_and_never_fails_with_5xx(case, token):
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)
