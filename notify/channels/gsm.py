"""A GSM modem on a serial port, driven with AT commands (3GPP TS 27.005).

A single-part message of plain ASCII goes in text mode (AT+CMGF=1); anything else — Chinese,
other GSM characters, more than one SMS — in PDU mode (AT+CMGF=0) with our own SMS-SUBMIT
encoder (notify/pdu.py). Every step has a timeout. After any error the port is closed, so the
next send starts again from a clean modem: escape any half-entered message, AT, ATE0.
"""

from __future__ import annotations

import random
import re
import time
from datetime import timedelta

import serial

from notify.channels import ChannelError
from notify.pdu import PduError, encode_submit, is_gsm7

# The network stops trying to deliver after this (the outbox gives up on a message after a day).
VALIDITY = timedelta(days=1)
_FINAL_ERROR = re.compile(r"^(ERROR|\+CMS ERROR: ?.*|\+CME ERROR: ?.*)$")
_CMGS = re.compile(r"^\+CMGS: ?(\d+)")
# Text mode (character set IRA) only for characters every modem maps to GSM 7-bit the same way.
_TEXT_MODE_CHARS = re.compile(r"[A-Za-z0-9 !\"#%&'()*+,\-./:;<=>?_]*")
_TEXT_MODE_MAX = 160


class GsmModem:
    name = "modem"

    def __init__(self, port: str, *, baudrate: int = 115200, timeout_s: float = 30.0) -> None:
        self.port = port
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self._serial: serial.Serial | None = None
        self._buffer = b""
        # The concatenation reference must differ between long messages the phone reassembles.
        self._reference = random.randrange(256)

    def send(self, recipient: str, text: str) -> str:
        """Send `text` to the phone number; returns the message reference(s) from +CMGS."""
        if not text:
            raise ChannelError("an empty message cannot be sent")
        try:
            if _TEXT_MODE_CHARS.fullmatch(text) and len(text) <= _TEXT_MODE_MAX and is_gsm7(text):
                return self._send_text(recipient, text)
            return self._send_pdu(recipient, text)
        except ChannelError:
            self.close()
            raise

    def close(self) -> None:
        if self._serial is not None:
            self._serial.close()
            self._serial = None
        self._buffer = b""

    def _send_text(self, recipient: str, text: str) -> str:
        if not re.fullmatch(r"\+?\d{3,20}", recipient):
            raise ChannelError(f"{recipient!r} is not a phone number")
        self._command("AT+CMGF=1")
        self._command('AT+CSCS="IRA"')
        self._write(f'AT+CMGS="{recipient}"\r'.encode("ascii"))
        self._await(f'AT+CMGS="{recipient}"', prompt=True)
        self._write(text.encode("ascii") + b"\x1a")
        return self._message_reference("the message text")

    def _send_pdu(self, recipient: str, text: str) -> str:
        try:
            pdus = encode_submit(recipient, text, reference=self._reference, validity=VALIDITY)
        except PduError as exc:
            raise ChannelError(str(exc)) from exc
        if len(pdus) > 1:
            self._reference = (self._reference + 1) % 256
        self._command("AT+CMGF=0")
        references = []
        for number, pdu in enumerate(pdus, start=1):
            self._write(f"AT+CMGS={pdu.length}\r".encode("ascii"))
            self._await(f"AT+CMGS={pdu.length}", prompt=True)
            self._write(pdu.hex.encode("ascii") + b"\x1a")
            references.append(self._message_reference(f"part {number} of {len(pdus)}"))
        return ",".join(references)

    def _message_reference(self, what: str) -> str:
        for line in self._await(f"sending {what}", prompt=False):
            found = _CMGS.match(line)
            if found:
                return found.group(1)
        raise ChannelError(f"the modem accepted {what} without a +CMGS message reference")

    def _port(self) -> serial.Serial:
        if self._serial is None:
            try:
                port = serial.Serial(self.port, self.baudrate, timeout=0.05,
                                     write_timeout=self.timeout_s)
            except (serial.SerialException, OSError) as exc:
                raise ChannelError(f"cannot open the modem port {self.port}: {exc}") from exc
            self._serial = port
            self._buffer = b""
            # A message left half-entered (we died at the > prompt) is abandoned with ESC; what
            # the modem says to that is discarded before the first command.
            self._write(b"\x1b")
            time.sleep(0.2)
            port.reset_input_buffer()
            self._command("AT")
            self._command("ATE0")
        return self._serial

    def _write(self, data: bytes) -> None:
        port = self._port()
        try:
            port.write(data)
            port.flush()
        except (serial.SerialException, OSError) as exc:
            raise ChannelError(f"cannot write to the modem on {self.port}: {exc}") from exc

    def _command(self, command: str) -> list[str]:
        self._port()
        self._write(command.encode("ascii") + b"\r")
        return self._await(command, prompt=False)

    def _await(self, step: str, *, prompt: bool) -> list[str]:
        """Lines up to the final OK (or the `> ` prompt); ERROR and +CMS ERROR raise."""
        assert self._serial is not None
        deadline = time.monotonic() + self.timeout_s
        lines: list[str] = []
        while True:
            while True:
                found = re.search(rb"[\r\n]", self._buffer)
                if found is None:
                    break
                raw, self._buffer = self._buffer[:found.start()], self._buffer[found.end():]
                line = raw.decode("ascii", "replace").strip()
                if not line or line == step:  # blank separators; our own echo before ATE0
                    continue
                if line == "OK" and not prompt:
                    return lines
                if _FINAL_ERROR.match(line):
                    raise ChannelError(f"the modem answered {step} with {line}")
                lines.append(line)
            if prompt and self._buffer.lstrip().startswith(b">"):
                self._buffer = b""
                return lines
            if time.monotonic() > deadline:
                raise ChannelError(
                    f"the modem on {self.port} did not answer {step} within {self.timeout_s:g} s"
                )
            try:
                self._buffer += self._serial.read(max(1, self._serial.in_waiting))
            except (serial.SerialException, OSError) as exc:
                raise ChannelError(f"cannot read from the modem on {self.port}: {exc}") from exc
