"""Delivery channels. Each has a `name` (as stored with every attempt) and
`send(recipient, text) -> provider reference`, raising ChannelError when the message did not go.
"""

from __future__ import annotations

from typing import Protocol


class ChannelError(Exception):
    """A channel could not deliver; the message says what the modem, service or server did."""


class Channel(Protocol):
    name: str

    def send(self, recipient: str, text: str) -> str: ...

    def close(self) -> None: ...
