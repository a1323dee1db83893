from __future__ import annotations


class AccountsError(Exception):
    """Base for errors the accounts door raises with a message a person can act on."""


class ProvisioningRefused(AccountsError):
    """No existing person matched and the caller did not allow creating one."""


class TenantNotFound(AccountsError):
    pass


class MergeRefused(AccountsError):
    pass
