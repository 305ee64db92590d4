"""Paper numbers meet our metrics only through explicit conversions; anything else is not plotted."""

from __future__ import annotations

import pytest

from optrepro.claims.units import convert, metric_unit


@pytest.mark.parametrize(
    "value, quantity, unit, metric, expected",
    [
        (93.4, "accuracy", "percent", "test/acc", 0.934),  # SAM Table 4 vs our accuracy fraction
        (77.8, "accuracy", "percent", "test/error", 22.2),  # SAF top-1 vs our error in percent
        (2.7, "error", "percent", "test/error", 2.7),
        (0.05, "error", "fraction", "test/acc", 95.0 / 100),
        (3213, "throughput", "images_per_second", "timing/time_per_step_s", None),  # needs batch size and hardware
        (1.0, "score", "score", "graph/shd", None),  # a metric of unknown unit
    ],
)
def test_conversion_to_our_metric(value, quantity, unit, metric, expected):
    converted = convert(value, quantity, unit, metric_unit(metric))
    assert converted == (pytest.approx(expected) if expected is not None else None)


def test_plots_draw_the_paper_number_converted_and_never_one_read_from_words():
    from types import SimpleNamespace

    from optrepro.claims.schema import parse_claims_text
    from optrepro.results.plots import paper_value

    text = """
paper: sam
title: t
citation: c
claims:
  - id: noise
    source: {where: "Table 4"}
    statement: s
    tier: full
    seeds: 5
    metric: test/acc
    arms: {sam: {overrides: [optimizer=sam]}, sgd: {overrides: [optimizer=sgd]}}
    check: {kind: ordering, better: sam, than: sgd, direction: higher}
    reported:
      sam: {value: 93.4, quantity: accuracy, unit: percent, source: paper, where: "Table 4"}
      sgd: "3,289 img/s"
"""
    claim = parse_claims_text(text.lstrip(), "claims.yaml").claims[0]
    verdict = SimpleNamespace(claim=claim)
    assert paper_value(verdict, "sam") == pytest.approx(0.934), "percent on a fraction axis is converted"
    assert paper_value(verdict, "sgd") is None, "a number in words is never plotted"
    cpu_tier = SimpleNamespace(
        claim=parse_claims_text(text.lstrip().replace("tier: full", "tier: cpu"), "c.yaml").claims[0]
    )
    assert paper_value(cpu_tier, "sam") is None, "the paper's setting is not the cpu tier's: no paper point"
