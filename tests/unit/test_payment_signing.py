"""RSA2 as Alipay defines it, checked against OpenSSL: the same string, the same signature."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from payments.signing import (
    BadKey,
    load_key,
    sign_params,
    signing_string,
    verify_params,
)

PARAMS = {
    "app_id": "2014072300007148",
    "method": "alipay.trade.query",
    "charset": "utf-8",
    "sign_type": "RSA2",
    "timestamp": "2014-07-24 03:07:50",
    "version": "1.0",
    "notify_url": "",  # empty: left out of the signed string
    "subject": "电费充值",
    "biz_content": '{"out_trade_no":"20150320010101001","total_amount":"88.88"}',
}
# Written out by hand from the protocol's rule: sorted by name, no sign/sign_type, no empties.
EXPECTED_STRING = (
    'app_id=2014072300007148&biz_content={"out_trade_no":"20150320010101001",'
    '"total_amount":"88.88"}&charset=utf-8&method=alipay.trade.query&subject=电费充值'
    "&timestamp=2014-07-24 03:07:50&version=1.0"
)


@pytest.fixture(scope="module")
def openssl_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2048-bit RSA key made by OpenSSL (not by the code under test)."""
    path = tmp_path_factory.mktemp("keys") / "test.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-out", str(path)], check=True, capture_output=True)
    return path


def test_the_signed_string_is_sorted_without_sign_type_and_empty_values() -> None:
    assert signing_string({**PARAMS, "sign": "xyz"}) == EXPECTED_STRING


def test_signature_equals_openssl_sha256_with_rsa(openssl_key: Path, tmp_path: Path) -> None:
    message = tmp_path / "message"
    message.write_bytes(EXPECTED_STRING.encode("utf-8"))
    openssl = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(openssl_key), str(message)],
        check=True, capture_output=True,
    ).stdout
    key = load_key(openssl_key.read_text(), what="test key")
    assert sign_params(PARAMS, key) == base64.b64encode(openssl).decode()


def test_verifies_with_the_public_key_and_fails_when_one_byte_changes(
    openssl_key: Path,
) -> None:
    public_pem = subprocess.run(
        ["openssl", "pkey", "-in", str(openssl_key), "-pubout"],
        check=True, capture_output=True, text=True,
    ).stdout
    public = load_key(public_pem, what="public key")
    signed = {**PARAMS, "sign": sign_params(PARAMS, load_key(openssl_key.read_text(), what="k"))}
    assert verify_params(signed, public)
    assert not verify_params({**signed, "biz_content": signed["biz_content"].replace(
        "88.88", "88.89")}, public)
    raw = bytearray(base64.b64decode(signed["sign"]))
    raw[17] ^= 0x01
    assert not verify_params({**signed, "sign": base64.b64encode(raw).decode()}, public)
    assert not verify_params({**signed, "sign_type": "RSA"}, public)
    assert not verify_params({k: v for k, v in signed.items() if k != "sign"}, public)


def test_the_consoles_bare_base64_key_is_accepted(openssl_key: Path) -> None:
    pem = openssl_key.read_text()
    body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    assert load_key(body, what="k") == load_key(pem, what="k")


def test_an_unreadable_key_names_the_setting() -> None:
    with pytest.raises(BadKey, match="ALIPAY_PUBLIC_KEY is not an RSA key"):
        load_key("not a key", what="ALIPAY_PUBLIC_KEY")
