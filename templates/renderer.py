"""Render e-mails and SMS from sandboxed Jinja2 templates.

Files, one per name, channel and locale (project directory first, then the
built-ins shipped in ``templates/builtin``; a project file replaces the built-in
file of the same name)::

    <name>.email.<locale>.html.j2   HTML part (required for e-mail)
    <name>.email.<locale>.txt.j2    text part (optional; else converted from the HTML)
    <name>.sms.<locale>.j2          SMS body

``<locale>`` is ``de``, ``en``, ``de-AT`` or ``de_AT``. A customer locale falls
back to its language, then to the project default locale and its language, then
to ``en``. Files whose name starts with ``_`` are layouts and partials
(``_layout.email.html.j2``, ``_layout.email.txt.j2``, ``_layout_strings.j2``).

The subject and preheader are blocks of the HTML template::

    {% extends "_layout.email.html.j2" %}
    {% block subject %}Danke für Ihren Einkauf, {{ customer.first_name }}{% endblock %}
    {% block preheader %}Tipps und Hilfe rund um Ihr neues Gerät{% endblock %}
    {% block content %}…{% endblock %}

The layout puts the subject into ``<title>`` and the preheader into a hidden
element; the renderer also reads both blocks out, unescaped and on one line.

Besides the caller's context (``customer``, ``order``, ``item``, ``items``, ``journey``,
``step``, ``links``, ``offer``, ``now``) templates see ``shop`` (the
:class:`ShopInfo` as a dict), ``marketing`` (bool), ``channel`` (``email`` or
``sms``), ``locale`` (formatting locale, e.g. ``de_AT``), ``lang`` (language of
the file in use) and the function ``shop_link(path_or_url)`` that adds UTM
parameters (in an SMS whose context has ``links.short``, it returns that short link and
collects the full one in :attr:`RenderedSms.links`). Filters: ``money``, ``date``,
``datetime``, ``number``, ``ordinal`` (see :mod:`templates.formatting`), ``and_list`` and
``your`` (see :mod:`templates.wording`). ``items`` lists what a message is about: its own
``item`` first, then the items of the messages bundled into it.

Templates run in Jinja's immutable sandbox with ``StrictUndefined``: an unknown
variable, a syntax error or an attempt to reach Python internals raises
:class:`TemplateError` naming the file and line. Compiled templates are cached
for the renderer's lifetime (call :meth:`TemplateRenderer.reload` after editing
files); rendering is safe from several threads.
"""

from __future__ import annotations

import html as html_lib
import re
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import jinja2
from jinja2.sandbox import SecurityError

from .formatting import FILTERS, fallback_chain, language_of, normalise_locale
from .inlining import InlinerName, ShapeCache, make_inliner
from .links import numbered, with_utm
from .plaintext import html_to_text
from .results import RenderedEmail, RenderedSms, ShopInfo, TemplateError, TemplateIssue
from .sandbox import TemplateSandbox
from .sms import append_opt_out, normalise_sms_body, sms_segments
from .textfiles import NotText, decode
from .validation import email_issues, sms_issues, validate_template
from .wording import WORDING_FILTERS

__all__ = [
    "BUILTIN_DIR",
    "RenderedEmail",
    "RenderedSms",
    "ShopInfo",
    "TemplateError",
    "TemplateIssue",
    "TemplateRenderer",
]

BUILTIN_DIR = Path(__file__).with_name("builtin")
Channel = Literal["email", "sms"]
_KINDS = {"email": ("html", "txt"), "sms": ("sms",)}
# Where an SMS render collects the full links behind its short ones.
_SHORT_LINKS = "_short_links"
_NO_ATTRIBUTE = re.compile(r"^'[\w ]+ object' has no attribute '(?P<attr>\w+)'$")
# Spelled out: re finds a literal prefix quickly, "\n{3,}" took it six times as long.
_BLANK_RUNS = re.compile(r"\n\n\n+")


