import sys

from feyntk.cli import main

sys.exit(main())
