"""The bad-input contract (contract.py), valid inputs of every format (formats.py) and the fuzzers that derive bad
inputs from them (test_fuzz_*.py). The sweeps in tests/test_bad_inputs*.py use the same contract."""
