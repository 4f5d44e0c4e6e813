import sys

from otakit.cli import main

sys.exit(main())
