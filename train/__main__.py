"""`python -m train [COMMAND] ...`: an alias of `brain-mri COMMAND ...`; without a command, `brain-mri train ...`."""

import sys

from brain_mri.console import COMMANDS, main

argv = sys.argv[1:]
sys.exit(main(argv if argv and argv[0] in COMMANDS else ["train", *argv]))
