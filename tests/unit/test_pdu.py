"""The SMS-SUBMIT encoder against reference PDUs, and round trips through an independent decoder
(the modem emulator's)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from notify.pdu import PduError, encode_submit
from tests.gsm_modem import decode_submit


def test_hellohello_matches_the_reference_pdu() -> None:
    # The well-known example (dreamfabric.com/sms): "hellohello" to +31641600986, valid 4 days.
    [pdu] = encode_submit("+31641600986", "hellohello", validity=timedelta(days=4))
    assert pdu.hex == "0011000B911346610089F60000AA0AE8329BFD4697D9EC37"
    assert pdu.length == 23  # octets after the SCA: what AT+CMGS=<length> is given
    [plain] = encode_submit("+31641600986", "hellohello")
    assert plain.hex == "0001000B911346610089F600000AE8329BFD4697D9EC37"


def test_chinese_goes_as_ucs2() -> None:
    [pdu] = encode_submit("+8613800138000", "你好")
    # 0D digits, 91 international, 86 13 80 01 38 00 0 in semi-octets, DCS 08, 4 octets.
    assert pdu.hex == "0001000D91683108108300F00008044F60597D"
    decoded = decode_submit(pdu.hex)
    assert (decoded.number, decoded.text, decoded.dcs) == ("+8613800138000", "你好", 0x08)


def test_a_national_number_has_type_81() -> None:
    [pdu] = encode_submit("13800138000", "A")
    assert pdu.hex.startswith("0001000B81")
    assert decode_submit(pdu.hex).number == "13800138000"


def test_long_chinese_splits_into_67_character_parts_with_a_concatenation_header() -> None:
    text = "账户余额不足请及时充值" * 14  # 154 characters
    pdus = encode_submit("+8613800138000", text, reference=0x2A)
    parts = [decode_submit(pdu.hex) for pdu in pdus]
    assert [len(part.text) for part in parts] == [67, 67, 20]
    assert [part.concat for part in parts] == [(0x2A, 3, 1), (0x2A, 3, 2), (0x2A, 3, 3)]
    assert "".join(part.text for part in parts) == text
    assert all(int(pdu.hex[2:4], 16) & 0x40 for pdu in pdus)  # UDHI set
    assert max(pdu.length for pdu in pdus) <= 140 + 14 + 2  # user data at most 140 octets


def test_long_gsm7_splits_into_153_character_parts() -> None:
    text = "".join(chr(ord("a") + k % 26) for k in range(400)) + " £5 é"
    pdus = encode_submit("+447700900123", text, reference=7)
    parts = [decode_submit(pdu.hex) for pdu in pdus]
    assert [len(part.text) for part in parts] == [153, 153, 99]
    assert "".join(part.text for part in parts) == text
    assert all(part.dcs == 0x00 for part in parts)


def test_160_gsm7_or_70_ucs2_characters_fit_one_sms() -> None:
    assert len(encode_submit("10086", "x" * 160)) == 1
    assert len(encode_submit("10086", "x" * 161)) == 2
    assert len(encode_submit("10086", "电" * 70)) == 1
    assert len(encode_submit("10086", "电" * 71)) == 2


def test_extension_characters_go_as_ucs2() -> None:
    [pdu] = encode_submit("10086", "price {1.20}")
    assert decode_submit(pdu.hex).dcs == 0x08
    assert decode_submit(pdu.hex).text == "price {1.20}"


def test_a_character_outside_the_bmp_is_not_split_between_parts() -> None:
    text = "电" * 66 + "😀" + "电" * 3  # 71 UTF-16 units: two parts; 66 + 2 would be 68
    pdus = encode_submit("10086", text)
    assert [decode_submit(pdu.hex).text for pdu in pdus] == ["电" * 66, "😀电电电"]


@pytest.mark.parametrize("number", ["", "+", "12ab", "+86 138"])
def test_a_bad_number_is_refused(number: str) -> None:
    with pytest.raises(PduError, match="not a phone number"):
        encode_submit(number, "hi")
