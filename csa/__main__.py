"""``python -m csa`` runs the command line, as the ``csa`` script does."""

from csa.cli import app

app(prog_name="csa")
