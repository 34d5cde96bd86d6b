"""Dataset builders: tools that download, unpack and assemble the data files mixlab ships. Not runtime.

No runtime module imports this package (``tests/test_layering.py`` checks it); builders may import runtime
modules (the sample's data folder, option models). Entry points:

- ``python -m mixlab.builders.sample --out mixlab/sample/data``: the embedded sample corpus (:mod:`.sample`,
  with :mod:`.convert`, :mod:`.stack`, :mod:`.commits`, :mod:`.qa`);
- ``python -m mixlab.builders.scale --factor N --out DIR``: N varied copies of the sample (benchmarks);
- ``python -m mixlab.builders.detector_set --out benchmarks/data/code_in_text_labeled.jsonl.zst``: the
  code-in-text detector's labeled set (:mod:`.detector_set`, :mod:`.detector_sources`);
- ``python -m mixlab.builders.eval_data``: the evaluation subsets in ``mixlab/eval/data``.

Every registry file they read is pinned in :mod:`.pins` and fetched by :mod:`.fetch` (hash-checked, cached).
"""
