"""Experiment specs: models x datasets x seeds x settings, typed and validated on load.

A spec is a YAML file (the built-in suites live in ``cranerec/experiments/suites/``)::

    name: ablation
    description: what it reproduces; its epoch caps
    base: {train: {epochs: 1000, patience: 20}}      # every run (RunConfig layout)
    datasets:                                        # name -> data section
      tiktok: {path: "${CRANEREC_DATA:-../shared/datasets}/tiktok"}
    models:                                          # names, or mappings
      - {name: crane, preset: {tiktok: tiktok}}      # preset: one name, or per dataset
    seeds: [1]
    settings:                                        # an explicit list of named override sets
      - {name: full}
      - {name: no_item_graph, label: w/o item graph, overrides: {model: {item_graph: false}}}
    reference: {setting: full}                       # what the paired tests compare against
    report: [{kind: table, rows: setting, metrics: [recall@20, ndcg@20]}]
    search: {...}                                    # optional: see cranerec.experiments.search
    smoke: {...}                                     # the CI version: replaces top-level keys
                                                     # (base and search are deep-merged)

Every (dataset, model, setting, seed) is one run: defaults < model preset < ``base`` < the
model's ``overrides`` < the setting's ``overrides`` < the dataset section and the seed, resolved
to a ``RunConfig``. Its id hashes that resolved config (less the settings that do not change
results: threads, progress bars, device, evaluation batch, where the data lies), the data
fingerprint and the package version. Settings never hold list-valued sweeps: a sweep is written
out as one named setting per point, so every run has a name a reader can find in the report.

This module gathers the names of the three that implement it: ``spec_schema`` (the typed spec and
its checks), ``spec_load`` (suites, YAML, validation) and ``spec_runs`` (runs and run ids).
"""

from cranerec.experiments.spec_load import (
    builtin_suites,
    expand_env,
    load_spec,
    parse_spec,
    read_spec_text,
    suite_path,
)
from cranerec.experiments.spec_runs import (
    ID_FREE_KEYS,
    RunSpec,
    Selection,
    build_raw,
    identity_dict,
    lookup,
    nested,
    run_id,
    runs_of,
    search_base_raw,
)
from cranerec.experiments.spec_schema import (
    REPORT_KINDS,
    ExperimentSpec,
    ModelEntry,
    Reference,
    ReportSection,
    SearchSpec,
    Setting,
)

__all__ = [
    "ID_FREE_KEYS", "REPORT_KINDS", "ExperimentSpec", "ModelEntry", "Reference", "ReportSection",
    "RunSpec", "SearchSpec", "Selection", "Setting", "build_raw", "builtin_suites", "expand_env",
    "identity_dict", "load_spec", "lookup", "nested", "parse_spec", "read_spec_text", "run_id",
    "runs_of", "search_base_raw", "suite_path",
]  # fmt: skip
