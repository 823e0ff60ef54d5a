"""SMS-SUBMIT PDUs (3GPP TS 23.040) for a GSM modem in PDU mode (AT+CMGF=0).

GSM 7-bit default alphabet when every character is in its basic table, else UCS-2 (DCS 0x08) so
Chinese arrives intact. A message that does not fit one SMS is split into parts carrying a user
data header with the 8-bit concatenation reference (IEI 0x00): 153 GSM-7 or 67 UCS-2 characters
per part. The service centre is the SIM's (SCA length 00).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

# The GSM 03.38 basic table; index = septet value. 0x1B (escape to the extension table) is not a
# character: text with extension characters ({, }, €, ...) goes as UCS-2 instead.
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
_GSM7_CODE = {char: code for code, char in enumerate(GSM7_BASIC) if code != 0x1B}

DCS_GSM7 = 0x00
DCS_UCS2 = 0x08
GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67
MAX_PARTS = 255


class PduError(ValueError):
    pass


@dataclass(frozen=True)
class Pdu:
    """One SMS-SUBMIT: `hex` goes after the `> ` prompt; `length` is what AT+CMGS=<length>
    wants (octets of the TPDU, not counting the SCA octet)."""

    hex: str
    length: int


def is_gsm7(text: str) -> bool:
    return all(char in _GSM7_CODE for char in text)


def encode_address(number: str) -> bytes:
    """TP-DA: digit count, type of address (0x91 international for +…, else 0x81), semi-octets."""
    international = number.startswith("+")
    digits = number[1:] if international else number
    if not digits or not digits.isdigit() or len(digits) > 20:
        raise PduError(f"{number!r} is not a phone number (digits, optionally after a +)")
    padded = digits + "F" * (len(digits) % 2)
    swapped = "".join(padded[i + 1] + padded[i] for i in range(0, len(padded), 2))
    return bytes([len(digits), 0x91 if international else 0x81]) + bytes.fromhex(swapped)


def _pack_septets(header: bytes, septets: list[int]) -> bytes:
    """User data in 7-bit: the header's octets, fill bits up to a septet boundary, then the
    septets, all packed least significant bit first."""
    bits: list[int] = []
    for octet in header:
        bits.extend((octet >> i) & 1 for i in range(8))
    bits.extend([0] * ((7 - len(bits) % 7) % 7))
    for septet in septets:
        bits.extend((septet >> i) & 1 for i in range(7))
    bits.extend([0] * ((8 - len(bits) % 8) % 8))
    return bytes(
        sum(bit << i for i, bit in enumerate(bits[start:start + 8]))
        for start in range(0, len(bits), 8)
    )


def _validity_octet(validity: timedelta) -> int:
    """TP-VP in the relative format (the coarsest step that still covers `validity`)."""
    minutes = validity.total_seconds() / 60
    if minutes <= 0:
        raise PduError("a validity period must be positive")
    if minutes <= 12 * 60:
        return max(0, int(-(-minutes // 5)) - 1)
    if minutes <= 24 * 60:
        return 143 + int(-(-(minutes - 12 * 60) // 30))
    days = -(-minutes // (24 * 60))
    if days <= 30:
        return 166 + int(days)
    return min(255, 192 + int(-(-days // 7)))


def encode_submit(
    number: str, text: str, *, reference: int = 0, validity: timedelta | None = None
) -> list[Pdu]:
    """The SMS-SUBMIT PDUs that carry `text` to `number`: one, or the parts of a concatenated
    message numbered with `reference` (0-255; it must differ between long messages in flight)."""
    if not text:
        raise PduError("an SMS needs some text")
    gsm7 = is_gsm7(text)
    single, per_part = (GSM7_SINGLE, GSM7_PART) if gsm7 else (UCS2_SINGLE, UCS2_PART)
    chars = list(text)
    if sum(_units(char, gsm7) for char in chars) <= single:
        chunks = [chars]
    else:
        chunks = _split(chars, per_part, gsm7)
        if len(chunks) > MAX_PARTS:
            raise PduError(f"a message of {len(text)} characters needs more than 255 parts")
    address = encode_address(number)
    pdus = []
    for seq, chunk in enumerate(chunks, start=1):
        header = b"" if len(chunks) == 1 else bytes(
            [0x05, 0x00, 0x03, reference & 0xFF, len(chunks), seq]
        )
        if gsm7:
            septets = [_GSM7_CODE[char] for char in chunk]
            user_data = _pack_septets(header, septets)
            udl = -(-len(header) * 8 // 7) + len(septets)
        else:
            user_data = header + "".join(chunk).encode("utf-16-be")
            udl = len(user_data)
        first = 0x01 | (0x40 if header else 0) | (0x10 if validity else 0)
        tpdu = bytes([first, 0x00]) + address + bytes([0x00, DCS_GSM7 if gsm7 else DCS_UCS2])
        if validity:
            tpdu += bytes([_validity_octet(validity)])
        tpdu += bytes([udl]) + user_data
        pdus.append(Pdu(hex=("00" + tpdu.hex()).upper(), length=len(tpdu)))
    return pdus


def _units(char: str, gsm7: bool) -> int:
    """Room a character takes: a septet, or UTF-16 code units (two for a character outside the
    BMP, which must not be split between parts)."""
    return 1 if gsm7 or ord(char) <= 0xFFFF else 2


def _split(chars: list[str], per_part: int, gsm7: bool) -> list[list[str]]:
    chunks: list[list[str]] = []
    current: list[str] = []
    used = 0
    for char in chars:
        size = _units(char, gsm7)
        if used + size > per_part:
            chunks.append(current)
            current, used = [], 0
        current.append(char)
        used += size
    chunks.append(current)
    return chunks
