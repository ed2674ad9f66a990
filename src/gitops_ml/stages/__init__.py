"""Pipeline stages: one module per dvc.yaml stage, each a few pure functions and a thin main()."""
