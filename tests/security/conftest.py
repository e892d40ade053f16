"""The selfcare fixtures (a customer's world of rows) for the security suite too."""
from tests.selfcare.conftest import mine, theirs  # noqa: F401 — fixtures
