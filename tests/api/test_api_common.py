"""What every API route shares, on both databases: tokens expired or revoked are 401s, the rate limit per token (429
with Retry-After, another token unaffected, the window sliding), idempotency keys kept in the database (a replay
reaching another application instance is answered from the first, a failed write releases its key, an expired key is
forgotten), and the keyset page of the specimen list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import Session, func, select

from biobank.api import create_app
from biobank.api.common import RateLimited, RateLimiter
from biobank.models import ApiIdempotencyKey, ApiToken, User
from biobank.models.core import AuditLog
from biobank.queries.specimens import specimen_list
from biobank.services import tokens
from tests.api.test_api import assert_problem, bearer, token_of

pytestmark = pytest.mark.demo(1)


def user_id(engine, username: str) -> int:
    with Session(engine) as session:
        return int(session.exec(select(User.id).where(User.username == username)).one())


def audit_rows(engine, username: str) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(AuditLog)
                            .where(AuditLog.user_id == user_id(engine, username))).one()


def first_available(client: TestClient, token: dict[str, str]) -> str:
    return client.get("/api/v1/specimens?limit=1&status=available", headers=token).json()["items"][0]["code"]


def test_an_expired_or_revoked_token_is_refused_with_401(engine):
    client = TestClient(create_app())
    raw = token_of(engine, "api_tok", "technician")
    assert client.get("/api/v1/donors", headers=bearer(raw)).status_code == 200
    with Session(engine) as session:
        now = datetime.now(UTC)
        session.execute(update(ApiToken).where(ApiToken.user_id == user_id(engine, "api_tok")).values(
            created_at=now - timedelta(days=2), expires_at=now - timedelta(days=1)))
        session.commit()
    body = assert_problem(client.get("/api/v1/donors", headers=bearer(raw)), 401, "token")
    assert "expired" in body["detail"]
    raw = token_of(engine, "api_rev", "technician")
    with Session(engine) as session:
        assert tokens.revoke_presented(session, raw) is not None
        session.commit()
    body = assert_problem(client.get("/api/v1/donors", headers=bearer(raw)), 401, "token")
    assert "revoked" in body["detail"]


def test_the_rate_limit_answers_429_with_retry_after_per_token(engine):
    client = TestClient(create_app(rate_limit_per_minute=3))
    mine, other = bearer(token_of(engine, "api_rl1", "viewer")), bearer(token_of(engine, "api_rl2", "viewer"))
    assert [client.get("/api/v1/plans", headers=mine).status_code for _ in range(3)] == [200, 200, 200]
    refused = client.get("/api/v1/plans", headers=mine)
    body = assert_problem(refused, 429, "token")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60 and "3 requests" in body["detail"]
    assert client.get("/api/v1/plans", headers=other).status_code == 200  # another token has its own budget
    unlimited = TestClient(create_app(rate_limit_per_minute=0))
    assert all(unlimited.get("/api/v1/plans", headers=mine).status_code == 200 for _ in range(10))


def test_the_rate_limit_window_slides():
    now = [1000.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    limiter.check("a")
    now[0] += 30
    limiter.check("a")
    with pytest.raises(RateLimited) as refused:
        limiter.check("a")
    assert refused.value.retry_after == 30
    now[0] += 30.5  # the first request has left the window
    limiter.check("a")
    limiter.check("b")


def test_an_idempotency_key_is_replayed_by_another_app_instance_from_the_database(engine):
    first_app, second_app = TestClient(create_app()), TestClient(create_app())
    token = bearer(token_of(engine, "api_idem", "technician"))
    code = first_available(first_app, token)
    headers = token | {"Idempotency-Key": "core-7-run-3"}
    first = first_app.post(f"/api/v1/specimens/{code}/qc", json={"tumour_cellularity_pct": 55}, headers=headers)
    assert first.status_code == 200, first.text
    written = audit_rows(engine, "api_idem")
    replay = second_app.post(f"/api/v1/specimens/{code}/qc", json={"tumour_cellularity_pct": 55}, headers=headers)
    assert replay.status_code == 200 and replay.json() == first.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert audit_rows(engine, "api_idem") == written
    with Session(engine) as session:
        kept = session.exec(select(ApiIdempotencyKey)).all()
    assert [(k.idempotency_key, k.status, k.user_id) for k in kept] == [("core-7-run-3", 200, user_id(engine, "api_idem"))]


def test_a_failed_write_releases_its_key_and_an_expired_key_is_forgotten(engine):
    client = TestClient(create_app())
    token = bearer(token_of(engine, "api_rel", "technician"))
    code = first_available(client, token)
    headers = token | {"Idempotency-Key": "k-1"}
    assert_problem(client.post(f"/api/v1/specimens/{code}/qc", json={"tumour_cellularity_pct": 150}, headers=headers),
                   422, "tumour_cellularity_pct")
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(ApiIdempotencyKey)).one() == 0
    ok = client.post(f"/api/v1/specimens/{code}/qc", json={"tumour_cellularity_pct": 40}, headers=headers)
    assert ok.status_code == 200 and "Idempotent-Replayed" not in ok.headers
    written = audit_rows(engine, "api_rel")
    with Session(engine) as session:  # a day and more later
        session.execute(update(ApiIdempotencyKey).values(created_at=datetime.now(UTC) - timedelta(hours=25)))
        session.commit()
    again = client.post(f"/api/v1/specimens/{code}/qc", json={"tumour_cellularity_pct": 40}, headers=headers)
    assert again.status_code == 200 and "Idempotent-Replayed" not in again.headers
    assert audit_rows(engine, "api_rel") > written
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(ApiIdempotencyKey)).one() == 1


def test_the_keyset_page_continues_after_a_code_and_leaves_hidden_donors_out(engine):
    with Session(engine) as session:
        everything = specimen_list(session, limit=None)
        middle = everything[len(everything) // 2]["code"]
        assert specimen_list(session, after=middle, limit=5) == [r for r in everything if r["code"] > middle][:5]
        donor = everything[0]["donor"]
        assert all(r["donor"] != donor for r in specimen_list(session, limit=None, exclude_donors={donor}))


def test_a_value_the_database_cannot_store_is_a_422_never_a_500(engine):
    client = TestClient(create_app())
    token = bearer(token_of(engine, "api_nul", "technician"))
    for response in (client.get("/api/v1/specimens/A%00B", headers=token),
                     client.post("/api/v1/specimens/A%00B/qc", json={"tumour_cellularity_pct": 40}, headers=token)):
        assert response.status_code in (404, 422), response.text  # SQLite stores NUL and finds nothing
        assert response.headers["content-type"].startswith("application/problem+json")
