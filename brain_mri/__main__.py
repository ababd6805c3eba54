import sys

from brain_mri.console import main

sys.exit(main())
