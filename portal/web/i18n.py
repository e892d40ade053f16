"""Language: the logged-in user's setting, else Accept-Language (outside a request: the default)."""
from flask import current_app, has_request_context, request
from flask_login import current_user


def select_locale() -> str:
    languages = current_app.config["LANGUAGES"]
    default = current_app.config["BABEL_DEFAULT_LOCALE"]
    if not has_request_context():
        return default
    user = current_user
    if user is not None and getattr(user, "is_authenticated", False):
        lang = getattr(user, "language", None)
        if lang is None and getattr(user, "is_customer", False):
            lang = user.customer.language
        if lang and str(lang) in languages:
            return str(lang)
    chosen = request.cookies.get("lang")
    if chosen in languages:
        return chosen
    return request.accept_languages.best_match(languages) or default


def select_timezone() -> str:
    return current_app.config["BABEL_DEFAULT_TIMEZONE"]
