"""Pipeline stages: one module per dvc.yaml stage, each a few pure functions and a thin main()."""

import sys

# `python -m gitops_ml.stages.<name>` imports this package while sys.argv[0] still reads "-m":
# under `dvc repro`, the stage may then run in the warm process (gitops_ml.warm) instead.
if sys.argv[:1] == ["-m"]:
    from gitops_ml import warm

    warm.hand_over()
