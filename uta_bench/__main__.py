"""`python -m uta_bench ...` (used by `torchrun -m uta_bench run zeroshot ...`)."""
from uta_bench.cli.main import main

if __name__ == "__main__":
    main()
