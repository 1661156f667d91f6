"""JWT bearer auth (PyJWT): who is calling, with which scopes; minting tokens for operators."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .config import Settings, get_settings

SCOPES = ("predict", "review", "admin")
bearer = HTTPBearer(
    bearerFormat="JWT",
    auto_error=False,  # get_caller answers a missing token itself: 401, or anonymous with PD_REQUIRE_AUTH=false
    description="JWT with scope `predict` (predictions), `review` (agronomists: verdicts on answers, POST /feedback) "
    "or `admin` (stats, field accuracy, tokens, and any task's result)",
)


@dataclass(frozen=True)
class Caller:
    "The caller of one request: a token subject, or an anonymous client address when auth is off."

    subject: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    authenticated: bool = False

    @property
    def key(self) -> str:
        return self.subject if self.authenticated else f"ip:{self.subject}"


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


def decode_token(token: str, settings: Settings) -> dict:
    "Verify signature, expiry (required), issuer/audience when configured; return the claims."
    key = settings.jwt_secret.get_secret_value() if settings.jwt_algorithm == "HS256" else settings.public_key()
    if not key:
        raise _unauthorized("this service has no key to verify tokens with")
    try:
        return jwt.decode(
            token,
            key,
            algorithms=[settings.jwt_algorithm],
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            options={"require": ["exp", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise _unauthorized("token expired") from None
    except jwt.InvalidTokenError as e:
        raise _unauthorized(f"invalid token: {e}") from None


def get_caller(
    request: Request,
    cred: HTTPAuthorizationCredentials | None = Depends(bearer),
    settings: Settings = Depends(get_settings),
) -> Caller:
    "The request's caller; 401 for a missing (when required), forged or expired token."
    if cred is None:
        if settings.require_auth:
            raise _unauthorized("missing bearer token")
        caller = Caller(request.client.host if request.client else "unknown", frozenset(SCOPES))
    else:
        claims = decode_token(cred.credentials, settings)
        scopes = claims.get("scope", "")
        scopes = scopes.split() if isinstance(scopes, str) else list(scopes)
        caller = Caller(str(claims["sub"]), frozenset(scopes), authenticated=True)
    request.state.caller = caller
    return caller


def require_scope(scope: str):
    "Dependency: the caller must hold `scope` (403 otherwise)."

    def check(caller: Caller = Depends(get_caller)) -> Caller:
        if scope not in caller.scopes and "admin" not in caller.scopes:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"token lacks scope '{scope}'")
        return caller

    return check


def mint_token(
    subject: str,
    scopes: list[str],
    ttl_s: int,
    key: str,
    algorithm: str = "HS256",
    issuer: str | None = None,
    audience: str | None = None,
) -> tuple[str, int]:
    "Sign a token for `subject` with `scopes`, valid `ttl_s` seconds; return (token, expiry as unix time)."
    unknown = set(scopes) - set(SCOPES)
    if unknown:
        raise ValueError(f"unknown scope(s) {sorted(unknown)}: choose from {list(SCOPES)}")
    if not subject:
        raise ValueError("subject must not be empty")
    now = int(time.time())
    claims = {"sub": subject, "scope": " ".join(scopes), "iat": now, "exp": now + int(ttl_s), "jti": uuid.uuid4().hex}
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, key, algorithm=algorithm), claims["exp"]
