"""`python -m cxsync_dev.demo` (`make demo`)."""

import sys

from cxsync_dev.demo import main

sys.exit(main())
