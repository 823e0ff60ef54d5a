"""RSA2 as Alipay's open platform defines it: SHA256withRSA (PKCS #1 v1.5) over the parameters
sorted by name and joined as `key=value&…`, leaving out `sign`, `sign_type` and empty values;
signatures travel in base64.

Keys are accepted as PEM, or as the bare base64 bodies the Alipay console hands out (PKCS #8
or PKCS #1 private keys, X.509 SubjectPublicKeyInfo public keys).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from pathlib import Path

from Crypto.Hash import SHA256
from Crypto.PublicKey import RSA
from Crypto.Signature import pkcs1_15

UNSIGNED = frozenset({"sign", "sign_type"})
KEY_BITS = 2048


class BadKey(ValueError):
    """A key that cannot be read; the message says which one and why."""


def signing_string(params: Mapping[str, str]) -> str:
    """The text that is signed: every non-empty parameter but the signature, sorted by name."""
    return "&".join(
        f"{key}={params[key]}" for key in sorted(params) if key not in UNSIGNED and params[key]
    )


def sign_text(text: str, private_key: RSA.RsaKey) -> str:
    digest = SHA256.new(text.encode("utf-8"))
    return base64.b64encode(pkcs1_15.new(private_key).sign(digest)).decode("ascii")


def verify_text(text: str, signature: str, public_key: RSA.RsaKey) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        pkcs1_15.new(public_key).verify(SHA256.new(text.encode("utf-8")), raw)
    except (ValueError, TypeError):
        return False
    return True


def sign_params(params: Mapping[str, str], private_key: RSA.RsaKey) -> str:
    return sign_text(signing_string(params), private_key)


def verify_params(params: Mapping[str, str], public_key: RSA.RsaKey) -> bool:
    """Whether `params` carry a valid RSA2 signature (`sign`) by the owner of `public_key`."""
    signature = params.get("sign", "")
    if not signature or params.get("sign_type", "RSA2") != "RSA2":
        return False
    return verify_text(signing_string(params), signature, public_key)


def _pem_body(text: str) -> str:
    return "".join(line for line in text.strip().splitlines() if not line.startswith("-----"))


def load_key(text: str, *, what: str) -> RSA.RsaKey:
    """A key from PEM text or a bare base64 body; `what` names the setting in errors."""
    body = _pem_body(text)
    if not body:
        raise BadKey(f"{what} is empty")
    try:
        return RSA.import_key(base64.b64decode(body, validate=True))
    except (binascii.Error, ValueError, IndexError, TypeError) as exc:
        raise BadKey(f"{what} is not an RSA key in PEM or base64 form ({exc})") from exc


def load_key_setting(value: str, path: str, *, what: str) -> RSA.RsaKey:
    """A key given either inline (`value`) or as a file (`path`), as the settings allow."""
    if value.strip():
        return load_key(value, what=what)
    if path.strip():
        try:
            text = Path(path).read_text(encoding="ascii")
        except OSError as exc:
            raise BadKey(f"{what}_FILE {path}: {exc.strerror}") from exc
        return load_key(text, what=f"{what}_FILE {path}")
    raise BadKey(f"{what} (or {what}_FILE) is not set")


def generate_key() -> RSA.RsaKey:
    return RSA.generate(KEY_BITS)


def public_pem(key: RSA.RsaKey) -> str:
    return key.public_key().export_key("PEM").decode("ascii")


def private_pem(key: RSA.RsaKey) -> str:
    return key.export_key("PEM", pkcs=8).decode("ascii")


def ensure_key_pair(directory: Path, name: str) -> RSA.RsaKey:
    """The private key `<name>.pem` in `directory`, generated (with `<name>.pub.pem`) the first
    time; the private key file is readable by its owner only."""
    private_path = directory / f"{name}.pem"
    if private_path.exists():
        return load_key(private_path.read_text(encoding="ascii"), what=str(private_path))
    directory.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    temporary = private_path.with_suffix(".tmp")
    temporary.touch(mode=0o600)
    temporary.write_text(private_pem(key), encoding="ascii")
    temporary.replace(private_path)
    (directory / f"{name}.pub.pem").write_text(public_pem(key), encoding="ascii")
    return key
