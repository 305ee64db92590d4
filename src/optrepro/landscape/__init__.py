"""Loss-landscape slices and sharpness figures of a trained run (Li et al. 2018; Andriushchenko et al. 2023).

`python -m optrepro landscape <run folder>` (cli.py) loads a finished run, measures it on a fixed subset of its
training data and writes PNGs plus `landscape.json` beside the run's record.json (read_record merges its
`landscape/*` metrics into the record).
"""
