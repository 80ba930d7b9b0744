"""`python -m nnbasics ...` is `nnbasics-train ...`."""

from nnbasics.cli.train import train_main

if __name__ == "__main__":
    train_main()