@dataclass(frozen=True)
class _Resolved:
    """The files one render uses."""

    locale: str
    main: str
    text: str | None = None


@dataclass
class _Index:
    """Template files by (name, kind) and locale, and which come from the project."""

    files: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    project: frozenset[str] = frozenset()


def _parse_file_name(file_name: str) -> tuple[str, str, str] | None:
    """``thank_you.email.de.html.j2`` → ``("thank_you", "html", "de")``."""
    parts = file_name.split(".")
    if "/" in file_name or file_name.startswith("_") or parts[-1] != "j2":
        return None
    if len(parts) == 5 and parts[1] == "email" and parts[3] in ("html", "txt"):
        return parts[0], parts[3], normalise_locale(parts[2])
    if len(parts) == 4 and parts[1] == "sms":
        return parts[0], "sms", normalise_locale(parts[2])
    return None


class _TextLoader(jinja2.FileSystemLoader):
    """Template files as UTF-8 text: one that is not is a syntax error at its first byte
    that is not, naming the file and line, rather than a decoder's traceback."""

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        try:
            return super().get_source(environment, template)
        except UnicodeDecodeError:
            pieces = jinja2.loaders.split_template_path(template)
            for directory in self.searchpath:
                path = Path(directory, *pieces)
                if path.is_file():
                    try:
                        decode(path.read_bytes())
                    except NotText as exc:
                        raise jinja2.TemplateSyntaxError(
                            str(exc), exc.line, template, str(path)
                        ) from None
            raise


def _build_index(project: jinja2.BaseLoader | None, builtin: jinja2.BaseLoader) -> _Index:
    project_names = frozenset(project.list_templates()) if project else frozenset()
    index = _Index(project=project_names)
    for file_name in sorted(set(builtin.list_templates()) | project_names):
        parsed = _parse_file_name(file_name)
        if parsed:
            name, kind, locale = parsed
            # Project files are listed after built-ins of other spellings ("de-AT"/"de_AT").
            index.files.setdefault((name, kind), {})
            if locale not in index.files[(name, kind)] or file_name in project_names:
                index.files[(name, kind)][locale] = file_name
    return index


def _clean_text(text: str) -> str:
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    lines = [line.rstrip() for line in text.split("\n")]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip() + "\n"


def _one_line(markup: str) -> str:
    """A block rendered in an HTML template as plain, single-line text."""
    return " ".join(html_lib.unescape(markup).split())


def _template_frame(exc: BaseException) -> tuple[str | None, int | None]:
    """Path and line of the innermost template frame in the traceback."""
    found: tuple[str | None, int | None] = (None, None)
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename.endswith(".j2"):
            found = (frame.f_code.co_filename, lineno)
    return found


def _source_line(path: str | None, line: int | None) -> str:
    if not path or not line:
        return ""
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()[line - 1]
    except (OSError, IndexError, UnicodeDecodeError):
        return ""


