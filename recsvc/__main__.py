import sys

from recsvc.cli import main

sys.exit(main())
