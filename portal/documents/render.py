"""Jinja template → HTML → PDF with WeasyPrint.

One FontConfiguration per process (a new one per render leaks memory and re-scans the
system fonts), one parsed print stylesheet, and a URL fetcher that only reads local files
under templates/documents/ and static/ (and data: URLs): a document must never reach out to
the network, whatever a template or a customer's data asks for.

Documents print in the customer's language, per call: there is no Flask request (documents
render in the CLI and in workers too), so render_html() loads the portal's own catalogues
(portal/translations, cached per language) and hands `_`, `gettext`, `ngettext` and
`pgettext` to the template, with Jinja's "newstyle" semantics: `_("Due %(date)s", date=x)`
formats with %, the variables are escaped and the translated text is trusted markup.
"""
from __future__ import annotations

import logging
import mimetypes
import re
import threading
from collections.abc import Callable, Iterable
from datetime import date, datetime
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.request import url2pathname

import jinja2
import pydyf
from babel.support import NullTranslations, Translations
from markupsafe import Markup
from weasyprint import CSS, HTML, Attachment
from weasyprint.pdf.metadata import DocumentMetadata
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import FatalURLFetchingError, URLFetcher, URLFetcherResponse

ROOT = Path(__file__).resolve().parent.parent.parent
TEMPLATES_DIR = ROOT / "templates" / "documents"
STATIC_DIR = ROOT / "static"
STYLESHEET = TEMPLATES_DIR / "print.css"
TRANSLATIONS_DIR = ROOT / "portal" / "translations"
LANGUAGES = ("cs", "en")
DEFAULT_LANGUAGE = "en"
ALLOWED_ROOTS = (TEMPLATES_DIR.resolve(), STATIC_DIR.resolve())

# WeasyPrint logs every layout step at INFO; a bulk render would drown the log.
logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)

# How many PDFs this process has rendered: tests and the benchmark read it.
render_count = 0


class DocumentError(Exception):
    """Rendering or storing a document failed."""


class ResourceRefused(DocumentError):
    """A template asked for a resource outside the allowed local folders."""


class SafeURLFetcher(URLFetcher):
    """Serves data: URLs and files under templates/documents/ and static/; refuses the rest.

    `fail_on_errors` makes WeasyPrint stop on a refusal instead of logging a warning and
    printing the document without the image; render_pdf() turns that into ResourceRefused.
    """

    def __init__(self) -> None:
        super().__init__(fail_on_errors=True, allowed_protocols=("data", "file"))

    def fetch(self, url: str, headers=None):
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme == "data":
            return super().fetch(url, headers)
        if scheme != "file":
            raise ResourceRefused(f"external resource refused: {url}")
        path = Path(url2pathname(url.split("?", 1)[0].split("#", 1)[0].removeprefix("file:"))).resolve()
        if not any(path.is_relative_to(root) for root in ALLOWED_ROOTS):
            raise ResourceRefused(f"file outside the document folders refused: {path}")
        if not path.is_file():
            raise ResourceRefused(f"missing file: {path}")
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return URLFetcherResponse(url, path.read_bytes(), {"Content-Type": content_type})


_lock = threading.Lock()
_font_config: FontConfiguration | None = None
_fetcher: SafeURLFetcher | None = None
_stylesheet: tuple[float, CSS] | None = None


def font_config() -> FontConfiguration:
    """The process's one FontConfiguration, created on first use."""
    global _font_config
    if _font_config is None:
        with _lock:
            if _font_config is None:
                _font_config = FontConfiguration()
    return _font_config


def url_fetcher() -> SafeURLFetcher:
    global _fetcher
    if _fetcher is None:
        _fetcher = SafeURLFetcher()
    return _fetcher


def stylesheet() -> CSS:
    """The print stylesheet, parsed once (again only when the file changes)."""
    global _stylesheet
    mtime = STYLESHEET.stat().st_mtime
    if _stylesheet is None or _stylesheet[0] != mtime:
        css = CSS(filename=str(STYLESHEET), font_config=font_config(), url_fetcher=url_fetcher())
        _stylesheet = (mtime, css)
    return _stylesheet[1]


# --- Jinja -----------------------------------------------------------------------------

