from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length


class LoginForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Length(max=254)],
                       render_kw={"autocomplete": "username", "autofocus": True})
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)],
                             render_kw={"autocomplete": "current-password"})


class SecondFactorForm(FlaskForm):
    code = StringField(_l("Code from your authenticator app, or a recovery code"),
                       validators=[DataRequired(), Length(max=20)],
                       render_kw={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True})


class ForgotPasswordForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Email(check_deliverability=False, allow_smtputf8=False), Length(max=254)],
                       render_kw={"autocomplete": "email", "autofocus": True})


class ResetPasswordForm(FlaskForm):
    password = PasswordField(_l("New password"), validators=[DataRequired(), Length(max=200)],
                             render_kw={"autocomplete": "new-password"},
                             description=_l("At least 10 characters. A few unrelated words make a strong password."))
    confirm = PasswordField(_l("Repeat the new password"),
                            validators=[DataRequired(), EqualTo("password", message=_l("The passwords differ."))],
                            render_kw={"autocomplete": "new-password"})
