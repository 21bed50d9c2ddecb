"""Task plugins: the evaluation loops behind `uta-bench run`."""
