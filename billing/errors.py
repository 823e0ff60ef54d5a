"""Errors a user can cause, with messages a cashier understands."""


class BillingError(Exception):
    """A refused operation; the message is shown to the operator as it is."""


class NotFound(BillingError):
    pass


class PermissionDenied(BillingError):
    pass


