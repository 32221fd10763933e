"""``python -m fedem`` (also what ``accelerate launch -m fedem`` runs)."""

from fedem.cli import main

if __name__ == "__main__":
    main(prog_name="fedem")
