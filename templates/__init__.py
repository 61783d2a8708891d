"""Rendering: sandboxed Jinja2 templates → inlined HTML e-mail, text part, SMS body.

This package imports nothing else of aftersale; see :mod:`templates.renderer`
for the file layout and the variables templates see.
"""

from .coupons import coupon_code
from .preview import PreviewResult, preview, write_preview
from .renderer import BUILTIN_DIR, TemplateRenderer
from .results import RenderedEmail, RenderedSms, ShopInfo, TemplateError, TemplateIssue
from .sample import sample_context
from .sms import sms_segments

__all__ = [
    "BUILTIN_DIR",
    "PreviewResult",
    "RenderedEmail",
    "RenderedSms",
    "ShopInfo",
    "TemplateError",
    "TemplateIssue",
    "TemplateRenderer",
    "coupon_code",
    "preview",
    "sample_context",
    "sms_segments",
    "write_preview",
]
