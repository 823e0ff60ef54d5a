"""The sandbox payment provider for the demo: a small HTTP server that speaks Alipay's gateway
protocol with its own key pair, so the real provider code (payments/alipay.py) runs against it.

- `POST|GET /gateway.do`: signed requests, verified with our (the merchant's) public key:
  alipay.trade.precreate (its qr_code is this server's pay page), alipay.trade.page.pay and
  wap.pay (a browser opening the signed URL lands on the pay page), alipay.trade.query and
  alipay.trade.refund. Replies are signed with the gateway's key, as Alipay signs them.
- `GET /pay/<order>`: the amount and a Pay button; paying posts a signed trade_status_sync
  notification to the order's notify_url, again until it answers `success` (as Alipay does).

Trades live in memory: a restarted sandbox forgets unpaid ones (the poller then closes them).
`voltpay sandbox-pay` runs it; `voltpay run` starts it when PAY_PROVIDER is sandbox.
"""

from __future__ import annotations

import html
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from Crypto.PublicKey import RSA

from payments.alipay import BEIJING, NOT_FOUND, SUCCESS_CODE, TIMESTAMP_FORMAT, parse_yuan, yuan
from payments.signing import sign_params, sign_text, verify_params

log = logging.getLogger(__name__)

# Alipay retries a notification not answered `success` (at 4 m, 10 m, 10 m, 1 h, …); the
# sandbox does the same, faster.
NOTIFY_RETRY_S = (1.0, 2.0, 5.0, 15.0, 60.0)


@dataclass
class Trade:
    order_no: str
    amount: Decimal
    subject: str
    notify_url: str
    return_url: str
    created_at: datetime
    expires_at: datetime
    trade_no: str = ""
    status: str = "WAIT_BUYER_PAY"
    paid_at: datetime | None = None
    refund_requests: set[str] = field(default_factory=set)
    notified: bool = False  # a notification was answered `success`


