import sys

from gantricks.cli import main

sys.exit(main())
