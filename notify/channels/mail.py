"""Email over SMTP: plain, STARTTLS or SSL, optional login, a UTF-8 subject and body."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from notify.channels import ChannelError

SECURITY = ("starttls", "ssl", "plain")


class SmtpConfigError(ValueError):
    pass


class SmtpMail:
    name = "email"

    def __init__(
        self,
        host: str,
        *,
        sender: str,
        subject: str,
        port: int = 587,
        security: str = "starttls",
        username: str = "",
        password: str = "",
        timeout_s: float = 30.0,
    ) -> None:
        if security not in SECURITY:
            raise SmtpConfigError(f"SMTP security {security!r}: one of {', '.join(SECURITY)}")
        if not sender:
            raise SmtpConfigError("an SMTP channel needs a from address")
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self.password = password
        self.sender = sender
        self.subject = subject
        self.timeout_s = timeout_s

    def send(self, recipient: str, text: str) -> str:
        """Deliver one mail; returns its Message-ID."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = recipient
        message["Subject"] = self.subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        message.set_content(text, charset="utf-8")
        try:
            # One connection per mail: messages are few, and an idle connection would time out.
            with self._connect() as smtp:
                if self.username:
                    smtp.login(self.username, self.password)
                # One recipient: refusing it raises SMTPRecipientsRefused.
                smtp.send_message(message)
        except smtplib.SMTPException as exc:
            raise ChannelError(f"SMTP server {self.host}:{self.port} refused the mail: {exc}") \
                from exc
        except OSError as exc:
            raise ChannelError(f"SMTP server {self.host}:{self.port} unreachable: {exc}") from exc
        return str(message["Message-ID"])

    def _connect(self) -> smtplib.SMTP:
        if self.security == "ssl":
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s,
                                    context=ssl.create_default_context())
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        if self.security == "starttls":
            try:
                smtp.starttls(context=ssl.create_default_context())
            except BaseException:
                smtp.close()
                raise
        return smtp

    def close(self) -> None:
        """Nothing stays open between mails."""
