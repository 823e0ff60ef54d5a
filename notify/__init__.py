"""Notifications: tenants told of balance levels, arrears trips and recharges; operators told
of lost gateways and failed commands — by SMS (a GSM modem or an HTTP SMS service) or email.

- `notify.outbox`: `enqueue` writes a message into the caller's transaction (so billing's money
  and its message commit together); a dedupe key, unique per recipient until cleared, makes
  "at most one message per level per account until it clears" a database rule.
- `notify.messages`: the texts, in English and Simplified Chinese.
- `notify.channels`: GSM modem (AT commands, text and PDU mode), HTTP SMS service, SMTP.
- `notify.sender`: the loop that delivers (`voltpay notify`), with retries, back-off, quiet
  hours, and every attempt recorded.

Delivery is at-least-once across a crash, exactly once otherwise. A message is marked
`sending` in a committed transaction before it is handed to a channel, and its outcome is
committed after; a channel error means the message did not go and it is retried with back-off.
If the sender dies between handing a message over and committing the outcome, the message stays
`sending`; when that claim lapses (NOTIFY_SENDING_TIMEOUT_S) it is treated as possibly sent —
an attempt with an unknown outcome is recorded — and sent again. We chose this over at-most-once
(giving such a message up as failed) because a tenant who never hears of arrears loses power
unwarned, while a duplicate in that rare window costs one SMS. The same holds for a modem that
times out after it was given the message, and for a long message whose later part fails (its
earlier parts go again on the retry).
"""
