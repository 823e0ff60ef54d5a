"""The HTTP API: payment notifications, online recharge orders, read access for integrations."""
