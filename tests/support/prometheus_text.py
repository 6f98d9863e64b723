"""Reading Prometheus text as a scraper would: one sample's value, every metric name exported."""

import re

from prometheus_client.parser import text_string_to_metric_families


def sample(metrics: str, name: str, **labels: str) -> float | None:
    """The value of the sample `name{labels}` in Prometheus text, or None if absent."""
    for line in metrics.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if match and match.group(1) == name:
            found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
            if all(found.get(key) == value for key, value in labels.items()):
                return float(match.group(3))
    return None


def exported_names(metrics: str) -> set[str]:
    """Every name a query may use against this text: each family's, and each of its samples' (`_total`,
    `_bucket`, `_count`, `_sum`, `_created`...). Parsing fails on text that is not valid exposition format."""
    names = set()
    for family in text_string_to_metric_families(metrics):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names
