"""Mechanisms below the domain: password hashing, TOTP, server-side sessions, login throttling
(and API tokens). The domain's account and security rules call them; the auth face only shows
their views."""
