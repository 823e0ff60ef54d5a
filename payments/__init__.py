"""Online recharge: payment providers (Alipay's open-platform protocol, and a sandbox that speaks
it for the demo), payment orders, and crediting an account exactly once when a payment is
confirmed — by the provider's notification or by asking the provider (the polling fallback)."""
