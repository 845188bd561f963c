"""The preprocessing steps as the Snakemake rules call them: read, call the pure functions, write.

One module per rule, so that each rule depends on (and an edit reruns) only the code it runs.

Each step writes its outputs atomically (a failed step leaves nothing behind) and lets a
:class:`~bratseg.errors.CaseError` through unchanged. Intermediate results are uncompressed ``.npz`` files
holding ``image`` ``(4, X, Y, Z)`` float32, ``mask`` ``(X, Y, Z)`` bool, ``classes`` ``(X, Y, Z)`` uint8
(labelled cases only) and ``meta``, a JSON string.
"""
