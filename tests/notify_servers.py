"""Local servers that stand in for the notification services: an HTTP SMS service and an SMTP
server (aiosmtpd) that receives real mail, both on loopback."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode("utf-8"), keep_blank_values=True))


@dataclass
class SmsService:
    """Records every request; answers with the queued replies, then with `default`."""

    url: str = ""
    requests: list[HttpRequest] = field(default_factory=list)
    replies: list[tuple[int, str]] = field(default_factory=list)
    default: tuple[int, str] = (200, '{"code": 0, "id": "msg-1"}')


@contextmanager
def sms_service() -> Iterator[SmsService]:
    service = SmsService()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            parts = urlsplit(self.path)
            service.requests.append(HttpRequest(
                self.command, parts.path, dict(parse_qsl(parts.query)),
                {k.lower(): v for k, v in self.headers.items()}, body,
            ))
            status, reply = service.replies.pop(0) if service.replies else service.default
            data = reply.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    service.url = f"http://127.0.0.1:{server.server_address[1]}/sms/send"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    login: str | None


class _Inbox:
    def __init__(self) -> None:
        self.mails: list[Mail] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.decode() if isinstance(session.auth_data, bytes) else None
        self.mails.append(Mail(str(envelope.mail_from), list(envelope.rcpt_tos), message, login))
        return "250 OK"


@dataclass
class SmtpServer:
    host: str
    port: int
    mails: list[Mail]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made with the openssl command."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


@contextmanager
def smtp_server(
    *, users: dict[str, str] | None = None, tls: tuple[Path, Path] | None = None
) -> Iterator[SmtpServer]:
    """An SMTP server on loopback; with `users` it requires AUTH, with `tls` it offers
    STARTTLS (and then takes AUTH only after it)."""
    inbox = _Inbox()

    def authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                     data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and users is not None and users.get(
            data.login.decode()) == data.password.decode()
        # handled=False: the server itself answers a failure with 535.
        return AuthResult(success=ok, handled=ok, auth_data=data.login if ok else None)

    options: dict[str, Any] = {}
    if users is not None:
        options.update(authenticator=authenticate, auth_required=True,
                       auth_require_tls=tls is not None)
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        options.update(tls_context=context, require_starttls=True)
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, inbox.mails)
    finally:
        controller.stop()
