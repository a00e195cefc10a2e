"""A patient's own data-protection rights, used from their private link and from the admin's
privacy pages: withdrawing contact consent, a copy of their data, and erasure requests."""