def _describe(exc: Exception, path: str | None, line: int | None) -> str:
    """A message for a marketer: which variable, not which Python type."""
    if isinstance(exc, SecurityError):
        return f"not allowed in templates: {exc}"
    if isinstance(exc, jinja2.UndefinedError):
        match = _NO_ATTRIBUTE.match(str(exc))
        source = _source_line(path, line)
        if match and source:
            attr = re.escape(match["attr"])
            owner = re.search(rf"([A-Za-z_][\w.]*)\s*(?:\.|\[\s*['\"]){attr}\b", source)
            if owner:
                return f"'{owner.group(1)}' has no attribute '{match['attr']}'"
        return str(exc)
    if isinstance(exc, jinja2.TemplateError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class TemplateRenderer:
    """Renders named templates for a channel and locale; see the module docstring."""

    def __init__(
        self,
        *,
        project_dir: Path | None = None,
        default_locale: str = "de",
        inliner: InlinerName = "css_inline",
        shop: ShopInfo = ShopInfo(),
        sms_opt_out_hint: str | Mapping[str, str] | None = None,
        sms_max_segments: int = 2,
        utm_source: str = "aftersale",
    ) -> None:
        self.project_dir = Path(project_dir) if project_dir is not None else None
        self.default_locale = normalise_locale(default_locale) or "en"
        self.shop = shop
        self.sms_opt_out_hint = sms_opt_out_hint
        self.sms_max_segments = sms_max_segments
        self.utm_source = utm_source
        self._inliner = make_inliner(inliner)
        self._shapes = ShapeCache(self._inliner)
        self._shop_dict = asdict(shop)
        self._env = self._make_environment()
        self.reload()

    # -- set-up -------------------------------------------------------------

    def _make_environment(self) -> TemplateSandbox:
        self._builtin_loader = _TextLoader(BUILTIN_DIR)
        self._project_loader = (
            _TextLoader(self.project_dir)
            if self.project_dir and self.project_dir.is_dir()
            else None
        )
        loaders = [x for x in (self._project_loader, self._builtin_loader) if x is not None]
        env = TemplateSandbox(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2", "html")),
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,  # no stat() per render; reload() picks up edits
            cache_size=-1,  # never evict: re-parsing is what makes bulk rendering slow
        )
        env.filters.update(FILTERS)
        env.filters.update(WORDING_FILTERS)
        # A plain function: pass_context marks its argument, which a bound method refuses.
        env.globals["shop_link"] = jinja2.pass_context(
            lambda context, path_or_url="": self._shop_link(context, path_or_url)
        )
        return env

    def reload(self) -> None:
        """Forget compiled templates and re-list the template files."""
        if self._env.cache is not None:
            self._env.cache.clear()
        self._shapes.clear()
        self._index = _build_index(self._project_loader, self._builtin_loader)
        self._resolved: dict[tuple[str, str, str], _Resolved | None] = {}

    def _shop_link(self, context: jinja2.runtime.Context, path_or_url: str = "") -> str:
        """The shop URL (or ``path_or_url`` resolved against it) with UTM parameters."""
        journey, step = context.get("journey"), context.get("step")
        params = {
            "utm_source": self.utm_source,
            "utm_medium": context.get("channel"),
            "utm_campaign": journey.get("id") if isinstance(journey, Mapping) else None,
            "utm_content": step.get("id") if isinstance(step, Mapping) else None,
        }
        url = with_utm(self.shop.url, str(path_or_url), params)
        collected = context.get(_SHORT_LINKS)
        links = context.get("links")
        short = links.get("short") if isinstance(links, Mapping) else None
        if collected is None or not short:
            return url
        # An SMS links to the short form; the full link goes to the send log, whence the
        # short one redirects (see templates.links).
        collected.append(url)
        return numbered(short, len(collected) - 1)

    # -- lookup -------------------------------------------------------------

    def _resolve(self, template: str, channel: Channel, locale: str) -> _Resolved | None:
        key = (template, channel, locale)
        if key not in self._resolved:
            self._resolved[key] = self._find(template, channel, locale)
        return self._resolved[key]

    def _find(self, template: str, channel: Channel, locale: str) -> _Resolved | None:
        main_kind = _KINDS[channel][0]
        by_locale = self._index.files.get((template, main_kind), {})
        for candidate in fallback_chain(locale, self.default_locale):
            if candidate in by_locale:
                main = by_locale[candidate]
                text = self._text_for(template, candidate, main) if channel == "email" else None
                return _Resolved(candidate, main, text)
        return None

    def _text_for(self, template: str, locale: str, html_file: str) -> str | None:
        text = self._index.files.get((template, "txt"), {}).get(locale)
        # A project HTML with only a built-in text part would send two different e-mails.
        if text and html_file in self._index.project and text not in self._index.project:
            return None
        return text

    def resolve_locale(self, template: str, channel: Channel, locale: str) -> str | None:
        """The locale whose file would be used for ``locale``, or ``None``."""
        resolved = self._resolve(template, channel, locale)
        return resolved.locale if resolved else None

    def template_file(self, template: str, channel: Channel, locale: str) -> str | None:
        """The file name that would be rendered for ``locale``, or ``None``."""
        resolved = self._resolve(template, channel, locale)
        return resolved.main if resolved else None

    def has_template(self, template: str, channel: Channel, locale: str) -> bool:
        """Whether ``template`` can be rendered for ``locale``, fallbacks included."""
        return self._resolve(template, channel, locale) is not None

    def has_text_template(self, template: str, locale: str) -> bool:
        """Whether the e-mail for ``locale`` has its own text part."""
        resolved = self._resolve(template, "email", locale)
        return bool(resolved and resolved.text)

    def available_locales(self, template: str, channel: Channel) -> list[str]:
        """Locales with a file of their own for ``template`` (``"de"``, ``"de_AT"``...)."""
        return sorted(self._index.files.get((template, _KINDS[channel][0]), {}))

    def template_names(self, channel: Channel) -> list[str]:
        """All template names that exist for ``channel`` in any locale."""
        kind = _KINDS[channel][0]
        return sorted({name for name, k in self._index.files if k == kind})

    # -- rendering ------------------------------------------------------------

    def _require(self, template: str, channel: Channel, locale: str) -> _Resolved:
        resolved = self._resolve(template, channel, locale)
        if resolved is None:
            chain = ", ".join(fallback_chain(locale, self.default_locale))
            raise TemplateError(f"no {channel} template (looked for {chain})", template=template)
        return resolved

    def _variables(
        self, context: Mapping[str, Any], channel: Channel, locale: str, used: str, marketing: bool
    ) -> dict[str, Any]:
        requested = normalise_locale(locale)
        # Format like the customer when the text is in their language (de_AT: "€ 499,00").
        same_language = requested and language_of(requested) == language_of(used)
        variables = dict(context)
        variables.update(
            shop=self._shop_dict,
            marketing=marketing,
            channel=channel,
            locale=requested if same_language else used,
            lang=language_of(used),
        )
        return variables

    @contextmanager
    def _errors(self, template: str) -> Iterator[None]:
        """Translate whatever a template raised into :class:`TemplateError`."""
        try:
            yield
        except TemplateError:
            raise
        except jinja2.TemplateSyntaxError as exc:
            file = Path(exc.filename or exc.name or template).name
            raise TemplateError(
                exc.message or str(exc), template=template, file=file, line=exc.lineno
            ) from exc
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"template file {exc.name!r} not found", template=template) from exc
        except Exception as exc:
            path, line = _template_frame(exc)
            file = Path(path).name if path else None
            raise TemplateError(
                _describe(exc, path, line), template=template, file=file, line=line
            ) from exc

    def _render_html(self, file: str, variables: dict[str, Any]) -> tuple[list[str], str, str]:
        """Render the HTML template; return ``(pieces, subject, preheader)``.

        ``pieces`` is the template's output stream, as :class:`ShapeCache` inlines it.
        """
        tmpl = self._env.get_template(file)
        ctx = tmpl.new_context(variables)
        try:
            body = list(tmpl.root_render_func(ctx))  # type: ignore[attr-defined]
            # After the render ctx.blocks holds the whole inheritance chain, child first.
            subject, preheader = (
                self._env.concat(ctx.blocks[name][0](ctx)) if name in ctx.blocks else ""  # type: ignore[attr-defined]
                for name in ("subject", "preheader")
            )
        except Exception:
            self._env.handle_exception()
        return body, _one_line(subject), _one_line(preheader)

    def compose_email(
        self, template: str, locale: str, context: Mapping[str, Any], *, marketing: bool
    ) -> RenderedEmail:
        """Render an e-mail without enforcing the sending rules (for validation and previews)."""
        resolved = self._require(template, "email", locale)
        variables = self._variables(context, "email", locale, resolved.locale, marketing)
        with self._errors(template):
            pieces, subject, preheader = self._render_html(resolved.main, variables)
            text = (
                self._env.get_template(resolved.text).render(variables) if resolved.text else None
            )
            html = self._shapes.inline(pieces)
            text = _clean_text(text if text is not None else html_to_text(html))
        return RenderedEmail(subject, preheader, html, text, resolved.locale)

    def render_subject(
        self, source: str, locale: str, context: Mapping[str, Any], *, template: str
    ) -> str:
        """Render one line (a step variant's subject) with an e-mail's variables."""
        variables = self._variables(context, "email", locale, locale, True)
        with self._errors(template):
            subject = _one_line(self._env.from_string(source).render(variables))
        if not subject:
            raise TemplateError("the variant's subject is empty", template=template)
        return subject

    def render_email(
        self, template: str, locale: str, context: Mapping[str, Any], *, marketing: bool
    ) -> RenderedEmail:
        """Render an e-mail ready to send.

        Raises :class:`TemplateError` when rendering fails, the subject is empty
        or a marketing e-mail lacks ``links.unsubscribe`` in either part.
        """
        email = self.compose_email(template, locale, context, marketing=marketing)
        links = context.get("links")
        unsubscribe = links.get("unsubscribe") if isinstance(links, Mapping) else None
        file = self.template_file(template, "email", locale)
        self._raise_first_error(
            email_issues(
                email, template=template, file=file, marketing=marketing, unsubscribe=unsubscribe
            )
        )
        return email

    def opt_out_hint(self, locale: str) -> str | None:
        """The opt-out hint for an SMS in ``locale``: one text, or one per language."""
        hint = self.sms_opt_out_hint
        if hint is None or isinstance(hint, str):
            return hint
        for candidate in fallback_chain(locale, self.default_locale):
            if language_of(candidate) in hint:
                return hint[language_of(candidate)]
        return next(iter(hint.values()), None)

    def compose_sms(
        self, template: str, locale: str, context: Mapping[str, Any], *, marketing: bool
    ) -> RenderedSms:
        """Render an SMS without enforcing the sending rules (for validation and previews)."""
        resolved = self._require(template, "sms", locale)
        variables = self._variables(context, "sms", locale, resolved.locale, marketing)
        variables[_SHORT_LINKS] = links = []
        with self._errors(template):
            body = normalise_sms_body(self._env.get_template(resolved.main).render(variables))
        if marketing:
            body = append_opt_out(body, self.opt_out_hint(resolved.locale))
        encoding, segments = sms_segments(body)
        return RenderedSms(body, encoding, segments, resolved.locale, tuple(links))

    def render_sms(
        self, template: str, locale: str, context: Mapping[str, Any], *, marketing: bool
    ) -> RenderedSms:
        """Render an SMS body ready to send (opt-out hint appended to marketing SMS).

        Raises :class:`TemplateError` when rendering fails or the body is empty.
        """
        sms = self.compose_sms(template, locale, context, marketing=marketing)
        file = self.template_file(template, "sms", locale)
        self._raise_first_error(
            sms_issues(sms, template=template, file=file, max_segments=self.sms_max_segments)
        )
        return sms

    @staticmethod
    def _raise_first_error(issues: list[TemplateIssue]) -> None:
        for issue in issues:
            if issue.level == "error":
                raise TemplateError(issue.message, template=issue.template, file=issue.file)

    def validate(
        self,
        template: str,
        channel: Channel,
        *,
        marketing: bool,
        locales: Sequence[str] = ("de", "en"),
    ) -> list[TemplateIssue]:
        """Render ``template`` against :func:`sample_context` in each locale and report issues.

        Errors: no file at all, syntax errors, undefined variables, sandbox
        violations (with file and line), empty subject or SMS, missing
        unsubscribe link in marketing e-mail. Warnings: locale fallback, subject
        over 78 characters, HTML over 100 KB, SMS over ``sms_max_segments``.
        Info: SMS encoding and segments, missing text part or preheader.
        """
        return validate_template(self, template, channel, marketing=marketing, locales=locales)
