"""An HTTP SMS service: a URL, a method, auth and a body template the provider documents.

The template names the recipient and the text as `{recipient}` and `{text}`. A JSON template is
parsed first and the placeholders are filled inside its string values, so text with quotes or
newlines cannot break the document; a form (or query string) template is filled field by field.
A reply counts as success by its status code (2xx) and, when `success_field` is set such as
`code=0` or `result.status=ok`, by that field of the JSON reply.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

import httpx

from notify.channels import ChannelError

BODY_FORMATS = ("json", "form", "query")
_EXCERPT = 200


class HttpSmsConfigError(ValueError):
    pass


def _fill(value: Any, recipient: str, text: str) -> Any:
    if isinstance(value, str):
        return value.replace("{recipient}", recipient).replace("{text}", text)
    if isinstance(value, list | tuple):
        return type(value)(_fill(item, recipient, text) for item in value)
    if isinstance(value, dict):
        return {key: _fill(item, recipient, text) for key, item in value.items()}
    return value


class HttpSms:
    name = "http_sms"

    def __init__(
        self,
        url: str,
        *,
        method: str = "POST",
        body: str = '{"to": "{recipient}", "text": "{text}"}',
        body_format: str = "json",
        token: str = "",
        username: str = "",
        password: str = "",
        headers: dict[str, str] | None = None,
        success_field: str = "",
        timeout_s: float = 10.0,
    ) -> None:
        if body_format not in BODY_FORMATS:
            raise HttpSmsConfigError(
                f"body format {body_format!r}: one of {', '.join(BODY_FORMATS)}"
            )
        if body_format == "json":
            try:
                self._template: Any = json.loads(body)
            except json.JSONDecodeError as exc:
                raise HttpSmsConfigError(f"the JSON body template is not JSON: {exc}") from exc
        else:
            self._template = parse_qsl(body, keep_blank_values=True)
        if "{text}" not in body:
            raise HttpSmsConfigError("the body template has no {text} placeholder")
        if success_field and "=" not in success_field:
            raise HttpSmsConfigError(
                f"success field {success_field!r}: write it as name=value, e.g. code=0"
            )
        self.url = url
        self.method = method.upper()
        self.body_format = body_format
        self.success_field = success_field
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        auth = httpx.BasicAuth(username, password) if username else None
        self._client = httpx.Client(headers=all_headers, auth=auth, timeout=timeout_s)

    def send(self, recipient: str, text: str) -> str:
        filled = _fill(self._template, recipient, text)
        request: dict[str, Any] = {}
        if self.body_format == "json":
            request["json"] = filled
        elif self.body_format == "form":
            request["data"] = dict(filled)
        else:
            request["params"] = filled
        try:
            reply = self._client.request(self.method, self.url, **request)
        except httpx.HTTPError as exc:
            raise ChannelError(f"SMS service at {self.url} unreachable: {exc}") from exc
        excerpt = reply.text[:_EXCERPT]
        if not reply.is_success:
            raise ChannelError(f"SMS service answered HTTP {reply.status_code}: {excerpt}")
        if self.success_field:
            self._check_field(reply, excerpt)
        return excerpt or f"HTTP {reply.status_code}"

    def _check_field(self, reply: httpx.Response, excerpt: str) -> None:
        path, expected = self.success_field.split("=", 1)
        try:
            value: Any = reply.json()
            for name in path.split("."):
                value = value[name]
        except (ValueError, KeyError, TypeError, IndexError):
            raise ChannelError(
                f"SMS service answered HTTP {reply.status_code} without {path}: {excerpt}"
            ) from None
        if str(value) != expected:
            raise ChannelError(
                f"SMS service answered HTTP {reply.status_code} with {path}={value}: {excerpt}"
            )

    def close(self) -> None:
        self._client.close()