class SandboxGateway:
    def __init__(
        self,
        *,
        gateway_key: RSA.RsaKey,
        merchant_public_key: RSA.RsaKey,
        app_id: str,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], datetime] | None = None,
        retry_s: tuple[float, ...] = NOTIFY_RETRY_S,
    ) -> None:
        self.gateway_key = gateway_key
        self.merchant_public_key = merchant_public_key
        self.app_id = app_id
        self.clock = clock or (lambda: datetime.now(BEIJING))
        self.retry_s = retry_s
        self.trades: dict[str, Trade] = {}
        self._lock = threading.Lock()
        self._counter = 0
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self.host, self.port = str(host), int(self._server.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- running -------------------------------------------------------------------------

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def start(self) -> SandboxGateway:
        self._thread = threading.Thread(target=self.serve_forever, name="pay-sandbox",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    # --- the gateway ---------------------------------------------------------------------

    def gateway(self, params: Mapping[str, str]) -> tuple[str, str]:
        """Answer one gateway request: (content type, body)."""
        method = params.get("method", "")
        if not verify_params(params, self.merchant_public_key):
            return "json", self._error(method, "40002", "Invalid Arguments",
                                       "isv.invalid-signature", "验签出错")
        if params.get("app_id") != self.app_id:
            return "json", self._error(method, "40002", "Invalid Arguments",
                                       "isv.invalid-app-id", "无效的AppID参数")
        try:
            biz = json.loads(params.get("biz_content", "{}"))
        except json.JSONDecodeError:
            return "json", self._error(method, "40002", "Invalid Arguments",
                                       "isv.invalid-biz-content", "biz_content is not JSON")
        if method == "alipay.trade.precreate":
            trade = self._open(biz, params)
            if isinstance(trade, str):
                return "json", self._reply(method, self._business_error(trade))
            return "json", self._reply(method, {
                "code": SUCCESS_CODE, "msg": "Success", "out_trade_no": trade.order_no,
                "qr_code": f"{self.url}/pay/{trade.order_no}",
            })
        if method in ("alipay.trade.page.pay", "alipay.trade.wap.pay"):
            trade = self._open(biz, params)
            if isinstance(trade, str):
                return "html", _page("Payment refused", f"<p>{html.escape(trade)}</p>")
            return "html", self.pay_page(trade.order_no)
        if method == "alipay.trade.query":
            return "json", self._reply(method, self._query(str(biz.get("out_trade_no", ""))))
        if method == "alipay.trade.refund":
            return "json", self._reply(method, self._refund(biz))
        return "json", self._error(method, "40004", "Business Failed", "isv.invalid-method",
                                   f"unknown method {method!r}")

    def _open(self, biz: Mapping[str, Any], params: Mapping[str, str]) -> Trade | str:
        order_no = str(biz.get("out_trade_no", ""))
        try:
            amount = parse_yuan(str(biz.get("total_amount", "")), "total_amount")
        except ValueError as exc:
            return str(exc)
        if not order_no or amount <= 0:
            return "out_trade_no and a total_amount above 0 are required"
        minutes = int(str(biz.get("timeout_express", "15m")).rstrip("m") or 15)
        with self._lock:
            trade = self.trades.get(order_no)
            if trade is not None:
                # The same out_trade_no again is the same trade, if it asks for the same money.
                return trade if trade.amount == amount else "ACQ.CONTEXT_INCONSISTENT"
            now = self.clock()
            trade = Trade(order_no=order_no, amount=amount, subject=str(biz.get("subject", "")),
                          notify_url=params.get("notify_url", ""),
                          return_url=params.get("return_url", ""), created_at=now,
                          expires_at=now + timedelta(minutes=minutes))
            self.trades[order_no] = trade
            return trade

    def _expire(self, trade: Trade) -> None:
        if trade.status == "WAIT_BUYER_PAY" and self.clock() >= trade.expires_at:
            trade.status = "TRADE_CLOSED"

    def _query(self, order_no: str) -> dict[str, str]:
        with self._lock:
            trade = self.trades.get(order_no)
            if trade is None:
                return self._business_error(NOT_FOUND)
            self._expire(trade)
            return {
                "code": SUCCESS_CODE, "msg": "Success", "out_trade_no": trade.order_no,
                "trade_no": trade.trade_no, "trade_status": trade.status,
                "total_amount": yuan(trade.amount),
            }

    def _refund(self, biz: Mapping[str, Any]) -> dict[str, str]:
        order_no = str(biz.get("out_trade_no", ""))
        request_no = str(biz.get("out_request_no", "")) or order_no
        with self._lock:
            trade = self.trades.get(order_no)
            if trade is None:
                return self._business_error(NOT_FOUND)
            try:
                amount = parse_yuan(str(biz.get("refund_amount", "")), "refund_amount")
            except ValueError:
                return self._business_error("ACQ.INVALID_PARAMETER")
            fund_change = "N"
            if request_no not in trade.refund_requests:
                if trade.status != "TRADE_SUCCESS":
                    return self._business_error("ACQ.TRADE_STATUS_ERROR")
                if amount != trade.amount:
                    return self._business_error("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")
                trade.refund_requests.add(request_no)
                trade.status = "TRADE_CLOSED"  # refunded in full
                fund_change = "Y"
            return {
                "code": SUCCESS_CODE, "msg": "Success", "out_trade_no": order_no,
                "trade_no": trade.trade_no, "refund_fee": yuan(amount),
                "fund_change": fund_change,
            }

    @staticmethod
    def _business_error(sub_code: str) -> dict[str, str]:
        return {"code": "40004", "msg": "Business Failed", "sub_code": sub_code,
                "sub_msg": sub_code}

    def _reply(self, method: str, node: Mapping[str, str]) -> str:
        text = json.dumps(node, ensure_ascii=False, separators=(",", ":"))
        name = method.replace(".", "_") + "_response"
        return f'{{"{name}":{text},"sign":"{sign_text(text, self.gateway_key)}"}}'

    @staticmethod
    def _error(method: str, code: str, msg: str, sub_code: str, sub_msg: str) -> str:
        # Requests that fail the gateway's own checks are answered unsigned, as Alipay does.
        return json.dumps({"error_response": {"code": code, "msg": msg, "sub_code": sub_code,
                                              "sub_msg": sub_msg}}, ensure_ascii=False)

    # --- paying --------------------------------------------------------------------------

    def pay(self, order_no: str, *, notify: bool = True) -> Trade:
        """The buyer pays: the trade succeeds and (unless told not to) the notification goes."""
        with self._lock:
            trade = self.trades.get(order_no)
            if trade is None:
                raise LookupError(f"no trade {order_no}")
            self._expire(trade)
            if trade.status == "WAIT_BUYER_PAY":
                now = self.clock()
                self._counter += 1
                trade.trade_no = f"{now:%Y%m%d}2200{self._counter:012d}"
                trade.status, trade.paid_at = "TRADE_SUCCESS", now
            elif trade.status != "TRADE_SUCCESS":
                raise LookupError(f"trade {order_no} is {trade.status}")
        if notify and trade.notify_url:
            threading.Thread(target=self._deliver, args=(trade,), daemon=True).start()
        return trade

    def notification(self, order_no: str) -> dict[str, str]:
        """The signed trade_status_sync notification for a paid trade, as Alipay posts it."""
        trade = self.trades[order_no]
        now = self.clock()
        params = {
            "notify_time": now.strftime(TIMESTAMP_FORMAT),
            "notify_type": "trade_status_sync",
            "notify_id": f"{trade.trade_no}{int(time.time() * 1000)}",
            "app_id": self.app_id,
            "charset": "utf-8",
            "version": "1.0",
            "sign_type": "RSA2",
            "trade_no": trade.trade_no,
            "out_trade_no": trade.order_no,
            "trade_status": trade.status,
            "total_amount": yuan(trade.amount),
            "receipt_amount": yuan(trade.amount),
            "buyer_pay_amount": yuan(trade.amount),
            "subject": trade.subject,
            "gmt_create": trade.created_at.strftime(TIMESTAMP_FORMAT),
            "gmt_payment": (trade.paid_at or now).strftime(TIMESTAMP_FORMAT),
        }
        params["sign"] = sign_params(params, self.gateway_key)
        return params

    def _deliver(self, trade: Trade) -> None:
        for delay in (0.0, *self.retry_s):
            time.sleep(delay)
            try:
                reply = httpx.post(trade.notify_url, data=self.notification(trade.order_no),
                                   timeout=10.0)
                if reply.text.strip() == "success":
                    trade.notified = True
                    return
                log.warning("notify %s: answered %s %r", trade.order_no, reply.status_code,
                            reply.text[:100])
            except httpx.HTTPError as exc:
                log.warning("notify %s: %s", trade.order_no, exc)
        log.error("notify %s: gave up after %d tries", trade.order_no, len(self.retry_s) + 1)

    def pay_page(self, order_no: str, *, message: str = "") -> str:
        trade = self.trades.get(order_no)
        if trade is None:
            return _page("No such payment", f"<p>No payment {html.escape(order_no)}.</p>")
        with self._lock:
            self._expire(trade)
        amount = f"¥ {yuan(trade.amount)}"
        if trade.status == "WAIT_BUYER_PAY":
            action = (f'<form method="post" action="/pay/{html.escape(order_no)}">'
                      '<button type="submit" id="pay">Pay 付款</button></form>')
        elif trade.status == "TRADE_SUCCESS":
            back = (f'<p><a href="{html.escape(trade.return_url)}">Back 返回</a></p>'
                    if trade.return_url else "")
            action = f'<p id="paid">Paid 已付款 — {html.escape(trade.trade_no)}</p>{back}'
        else:
            action = '<p id="closed">This payment is closed 交易已关闭</p>'
        body = (f"<p>{html.escape(trade.subject)}</p><p class='amount'>{amount}</p>"
                f"<p>Order 订单 {html.escape(order_no)}</p>{message}{action}")
        return _page("Voltpay sandbox payment 沙箱支付", body)


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;max-width:28em;"
        "margin:2em auto;text-align:center}.amount{font-size:2.5em;font-weight:bold}"
        "button{font-size:1.5em;padding:.6em 2.5em;background:#1677ff;color:#fff;border:0;"
        "border-radius:.4em}</style></head>"
        f"<body><h1>{html.escape(title)}</h1><p><em>Sandbox: no real money moves. "
        f"沙箱：不产生真实扣款。</em></p>{body}</body></html>"
    )


def _handler(sandbox: SandboxGateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.client_address[0], *args)

        def _send(self, status: int, kind: str, body: str) -> None:
            data = body.encode("utf-8")
            content_type = "application/json" if kind == "json" else "text/html"
            self.send_response(status)
            self.send_header("Content-Type", f"{content_type}; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _form(self) -> dict[str, str]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8") if length else ""
            return dict(parse_qsl(raw, keep_blank_values=True))

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/gateway.do":
                self._send(200, *sandbox.gateway(dict(parse_qsl(url.query))))
            elif url.path.startswith("/pay/"):
                self._send(200, "html", sandbox.pay_page(url.path.removeprefix("/pay/")))
            else:
                self._send(404, "html", _page("Not found", ""))

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            form = {**dict(parse_qsl(url.query)), **self._form()}
            if url.path == "/gateway.do":
                self._send(200, *sandbox.gateway(form))
            elif url.path.startswith("/pay/"):
                order_no = url.path.removeprefix("/pay/")
                try:
                    sandbox.pay(order_no)
                except LookupError as exc:
                    self._send(409, "html", sandbox.pay_page(
                        order_no, message=f"<p>{html.escape(str(exc))}</p>"))
                    return
                self._send(200, "html", sandbox.pay_page(order_no))
            else:
                self._send(404, "html", _page("Not found", ""))

    return Handler
