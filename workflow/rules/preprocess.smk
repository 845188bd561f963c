# Per case: ingest (validate) -> N4 bias correction -> normalise, crop, remap, cache; then the cohort manifest.
# Every per-case rule runs one thread (N4 scales poorly across ITK threads; cases run in parallel instead) and
# declares its measured memory and time, for the cluster executors (profiles/).


rule ingest:
    input:
        files=case_inputs,
        code=code("ingest.py"),
    output:
        npz=interim(f"{INTERIM_DIR}/{{case}}/ingested.npz"),
    params:
        case=lambda wc: CASES[wc.case].to_record(),
        target_spacing=TARGET_SPACING,
        image_order=config["preprocess"]["resample"]["image_order"],
        resample_to=config["data"]["resample_to"],
        **code_version("ingest.py"),
    threads: 1
    resources:
        mem_mb=measured("ingest", "mem_mb"),
        runtime=measured("ingest", "runtime"),
    log:
        "logs/preprocess/{case}/ingest.log",
    benchmark:
        "logs/benchmarks/{case}/ingest.tsv"
    script:
        "../scripts/ingest.py"


rule bias_correct:
    input:
        npz=rules.ingest.output.npz,
        code=code("bias_correct.py"),
    output:
        npz=interim(f"{INTERIM_DIR}/{{case}}/n4.npz"),
    params:
        n4=config["preprocess"]["n4"],
        **code_version("bias_correct.py"),
    threads: 1
    resources:
        mem_mb=measured("bias_correct", "mem_mb"),
        runtime=measured("bias_correct", "runtime"),
    log:
        "logs/preprocess/{case}/bias_correct.log",
    benchmark:
        "logs/benchmarks/{case}/bias_correct.tsv"
    script:
        "../scripts/bias_correct.py"


rule finalise:
    input:
        npz=rules.bias_correct.output.npz,
        code=code("finalise.py"),
    output:
        case=directory(f"{CACHE_DIR}/cases/{{case}}"),
    params:
        preprocess=config["preprocess"],
        **code_version("finalise.py"),
    threads: 1
    resources:
        mem_mb=measured("finalise", "mem_mb"),
        runtime=measured("finalise", "runtime"),
    log:
        "logs/preprocess/{case}/finalise.log",
    benchmark:
        "logs/benchmarks/{case}/finalise.tsv"
    script:
        "../scripts/finalise.py"


rule cases:
    """Every case cached (the DVC preprocess stage's target; the split is a stage of its own)."""
    input:
        expand(f"{CACHE_DIR}/cases/{{case}}", case=sorted(CASES)),


rule manifest:
    input:
        cases=rules.cases.input,
        code=code("manifest.py"),
    output:
        csv=f"{CACHE_DIR}/manifest.csv",
        parquet=f"{CACHE_DIR}/manifest.parquet",
        split=f"{CACHE_DIR}/splits.json",
        fingerprint=f"{CACHE_DIR}/fingerprint.json",
    params:
        split=config["split"],
        labels=config["data"]["labels"],
        **code_version("manifest.py"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    log:
        "logs/preprocess/manifest.log",
    script:
        "../scripts/manifest.py"
