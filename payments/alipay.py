"""Alipay's open-platform protocol (开放平台): signed gateway requests, signed replies, signed
asynchronous notifications (RSA2 throughout, see payments/signing.py).

Requests carry app_id, method, format=JSON, charset=utf-8, sign_type=RSA2, a timestamp in
Beijing time ("yyyy-MM-dd HH:mm:ss"), version=1.0, the notify_url and biz_content (JSON with our
out_trade_no, total_amount in yuan with 2 decimals, subject). A reply is JSON whose
`<method>_response` node is signed as the exact text it was sent in. A notification is a form
post (trade_status_sync) answered with the plain body `success`.

QR mode calls alipay.trade.precreate and shows its qr_code; page and wap modes build a signed
alipay.trade.page.pay / alipay.trade.wap.pay URL the tenant's browser opens.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx
from Crypto.PublicKey import RSA

from payments.provider import (
    CreatedPayment,
    Notification,
    NotificationRefused,
    ProviderError,
    TradeState,
    TradeStatus,
)
from payments.signing import sign_params, verify_params, verify_text

BEIJING = ZoneInfo("Asia/Shanghai")
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
SUCCESS_CODE = "10000"
NOT_FOUND = "ACQ.TRADE_NOT_EXIST"
Mode = Literal["qr", "page", "wap"]
PAY_METHODS: dict[str, tuple[str, str]] = {
    "page": ("alipay.trade.page.pay", "FAST_INSTANT_TRADE_PAY"),
    "wap": ("alipay.trade.wap.pay", "QUICK_WAP_WAY"),
}
TRADE_STATES: dict[str, TradeState] = {
    "WAIT_BUYER_PAY": "waiting",
    "TRADE_SUCCESS": "paid",
    "TRADE_FINISHED": "paid",  # paid, and past the refund period
    "TRADE_CLOSED": "closed",
}


def yuan(amount: Decimal) -> str:
    """An amount as the protocol writes it: yuan with exactly 2 decimals."""
    return f"{amount.quantize(Decimal('0.01')):f}"


def parse_yuan(text: str, what: str) -> Decimal:
    if not re.fullmatch(r"\d+(\.\d{1,2})?", text or ""):
        raise ValueError(f"{what} {text!r} is not an amount in yuan")
    try:
        return Decimal(text).quantize(Decimal("0.01"))
    except InvalidOperation as exc:
        raise ValueError(f"{what} {text!r} is not an amount in yuan") from exc


def response_node(body: str, method: str) -> tuple[dict[str, Any], str, str]:
    """The `<method>_response` object of a gateway reply, the exact text it was signed as, and
    the signature (empty when the reply has none)."""
    name = method.replace(".", "_") + "_response"
    try:
        whole = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ProviderError(f"the gateway's reply is not JSON: {body[:200]!r}") from exc
    node = whole.get(name) if isinstance(whole, dict) else None
    if not isinstance(node, dict):
        raise ProviderError(f"the gateway's reply has no {name}: {body[:200]!r}")
    # The signature covers the node's text as sent, so take it from the body, not re-encoded.
    start = body.index(f'"{name}"') + len(name) + 2
    start = body.index("{", start)
    _, end = json.JSONDecoder().raw_decode(body, start)
    return node, body[start:end], str(whole.get("sign", ""))


class AlipayProvider:
    ack_body = "success"

    def __init__(
        self,
        *,
        app_id: str,
        gateway_url: str,
        private_key: RSA.RsaKey,
        alipay_public_key: RSA.RsaKey,
        notify_url: str,
        mode: Mode = "qr",
        name: str = "alipay",
        return_url: str = "",
        timeout_min: int = 15,
        http: httpx.Client | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.name = name
        self.app_id = app_id
        self.gateway_url = gateway_url
        self.private_key = private_key
        self.alipay_public_key = alipay_public_key
        self.notify_url = notify_url
        self.return_url = return_url
        self.mode = mode
        self.timeout_min = timeout_min
        self.http = http or httpx.Client(timeout=10.0)
        self._clock = clock

    # --- requests ------------------------------------------------------------------------

    def _now(self) -> datetime:
        return self._clock() if self._clock else datetime.now(BEIJING)

    def signed_request(
        self, method: str, biz: Mapping[str, object], **extra: str
    ) -> dict[str, str]:
        """The full parameter set of one gateway request, signed."""
        params = {
            "app_id": self.app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": self._now().astimezone(BEIJING).strftime(TIMESTAMP_FORMAT),
            "version": "1.0",
            "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":")),
            **{key: value for key, value in extra.items() if value},
        }
        params["sign"] = sign_params(params, self.private_key)
        return params

    def _call(self, method: str, biz: Mapping[str, object], **extra: str) -> dict[str, Any]:
        params = self.signed_request(method, biz, **extra)
        try:
            reply = self.http.post(self.gateway_url, data=params,
                                   headers={"Accept-Charset": "utf-8"})
        except httpx.HTTPError as exc:
            raise ProviderError(f"{method}: the gateway {self.gateway_url} did not answer "
                                f"({exc})") from exc
        if reply.status_code != 200:
            raise ProviderError(f"{method}: the gateway answered HTTP {reply.status_code}")
        node, signed_text, signature = response_node(reply.text, method)
        if signature and not verify_text(signed_text, signature, self.alipay_public_key):
            raise ProviderError(f"{method}: the gateway's reply is not signed by Alipay's key")
        if node.get("code") == SUCCESS_CODE and not signature:
            raise ProviderError(f"{method}: the gateway's reply carries no signature")
        return node

    @staticmethod
    def _failure(method: str, node: Mapping[str, Any]) -> ProviderError:
        parts = [str(node.get(k, "")) for k in ("code", "msg", "sub_code", "sub_msg")]
        return ProviderError(f"{method} refused: {' '.join(p for p in parts if p)}")

    # --- PaymentProvider -----------------------------------------------------------------

    def create(self, *, order_no: str, amount: Decimal, subject: str) -> CreatedPayment:
        biz: dict[str, object] = {
            "out_trade_no": order_no,
            "total_amount": yuan(amount),
            "subject": subject,
            "timeout_express": f"{self.timeout_min}m",
        }
        if self.mode == "qr":
            method = "alipay.trade.precreate"
            node = self._call(method, biz, notify_url=self.notify_url)
            if node.get("code") != SUCCESS_CODE or not node.get("qr_code"):
                raise self._failure(method, node)
            return CreatedPayment(pay_url=str(node["qr_code"]))
        method, product_code = PAY_METHODS[self.mode]
        biz["product_code"] = product_code
        params = self.signed_request(method, biz, notify_url=self.notify_url,
                                     return_url=self.return_url)
        return CreatedPayment(pay_url=f"{self.gateway_url}?{urlencode(params)}")

    def read_notification(self, form: Mapping[str, str]) -> Notification:
        if not form.get("sign"):
            raise NotificationRefused("no signature")
        if form.get("sign_type", "RSA2") != "RSA2":
            raise NotificationRefused(f"sign_type {form.get('sign_type')!r} is not RSA2")
        if not verify_params(form, self.alipay_public_key):
            raise NotificationRefused("the signature does not verify with the provider's key")
        if form.get("app_id") != self.app_id:
            raise NotificationRefused(f"for app_id {form.get('app_id')!r}, not ours")
        event = form.get("trade_status", "")
        if event not in TRADE_STATES:
            raise NotificationRefused(f"unknown trade_status {event!r}")
        order_no = form.get("out_trade_no", "")
        if not order_no:
            raise NotificationRefused("no out_trade_no")
        try:
            amount = parse_yuan(form.get("total_amount", ""), "total_amount")
        except ValueError as exc:
            raise NotificationRefused(str(exc)) from exc
        status = TradeStatus(TRADE_STATES[event], order_no, form.get("trade_no", ""), amount)
        return Notification(order_no=order_no, status=status, event=event)

    def query(self, order_no: str) -> TradeStatus:
        method = "alipay.trade.query"
        node = self._call(method, {"out_trade_no": order_no})
        if node.get("code") != SUCCESS_CODE:
            if node.get("sub_code") == NOT_FOUND:
                return TradeStatus("unknown", order_no)
            raise self._failure(method, node)
        state = TRADE_STATES.get(str(node.get("trade_status", "")))
        if state is None:
            raise ProviderError(f"{method}: unknown trade_status {node.get('trade_status')!r}")
        try:
            amount = parse_yuan(str(node.get("total_amount", "")), "total_amount")
        except ValueError as exc:
            raise ProviderError(f"{method}: {exc}") from exc
        return TradeStatus(state, order_no, str(node.get("trade_no", "")), amount)

    def refund(self, *, order_no: str, amount: Decimal, request_no: str, reason: str) -> None:
        method = "alipay.trade.refund"
        node = self._call(method, {
            "out_trade_no": order_no,
            "refund_amount": yuan(amount),
            "out_request_no": request_no,
            "refund_reason": reason,
        })
        if node.get("code") != SUCCESS_CODE:
            raise self._failure(method, node)
