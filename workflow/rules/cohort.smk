# The embedded synthetic BraTS-like cohort, written in the BraTS 2021 layout.

rule synthesize_case:
    output:
        **{kind: SYNTHETIC_FILES.replace("{kind}", kind) for kind in RAW_KINDS},
    input:
        code=code("synthesize_case.py"),
    params:
        # Everything but n_cases: adding cases must not regenerate the existing ones.
        cohort={k: v for k, v in config["cohort"].items() if k != "n_cases"},
        index=lambda wc: PARAMS.cohort.case_ids().index(wc.case),
        **code_version("synthesize_case.py"),
    threads: 1
    resources:
        mem_mb=measured("synthesize_case", "mem_mb", cohort_megavoxels),
        runtime=measured("synthesize_case", "runtime", cohort_megavoxels),
    log:
        "logs/cohort/{case}.log",
    benchmark:
        "logs/benchmarks/{case}/synthesize_case.tsv"
    script:
        "../scripts/synthesize_case.py"


rule cohort:
    input:
        expand(SYNTHETIC_FILES, case=PARAMS.cohort.case_ids(), kind=RAW_KINDS),
