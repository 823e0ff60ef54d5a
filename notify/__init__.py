"""Notifications: tenants told of balance levels, arrears trips and recharges; operators told
of lost gateways and failed commands — by SMS (a GSM modem or an HTTP SMS service) or email.

- `notify.outbox`: `enqueue` writes a message into the caller's transaction (so billing's money
  and its message commit together); a dedupe key, unique per recipient until cleared, makes
  "at most one message per level per account until it clears" a database rule.
- `notify.messages`: the texts, in English and Simplified Chinese.
- `notify.channels`: GSM modem (AT commands, text and PDU mode), HTTP SMS service, SMTP.
- `notify.sender`: the loop that delivers (`voltpay notify`), with retries, back-off, quiet
  hours, and every attempt recorded.

A message is never sent twice by the sender itself. It is marked `sending` in a committed
transaction before it is handed to a channel, and its outcome is committed after; a channel
error means the message did not go, and it is retried with back-off. If the sender dies between
handing a message over and committing the outcome, the message stays `sending`; when that claim
lapses (NOTIFY_SENDING_TIMEOUT_S) nobody can know whether it went, so it is given up as failed
with that reason, and the dashboard's Messages page reports it for an operator to check and
send again. (A modem that times out after it was given the text, or a long message whose later
part fails, is retried: the channel cannot tell those apart from a message that never went.)
"""
