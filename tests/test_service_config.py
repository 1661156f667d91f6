"""The service's settings, tokens and A/B split, without starting it."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from fastapi import HTTPException
from pydantic import ValidationError

from app.auth import decode_token, mint_token
from app.config import Settings
from app.modelset import ModelSet, UnknownVariantError, Variant

SECRET = "unit-test-secret-0123456789abcdef0123"


def settings(**kw) -> Settings:
    return Settings(_env_file=None, jwt_secret=SECRET, **kw)


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"jwt_secret": None}, "PD_JWT_SECRET is required"),
        ({"jwt_secret": "short"}, "at least 32 bytes"),
        ({"jwt_algorithm": "RS256"}, "PD_JWT_PUBLIC_KEY"),
        ({"variants": "[]"}, "PD_VARIANTS is empty"),
        ({"variants": '[{"name": "A"}, {"name": "A"}]'}, "variant names must be unique"),
        ({"variants": '[{"name": "A", "weight": 0}]'}, "weights must not all be 0"),
        ({"variants": '[{"name": "A B"}]'}, "string should match pattern"),
        ({"rate_limit": "lots"}, "not a rate limit"),
        ({"max_upload_bytes": "ten"}, "max_upload_bytes"),
    ],
)
def test_bad_settings_are_named(kw, message):
    with pytest.raises(ValidationError) as e:
        Settings(_env_file=None, **{"jwt_secret": SECRET, **kw})
    assert message.lower() in str(e.value).lower()


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("PD_VARIANTS", json.dumps([{"name": "A", "source": "models", "weight": 3}, {"name": "B"}]))
    monkeypatch.setenv("PD_REQUIRE_AUTH", "false")
    s = Settings(_env_file=None)
    assert [v.name for v in s.variants] == ["A", "B"] and s.variants[0].weight == 3 and not s.require_auth
    assert s.variants[1].source == "models:/plant-disease@production"


def test_hs256_tokens_expiry_and_forgery():
    s = settings()
    tok, exp = mint_token("alice", ["predict"], 60, SECRET)
    claims = decode_token(tok, s)
    assert claims["sub"] == "alice" and claims["scope"] == "predict" and exp - time.time() <= 60
    for bad, detail in [
        (mint_token("a", ["predict"], -1, SECRET)[0], "token expired"),
        (mint_token("a", ["predict"], 60, "another-secret-0123456789abcdef-0123")[0], "invalid token"),
        (jwt.encode({"sub": "a"}, SECRET, "HS256"), "invalid token"),  # no expiry at all
        (jwt.encode({"sub": "a", "exp": time.time() + 60}, SECRET * 2, "HS512"), "invalid token"),
    ]:
        with pytest.raises(HTTPException) as e:
            decode_token(bad, s)
        assert e.value.status_code == 401 and detail in e.value.detail
    with pytest.raises(ValueError, match="unknown scope"):
        mint_token("a", ["root"], 60, SECRET)


def test_rs256_tokens_with_a_public_key(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    (tmp_path / "pub.pem").write_text(public)
    s = Settings(
        _env_file=None,
        jwt_algorithm="RS256",
        jwt_public_key=str(tmp_path / "pub.pem"),
        jwt_issuer="plant-disease-ops",
        jwt_audience="plant-disease-api",
    )
    tok, _ = mint_token("bob", ["predict", "admin"], 60, private, "RS256", "plant-disease-ops", "plant-disease-api")
    assert decode_token(tok, s)["scope"] == "predict admin"
    wrong_aud, _ = mint_token("bob", ["predict"], 60, private, "RS256", "plant-disease-ops", "someone-else")
    with pytest.raises(HTTPException):
        decode_token(wrong_aud, s)
    hs, _ = mint_token("bob", ["predict"], 60, SECRET)  # an HS256 token must not pass an RS256 service
    with pytest.raises(HTTPException):
        decode_token(hs, s)


def test_ab_split_follows_the_weights_and_is_sticky():
    ms = ModelSet([Variant("A", 0.8, "a", "m", "1", None), Variant("B", 0.2, "b", "m", "2", None)])
    picks = [ms.choose(f"user-{i}").name for i in range(4000)]
    assert abs(picks.count("A") / 4000 - 0.8) < 0.03
    assert all(ms.choose(f"user-{i}").name == picks[i] for i in range(200))
    assert ms.choose("user-1", forced="B").name == "B"
    with pytest.raises(UnknownVariantError, match="unknown model variant 'C'"):
        ms.choose("user-1", forced="C")


@pytest.mark.parametrize(
    "env,message",
    [
        ({"PD_VARIANTS": '[{"name": "A"}'}, 'invalid settings: error parsing value for field "variants"'),
        ({"PD_REQUIRE_AUTH": "true"}, "PD_JWT_SECRET is required"),
        (
            {"PD_VARIANTS": '[{"name": "A", "source": "/no/such/model"}]'},
            "cannot start: variant A: cannot load /no/such/model",
        ),
    ],
)
def test_the_api_refuses_to_start_with_one_clear_line(env, message, tmp_path):
    import os, subprocess, sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    base = {
        "PATH": os.environ["PATH"],
        "PD_REQUIRE_AUTH": "false",
        "PD_DATABASE_URL": f"sqlite:///{tmp_path}/p.db",
        "PD_SPOOL_DIR": str(tmp_path / "spool"),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    r = subprocess.run(
        [sys.executable, "-m", "app", "--port", "1"],
        cwd=root,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0 and message in r.stderr, r.stderr[-2000:]
