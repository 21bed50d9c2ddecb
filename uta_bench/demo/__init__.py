"""Offline mini-reproduction of the paper's Table 6 (``uta-bench demo``)."""
