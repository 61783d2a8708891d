"""Benchmark: complete e-mails per second, our renderer against the naive premailer path.

Run: ``python bench/bench_render.py [N]``. Both paths produce a complete e-mail
(HTML rendered by the same Jinja template, CSS inlined, text part) for the
built-in ``loyalty_offer`` in German, each message with its own customer:

- ours: ``TemplateRenderer.render_email`` (render, then css-inline, text from
  the template's own ``.txt.j2``): after its first e-mails the shape is inlined already
  and only each customer's values are put back (``templates.inlining.ShapeCache``);
- ours, every e-mail inlined anew: the same with no shape kept, what the first e-mails of
  a shape, or a template that prints per-customer markup, cost;
- naive: render, ``premailer.transform`` on every message, text via html2text.

The two paths take turns in five rounds and each figure is its median round, so a drift in
the machine's speed during the run does not fall on one path only.

Targets: at least 2,000 complete e-mails/s on one core and 30 times the naive path.
"""

from __future__ import annotations

import logging
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import html2text
import premailer

from templates import TemplateRenderer, sample_context

TARGET_RATE = 2_000
TARGET_RATIO = 30.0
TEMPLATE = "loyalty_offer"
ROUNDS = 5


def _contexts(n: int) -> list[dict[str, Any]]:
    """``n`` sample contexts that differ per customer, as a real batch would."""
    contexts = []
    for i in range(n):
        ctx = sample_context("de")
        ctx["customer"] = {**ctx["customer"], "id": f"c{i}", "first_name": f"Anna{i}"}
        ctx["offer"] = {**ctx["offer"], "bonus_points": 100 + i % 900}
        contexts.append(ctx)
    return contexts


def _naive_path(renderer: TemplateRenderer) -> Callable[[dict[str, Any]], tuple[str, str]]:
    """What a first implementation does: premailer and html2text on every message."""
    logging.getLogger("CSSUTILS").setLevel(logging.CRITICAL)
    template = renderer._env.get_template(renderer.template_file(TEMPLATE, "email", "de") or "")

    def render(ctx: dict[str, Any]) -> tuple[str, str]:
        variables = {**ctx, "shop": renderer._shop_dict, "marketing": True, "channel": "email",
                     "locale": "de", "lang": "de"}  # fmt: skip
        html = premailer.transform(template.render(variables))
        return html, html2text.html2text(html)

    return render


def _rate(func: Callable[[dict[str, Any]], object], contexts: list[dict[str, Any]]) -> float:
    """E-mails per second over ``contexts``."""
    start = time.perf_counter()
    for ctx in contexts:
        func(ctx)
    return len(contexts) / (time.perf_counter() - start)


def _interleaved(
    paths: list[tuple[Callable[[dict[str, Any]], object], list[dict[str, Any]]]], rounds: int
) -> list[float]:
    """Each path's median rate over ``rounds`` rounds that take turns with the others'.

    A machine whose speed drifts during the run (another process, a throttled core) then
    slows every path alike instead of whichever happened to run at the time.
    """
    for func, contexts in paths:
        func(contexts[0])  # warm-up: template compilation, imports, caches
    rates: list[list[float]] = [[] for _ in paths]
    for r in range(rounds):
        for index, (func, contexts) in enumerate(paths):
            share = contexts[r::rounds]
            rates[index].append(_rate(func, share))
    return [statistics.median(found) for found in rates]


def run(n: int = 2_000, *, quick: bool = False) -> dict[str, Any]:
    """Render ``n`` e-mails our way and ``n // 20`` (at least 20) the naive way, in
    alternating rounds."""
    n = min(n, 500) if quick else n
    renderer = TemplateRenderer()
    uncached = TemplateRenderer()
    uncached._shapes.size = 0  # every shape forgotten as soon as it is seen
    contexts = _contexts(n)
    naive_n = max(20, n // 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # cssutils on newer Pythons
        ours, anew, naive = _interleaved(
            [
                (lambda c: renderer.render_email(TEMPLATE, "de", c, marketing=True), contexts),
                (lambda c: uncached.render_email(TEMPLATE, "de", c, marketing=True), contexts),
                (_naive_path(renderer), contexts[:naive_n]),
            ],
            ROUNDS,
        )
    return {
        "template": TEMPLATE,
        "emails": n,
        "naive_emails": naive_n,
        "ours_per_s": ours,
        "anew_per_s": anew,
        "naive_per_s": naive,
        "ours_ms": 1000 / ours,
        "anew_ms": 1000 / anew,
        "naive_ms": 1000 / naive,
        "ratio": ours / naive,
        "ratio_anew": anew / naive,
        "meets_rate": ours >= TARGET_RATE,
        "meets_ratio": ours / naive >= TARGET_RATIO,
    }


def main() -> None:
    """Print a small table of the results."""
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000
    r = run(n)
    print(f"complete e-mail ({r['template']}, de): render + inline + text part")
    rows = [
        ("ours (css-inline, .txt.j2)", r["emails"], r["ours_ms"], r["ours_per_s"]),
        ("ours, every e-mail inlined anew", r["emails"], r["anew_ms"], r["anew_per_s"]),
        ("naive (premailer + html2text)", r["naive_emails"], r["naive_ms"], r["naive_per_s"]),
    ]
    print(f"{'path':<34}{'e-mails':>9}{'ms/e-mail':>11}{'e-mails/s':>11}")
    for name, count, ms, rate in rows:
        print(f"{name:<34}{count:>9}{ms:>11.3f}{rate:>11.0f}")
    rate_ok = "ok" if r["meets_rate"] else "MISSED"
    ratio_ok = "ok" if r["meets_ratio"] else "MISSED"
    print(
        f"ratio {r['ratio']:.1f}x, inlined anew {r['ratio_anew']:.1f}x  (targets: >= "
        f"{TARGET_RATE} e-mails/s: {rate_ok}, >= {TARGET_RATIO:.0f}x: {ratio_ok})"
    )


if __name__ == "__main__":
    main()
