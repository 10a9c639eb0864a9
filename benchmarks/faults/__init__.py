"""The fault benchmark's pieces (`bench_faults.py`): a multi-node Ray cluster on loopback, the
processes and run-directory files a fault is aimed at, the faults themselves, and the table."""