def _money(value: Any, currency: str | None = None) -> str:
    """1234.5 → "1 234.50" (a thin space groups thousands, as on Czech documents)."""
    if value is None or value == "":
        return ""
    amount = Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    sign = "−" if amount < 0 else ""
    whole, _, cents = f"{abs(amount):.2f}".partition(".")
    groups = []
    while whole:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    nbsp = "\u00a0"
    text = sign + nbsp.join(groups) + "." + cents
    return f"{text}{nbsp}{currency}" if currency else text


def _price(value: Any) -> str:
    """Unit prices: up to 4 decimals, at least 2 (99.1736 stays, 500.0000 → 500.00)."""
    if value is None or value == "":
        return ""
    d = Decimal(str(value)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
    head = _money(d.quantize(Decimal("0.01"), rounding=ROUND_DOWN)).rsplit(".", 1)[0]
    frac = f"{abs(d):f}".split(".")[1].rstrip("0").ljust(2, "0")
    return f"{head}.{frac}"


def _number(value: Any) -> str:
    """Quantities and rates without trailing zeros: 1.0000 → 1, 21.00 → 21, 0.5 → 0.5."""
    if value is None or value == "":
        return ""
    d = Decimal(str(value))
    text = f"{d:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _date(value: Any) -> str:
    if value in (None, ""):
        return ""
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    if isinstance(value, datetime):
        value = value.date()
    return f"{value.day}. {value.month}. {value.year}"


_env: jinja2.Environment | None = None


def jinja_env() -> jinja2.Environment:
    """A Jinja environment of its own: documents render in workers and the CLI too, with
    no request; autoescape is on for every template, so customer data prints literally."""
    global _env
    if _env is None:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=True,
        )
        env.filters.update(money=_money, price=_price, number=_number, date=_date)
        _env = env
    return _env


# --- languages -------------------------------------------------------------------------

def N_(message: str) -> str:
    """Marks a constant for extraction (babel's default keyword); translated at render time."""
    return message


def language_of(value: Any) -> str:
    """"cs" / "en" from a Language enum, a string or None (anything unknown → English)."""
    code = str(getattr(value, "value", value) or "").lower()[:2]
    return code if code in LANGUAGES else DEFAULT_LANGUAGE


_translations: dict[str, NullTranslations] = {}


def translations(language: Any) -> NullTranslations:
    """The compiled catalogue of `language` (cached per process). English has an empty
    msgstr for every entry, so its messages fall back to the msgid."""
    lang = language_of(language)
    found = _translations.get(lang)
    if found is None:
        with _lock:
            found = _translations.get(lang)
            if found is None:
                found = Translations.load(str(TRANSLATIONS_DIR), [lang], domain="messages")
                _translations[lang] = found
    return found


def plain_gettext(language: Any) -> Callable[..., str]:
    """gettext in `language` for texts built in Python: `t(msgid, **variables)` → str
    (%-formatted only when variables are given)."""
    tr = translations(language)

    def t(message: str, **variables: Any) -> str:
        text = tr.gettext(message)
        return text % variables if variables else text

    return t


def gettext_callables(language: Any) -> dict[str, Any]:
    """`_`, `gettext`, `ngettext` and `pgettext` for a template, in `language`.

    As Jinja's newstyle gettext: the result is always %-formatted (a literal % is written
    %%), ngettext passes the count as %(num)s, and with autoescape the translation is
    Markup, so the variables are escaped and customer data prints literally.
    """
    tr = translations(language)

    def finish(eval_ctx: Any, text: str, variables: dict[str, Any]) -> str:
        if eval_ctx.autoescape:
            # The catalogue's text is ours (trusted markup); Markup's % escapes the variables.
            return Markup(text) % variables  # noqa: S704
        return text % variables

    @jinja2.pass_eval_context
    def gettext(__eval_ctx: Any, __message: str, **variables: Any) -> str:
        return finish(__eval_ctx, tr.gettext(__message), variables)

    @jinja2.pass_eval_context
    def ngettext(__eval_ctx: Any, __singular: str, __plural: str, __num: int, **variables: Any) -> str:
        variables.setdefault("num", __num)
        return finish(__eval_ctx, tr.ngettext(__singular, __plural, __num), variables)

    @jinja2.pass_eval_context
    def pgettext(__eval_ctx: Any, __context: str, __message: str, **variables: Any) -> str:
        return finish(__eval_ctx, tr.pgettext(__context, __message), variables)

    return {"_": gettext, "gettext": gettext, "ngettext": ngettext, "pgettext": pgettext}


