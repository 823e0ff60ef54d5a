"""A GSM modem on a pseudo-terminal, for the notification tests.

It speaks what a real modem speaks on its serial port: echo until ATE0, OK / ERROR, AT+CMGF text
and PDU mode, AT+CSCS, AT+CMGS with the `> ` prompt, the message ended by Ctrl-Z (ESC abandons
it), then `+CMGS: <mr>` and OK, or `+CMS ERROR: <n>`. PDUs are decoded (GSM 7-bit, UCS-2,
concatenated parts reassembled), so a test asserts the exact text a phone would show. It can be
told to fail the next sends or to go silent.
"""

from __future__ import annotations

import os
import select
import threading
import tty
from dataclasses import dataclass

from notify.pdu import GSM7_BASIC


@dataclass(frozen=True)
class Submit:
    """One decoded SMS-SUBMIT PDU."""

    number: str
    text: str
    dcs: int
    validity: int | None
    concat: tuple[int, int, int] | None  # reference, parts, this part's number


def decode_submit(pdu_hex: str) -> Submit:
    data = bytes.fromhex(pdu_hex)
    i = 1 + data[0]  # past the service centre address
    first = data[i]
    if first & 0x03 != 0x01:
        raise ValueError(f"not an SMS-SUBMIT (first octet {first:02X})")
    validity_format = (first >> 3) & 0x03
    i += 2  # first octet, TP-MR
    digits, type_of_address = data[i], data[i + 1]
    semi = data[i + 2:i + 2 + (digits + 1) // 2].hex().upper()
    number = "".join(semi[k + 1] + semi[k] for k in range(0, len(semi), 2))[:digits]
    if type_of_address == 0x91:
        number = "+" + number
    i += 2 + (digits + 1) // 2
    dcs = data[i + 1]
    i += 2  # PID, DCS
    validity = None
    if validity_format == 2:
        validity = data[i]
        i += 1
    elif validity_format in (1, 3):
        i += 7
    length, user_data = data[i], data[i + 1:]
    header = b""
    if first & 0x40:
        header = user_data[1:1 + user_data[0]]
    if dcs & 0x0C == 0x08:
        if len(user_data) != length:
            raise ValueError(f"TP-UDL says {length} octets, the PDU carries {len(user_data)}")
        text = user_data[len(header) + (1 if header else 0):].decode("utf-16-be")
    else:
        bits = int.from_bytes(user_data, "little")
        skip = -(-(len(header) + 1) * 8 // 7) if header else 0
        text = "".join(GSM7_BASIC[(bits >> (7 * k)) & 0x7F] for k in range(skip, length))
    concat = None
    k = 0
    while k < len(header):
        iei, size = header[k], header[k + 1]
        value = header[k + 2:k + 2 + size]
        if iei == 0x00:
            concat = (value[0], value[1], value[2])
        elif iei == 0x08:
            concat = (int.from_bytes(value[:2], "big"), value[2], value[3])
        k += 2 + size
    return Submit(number, text, dcs, validity, concat)


@dataclass(frozen=True)
class Arrived:
    """A whole message as the phone shows it."""

    number: str
    text: str
    mode: str  # "text" or "pdu"
    parts: int


class ModemEmulator:
    def __init__(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self.arrived: list[Arrived] = []
        self.commands: list[str] = []
        self._lock = threading.Lock()
        self._fail_sends = 0
        self._failure = "+CMS ERROR: 500"
        self._silent = False
        self._echo = True
        self._pdu_mode = False
        self._mr = 0
        self._input = b""
        self._prompt: tuple[str, int] | None = None  # (number or declared length, ...)
        self._parts: dict[tuple[str, int], dict[int, str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="modem-emulator", daemon=True)
        self._thread.start()

    def fail_next(self, count: int, error: str = "+CMS ERROR: 500") -> None:
        """The next `count` messages are refused with `error` after their text is entered."""
        with self._lock:
            self._fail_sends, self._failure = count, error

    def go_silent(self, silent: bool = True) -> None:
        """Answer nothing at all (a hung or unpowered modem) until told otherwise."""
        with self._lock:
            self._silent = silent

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        os.close(self._master)
        os.close(self._slave)

    def _write(self, text: str) -> None:
        os.write(self._master, text.encode("ascii"))

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(self._master, 4096)
            except OSError:
                return
            with self._lock:
                if self._silent:
                    self._input, self._prompt = b"", None
                    continue
                self._input += chunk
                self._process()

    def _process(self) -> None:
        while self._input:
            if self._prompt is not None:
                end = next((k for k, b in enumerate(self._input) if b in (0x1A, 0x1B)), None)
                if end is None:
                    return
                body, terminator = self._input[:end], self._input[end]
                self._input = self._input[end + 1:]
                target, self._prompt = self._prompt, None
                if terminator == 0x1A:
                    self._submit(target, body.decode("ascii"))
                continue
            if self._input[:1] == b"\x1b":  # ESC outside a message: nothing to abandon
                self._input = self._input[1:]
                continue
            end = self._input.find(b"\r")
            if end < 0:
                return
            line = self._input[:end].decode("ascii").strip()
            self._input = self._input[end + 1:]
            if self._echo:
                self._write(line + "\r")
            if line:
                self.commands.append(line)
                self._command(line)

    def _command(self, line: str) -> None:
        upper = line.upper()
        if upper in ("AT", "ATZ"):
            self._ok()
        elif upper in ("ATE0", "ATE1"):
            self._echo = upper == "ATE1"
            self._ok()
        elif upper in ("AT+CMGF=0", "AT+CMGF=1"):
            self._pdu_mode = upper == "AT+CMGF=0"
            self._ok()
        elif upper.startswith("AT+CSCS="):
            self._ok() if line[8:].strip('"') in ("IRA", "GSM", "UCS2") else self._error()
        elif upper.startswith("AT+CMGS="):
            argument = line[8:]
            if self._pdu_mode and argument.isdigit():
                self._prompt = ("", int(argument))
            elif not self._pdu_mode and argument.startswith('"') and argument.endswith('"'):
                self._prompt = (argument.strip('"'), 0)
            else:
                self._error()
                return
            self._write("\r\n> ")
        else:
            self._error()

    def _submit(self, target: tuple[str, int], body: str) -> None:
        if self._fail_sends:
            self._fail_sends -= 1
            self._write(f"\r\n{self._failure}\r\n")
            return
        if self._pdu_mode:
            data = bytes.fromhex(body)
            if len(data) - 1 - data[0] != target[1]:
                self._write("\r\n+CMS ERROR: 304\r\n")  # invalid PDU mode parameter
                return
            submit = decode_submit(body)
            if submit.concat is None:
                self.arrived.append(Arrived(submit.number, submit.text, "pdu", 1))
            else:
                reference, total, seq = submit.concat
                parts = self._parts.setdefault((submit.number, reference), {})
                parts[seq] = submit.text
                if len(parts) == total:
                    del self._parts[(submit.number, reference)]
                    text = "".join(parts[k] for k in range(1, total + 1))
                    self.arrived.append(Arrived(submit.number, text, "pdu", total))
        else:
            self.arrived.append(Arrived(target[0], body, "text", 1))
        self._mr = (self._mr + 1) % 256
        self._write(f"\r\n+CMGS: {self._mr}\r\n\r\nOK\r\n")

    def _ok(self) -> None:
        self._write("\r\nOK\r\n")

    def _error(self) -> None:
        self._write("\r\nERROR\r\n")
