"""Units and quantities of our metrics and of papers' numbers, and the conversions that need no extra facts.

Plots put a paper's number beside ours only after converting it to our metric's unit and quantity (an accuracy
in percent becomes an error in percent as 100 - value; a percentage a fraction as value / 100). A number with no
such conversion (images per second against seconds per step needs the batch size and the hardware) is left out
of the plot and stays in the table with its own unit.
"""

from __future__ import annotations

# Our metrics by their last path part: `test/error` is an error in percent, `test/acc` an accuracy as a fraction
# (lit/module.py); timing metrics are seconds per optimizer step.
METRIC_UNITS = {
    "error": ("error", "percent"),
    "acc": ("accuracy", "fraction"),
    "time_per_step_s": ("time", "seconds_per_step"),
    "last_epoch_time_per_step_s": ("time", "seconds_per_step"),
    "last_epoch_cpu_time_per_step_s": ("time", "seconds_per_step"),
    "samples_per_s": ("throughput", "images_per_second"),
}
SCALE = {("percent", "fraction"): 0.01, ("fraction", "percent"): 100.0}
WHOLE = {"percent": 100.0, "fraction": 1.0}  # accuracy + error = WHOLE[unit]
COMPLEMENTS = {("accuracy", "error"), ("error", "accuracy")}


def metric_unit(metric: str) -> tuple[str, str] | None:
    """(quantity, unit) of one of our metrics, None when unknown."""
    return METRIC_UNITS.get(metric.rsplit("/", 1)[-1])


def convert(value: float, quantity: str, unit: str, to: tuple[str, str] | None) -> float | None:
    """`value` (a `quantity` in `unit`) as the (quantity, unit) `to`; None when no conversion exists."""
    if to is None:
        return None
    to_quantity, to_unit = to
    if quantity != to_quantity:
        if (quantity, to_quantity) not in COMPLEMENTS or unit not in WHOLE:
            return None
        value = WHOLE[unit] - value
    if unit == to_unit:
        return value
    factor = SCALE.get((unit, to_unit))
    return value * factor if factor is not None else None


UNIT_LABELS = {"percent": "%", "fraction": "fraction", "seconds_per_step": "s/step", "images_per_second": "img/s"}


def metric_label(metric: str) -> str:
    """`test/acc (accuracy, fraction)`: a metric with its quantity and unit, as every table and plot names it."""
    known = metric_unit(metric)
    return f"{metric} ({known[0]}, {UNIT_LABELS[known[1]]})" if known else metric


def in_metric_unit(value: float, quantity: str, unit: str, metric: str) -> float | None:
    """A paper's number as a value of our `metric` (its quantity and unit), None when no conversion exists."""
    return convert(value, quantity, unit, metric_unit(metric))
