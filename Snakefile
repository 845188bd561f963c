"""Per-case preprocessing of a BraTS-layout cohort into cached training arrays.

    snakemake --cores all            # everything: (synthetic cohort ->) ingest -> N4 -> finalise -> manifest
    snakemake --cores all cohort     # only generate the embedded synthetic cohort

All settings come from params.yaml, validated against workflow/schemas/params.schema.yaml.
"""

import re


configfile: "params.yaml"


include: "workflow/rules/common.smk"


wildcard_constraints:
    case="|".join(re.escape(c) for c in sorted(CASES) + PARAMS.cohort.case_ids()),


include: "workflow/rules/cohort.smk"
include: "workflow/rules/preprocess.smk"


# Aggregation rules: no real work, never sent to a cluster.
localrules:
    all,
    cohort,
    cases,
    manifest,


rule all:
    input:
        rules.manifest.output,
    default_target: True
