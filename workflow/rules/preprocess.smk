# Per case: ingest (validate) -> N4 bias correction -> normalise, crop, remap, cache; then the cohort manifest.


rule ingest:
    input:
        files=case_inputs,
        code=code("preprocess/validate.py", "preprocess/steps.py", "io.py", "labels.py", "layouts.py"),
    output:
        npz=interim(f"{INTERIM_DIR}/{{case}}/ingested.npz"),
    params:
        folder=lambda wc: str(CASES[wc.case].folder),
        layout=lambda wc: CASES[wc.case].layout,
    log:
        "logs/preprocess/{case}/ingest.log",
    script:
        "../scripts/ingest.py"


rule bias_correct:
    input:
        npz=rules.ingest.output.npz,
        code=code("preprocess/bias.py", "preprocess/crop.py", "preprocess/steps.py"),
    output:
        npz=interim(f"{INTERIM_DIR}/{{case}}/n4.npz"),
    params:
        n4=config["preprocess"]["n4"],
    threads: 1
    log:
        "logs/preprocess/{case}/bias_correct.log",
    script:
        "../scripts/bias_correct.py"


rule finalise:
    input:
        npz=rules.bias_correct.output.npz,
        code=code(
            "preprocess/normalise.py", "preprocess/crop.py", "preprocess/cache.py", "preprocess/steps.py",
            "labels.py", "io.py",
        ),
    output:
        case=directory(f"{CACHE_DIR}/cases/{{case}}"),
    params:
        preprocess=config["preprocess"],
    log:
        "logs/preprocess/{case}/finalise.log",
    script:
        "../scripts/finalise.py"


rule manifest:
    input:
        cases=expand(f"{CACHE_DIR}/cases/{{case}}", case=sorted(CASES)),
        code=code("preprocess/split.py", "preprocess/cache.py", "preprocess/steps.py", "layouts.py"),
    output:
        csv=f"{CACHE_DIR}/manifest.csv",
        parquet=f"{CACHE_DIR}/manifest.parquet",
        split=f"{CACHE_DIR}/splits.json",
    params:
        split=config["split"],
    log:
        "logs/preprocess/manifest.log",
    script:
        "../scripts/manifest.py"
