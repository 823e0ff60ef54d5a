"""The payment provider the settings choose (PAY_PROVIDER), and the sandbox's demo keys."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from Crypto.PublicKey import RSA
from sqlalchemy.orm import Session

from billing import parameters
from billing.policy import BillingPolicy
from payments.alipay import AlipayProvider
from payments.orders import PaymentError
from payments.provider import PaymentProvider
from payments.signing import ensure_key_pair, load_key, load_key_setting
from voltpay.settings import Settings, get_settings

SANDBOX_APP_ID = "2016000000000000"  # the shape of an Alipay app id; the sandbox accepts only it
MERCHANT_KEY = "merchant"  # our side's key pair in PAY_SANDBOX_DIR
GATEWAY_KEY = "gateway"  # the sandbox gateway's own key pair


def sandbox_keys(directory: str | Path) -> tuple[RSA.RsaKey, RSA.RsaKey]:
    """Our private key and the sandbox gateway's, generated into `directory` on first run."""
    folder = Path(directory)
    return ensure_key_pair(folder, MERCHANT_KEY), ensure_key_pair(folder, GATEWAY_KEY)


def sandbox_public_key(directory: str | Path, name: str) -> RSA.RsaKey:
    path = Path(directory) / f"{name}.pub.pem"
    return load_key(path.read_text(encoding="ascii"), what=str(path))


def sandbox_url(settings: Settings) -> str:
    return f"http://{settings.pay_sandbox_host}:{settings.pay_sandbox_port}"


def provider_from_settings(settings: Settings) -> PaymentProvider | None:
    """The provider PAY_PROVIDER names, or None for none; a key that cannot be read is an
    error naming the setting."""
    if settings.pay_provider == "alipay":
        if not settings.alipay_app_id:
            raise PaymentError("PAY_PROVIDER=alipay needs ALIPAY_APP_ID")
        return AlipayProvider(
            app_id=settings.alipay_app_id,
            gateway_url=settings.alipay_gateway_url,
            private_key=load_key_setting(settings.alipay_private_key,
                                         settings.alipay_private_key_file,
                                         what="ALIPAY_PRIVATE_KEY"),
            alipay_public_key=load_key_setting(settings.alipay_public_key,
                                               settings.alipay_public_key_file,
                                               what="ALIPAY_PUBLIC_KEY"),
            notify_url=settings.notify_url,
            return_url=settings.pay_return_url,
            mode=settings.pay_mode,
            timeout_min=settings.pay_order_timeout_min,
        )
    if settings.pay_provider == "sandbox":
        merchant, _ = sandbox_keys(settings.pay_sandbox_dir)
        return AlipayProvider(
            name="sandbox",
            app_id=SANDBOX_APP_ID,
            gateway_url=f"{sandbox_url(settings)}/gateway.do",
            private_key=merchant,
            alipay_public_key=sandbox_public_key(settings.pay_sandbox_dir, GATEWAY_KEY),
            notify_url=settings.notify_url,
            return_url=settings.pay_return_url,
            mode=settings.pay_mode,
            timeout_min=settings.pay_order_timeout_min,
        )
    return None


@lru_cache
def configured_provider() -> PaymentProvider:
    provider = provider_from_settings(get_settings())
    if provider is None:
        raise PaymentError("Online payment is not set up on this site (PAY_PROVIDER is none)")
    return provider


def effective_policy(session: Session) -> BillingPolicy:
    """The sale limits as the operators saved them over the settings."""
    return parameters.effective_policy(session, get_settings().billing_policy())