def render_html(template: str, context: dict[str, Any], language: Any = DEFAULT_LANGUAGE) -> str:
    """The template rendered with `context`, its texts in `language` ("cs" / "en")."""
    lang = language_of(language)
    return jinja_env().get_template(template).render(**context, **gettext_callables(lang), lang=lang)


_page_css: dict[str, CSS] = {}
_PLACEHOLDER = re.compile(r"%\((page|pages)\)s")


def _css_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def page_footer_css_text(language: Any) -> str:
    """The @page footer "Page X of Y" in `language`, as CSS: the translated
    "Page %(page)s of %(pages)s" with its placeholders turned into the page counters."""
    pattern = translations(language).gettext("Page %(page)s of %(pages)s")
    parts: list[str] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(pattern):
        if m.start() > pos:
            parts.append(_css_string(pattern[pos:m.start()]))
        parts.append(f"counter({m.group(1)})")
        pos = m.end()
    if pos < len(pattern):
        parts.append(_css_string(pattern[pos:]))
    return "@page { @bottom-right { content: " + " ".join(parts) + "; } }"


def page_footer_stylesheet(language: Any) -> CSS:
    """page_footer_css_text() parsed once per language."""
    lang = language_of(language)
    css = _page_css.get(lang)
    if css is None:
        css = CSS(string=page_footer_css_text(lang), font_config=font_config(), url_fetcher=url_fetcher())
        _page_css[lang] = css
    return css


# --- PDF -------------------------------------------------------------------------------

class _ExtraXMPMetadata(DocumentMetadata):
    """WeasyPrint's metadata plus rdf:Description elements inside its one rdf:RDF (the
    Factur-X extension schema must live there for PDF/A validators)."""

    def __init__(self, extra_rdf: bytes, **kwargs):
        super().__init__(**kwargs)
        self.extra_rdf = extra_rdf

    def generate_rdf_metadata(self, variant, version, conformance):
        xml = super().generate_rdf_metadata(variant, version, conformance)
        end = xml.rindex(b"</rdf:RDF>")
        return xml[:end] + self.extra_rdf + xml[end:]


def _dedupe_associated_files(document, pdf) -> None:
    """WeasyPrint 70 lists each PDF/A-3 associated file twice in the catalog's /AF."""
    af = pdf.catalog.get("AF")
    if af:
        pdf.catalog["AF"] = pydyf.Array(list(dict.fromkeys(af)))


def render_pdf(
    html: str,
    *,
    pdf_variant: str | None = None,
    attachments: Iterable[Attachment] = (),
    extra_xmp: bytes | None = None,
    title: str | None = None,
    language: Any = None,
) -> bytes:
    """Lay out `html` with the print stylesheet and return the PDF bytes. With a
    `language`, the page footer ("Page X of Y") is in that language.

    Raises ResourceRefused when the document asks for anything but allowed local files.
    """
    global render_count
    sheets = [stylesheet()]
    if language is not None:
        sheets.append(page_footer_stylesheet(language))
    # Tagged PDF (structure tree, MarkInfo /Marked true): screen readers follow headings,
    # tables and reading order instead of loose glyphs.
    options: dict[str, Any] = {"stylesheets": sheets, "pdf_tags": True}
    if pdf_variant:
        options["pdf_variant"] = pdf_variant
    try:
        document = HTML(string=html, base_url=str(TEMPLATES_DIR) + "/", url_fetcher=url_fetcher()).render(
            font_config=font_config(), **options
        )
        if extra_xmp:
            document.metadata = _ExtraXMPMetadata(extra_xmp, **vars(document.metadata))
        if title:
            document.metadata.title = title
        pdf = document.write_pdf(attachments=list(attachments) or None, finisher=_dedupe_associated_files, **options)
    except FatalURLFetchingError as exc:
        cause = exc.__cause__
        if isinstance(cause, ResourceRefused):
            raise ResourceRefused(str(cause)) from exc
        raise ResourceRefused(str(exc)) from exc
    render_count += 1
    return pdf


def render_template_pdf(template: str, context: dict[str, Any], language: Any = DEFAULT_LANGUAGE, **pdf_options) -> bytes:
    return render_pdf(render_html(template, context, language), language=language, **pdf_options)

