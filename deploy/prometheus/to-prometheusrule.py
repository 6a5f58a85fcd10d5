#!/usr/bin/env python3
"""Wraps deploy/prometheus/rules.yml into a Prometheus Operator PrometheusRule.

rules.yml stays the one source of the alerts (promtool checks and unit-tests it; the compose
Prometheus loads it). The PrometheusRule in deploy/k8s/base/prometheusrule.yaml is this
script's output, committed; deploy/validate.sh fails when it differs from a fresh run.

    python3 deploy/prometheus/to-prometheusrule.py > deploy/k8s/base/prometheusrule.yaml
    python3 deploy/prometheus/to-prometheusrule.py --check deploy/k8s/base/prometheusrule.yaml

The groups are copied as text, indented under spec (so comments and the expressions'
layout survive), and the result is parsed back and compared with rules.yml: the script
fails rather than write a resource whose groups differ. Needs PyYAML.
"""

import argparse
import difflib
import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
RULES = os.path.join(HERE, "rules.yml")

HEADER = """\
# GENERATED from deploy/prometheus/rules.yml by deploy/prometheus/to-prometheusrule.py:
# do not edit. Change rules.yml, then run
#   python3 deploy/prometheus/to-prometheusrule.py > deploy/k8s/base/prometheusrule.yaml
# (deploy/validate.sh fails while this file differs from a fresh generation.)
#
# Prometheus Operator CRD (monitoring.coreos.com/v1, e.g. from kube-prometheus-stack).
# kube-prometheus-stack loads PrometheusRules matching its ruleSelector, by default
# release=<helm release name>, like servicemonitor.yaml. `job="aurora"` in the rules is
# the Service's name, which the ServiceMonitor makes the job label.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: aurora
  namespace: aurora
  labels:
    app.kubernetes.io/name: aurora
    app.kubernetes.io/part-of: aurora
    release: prometheus
spec:
"""


def generate(rules_path=RULES):
    with open(rules_path) as f:
        text = f.read()
    parsed = yaml.safe_load(text)
    if not isinstance(parsed, dict) or set(parsed) != {"groups"}:
        raise SystemExit(f"{rules_path}: expected a mapping with `groups` only")
    lines = text.splitlines()
    try:
        start = lines.index("groups:")
    except ValueError:
        raise SystemExit(f"{rules_path}: no top-level `groups:` line") from None
    body = [("  " + line) if line.strip() else "" for line in lines[start:]]
    out = HEADER + "\n".join(body).rstrip("\n") + "\n"
    rule = yaml.safe_load(out)
    if rule["spec"]["groups"] != parsed["groups"]:
        raise SystemExit("internal error: the wrapped groups differ from rules.yml")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", default=RULES, help="the rules file (default: %(default)s)")
    ap.add_argument("--check", metavar="FILE", help="exit 1 (with a diff) if FILE is not the output")
    args = ap.parse_args()
    out = generate(args.rules)
    if args.check:
        with open(args.check) as f:
            current = f.read()
        if current != out:
            sys.stdout.writelines(
                difflib.unified_diff(
                    current.splitlines(keepends=True),
                    out.splitlines(keepends=True),
                    args.check,
                    "fresh generation",
                )
            )
            return 1
        return 0
    sys.stdout.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
