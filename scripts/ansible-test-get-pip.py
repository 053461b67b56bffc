"""Offline stand-in for ansible-test's pip bootstrap script (get-pip-<version>.py).

ansible-test --venv bootstraps pip into its virtual environments by downloading get-pip.py from
a host these machines cannot reach. scripts/setup.sh installs this file in its place, with
WHEEL pointing at the pip wheel fetched from PyPI; like get-pip.py it runs that pip to install
the requested packages (pip itself included) into the running interpreter.
"""

import sys

WHEEL = "@WHEEL@"

sys.path.insert(0, WHEEL)
from pip._internal.cli.main import main  # noqa: E402

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--upgrade", "--force-reinstall", *args]))
