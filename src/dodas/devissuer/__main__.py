"""`python -m dodas.devissuer`: the development issuer, NOT FOR PRODUCTION (see serve.py)."""

import sys

from dodas.devissuer.serve import main

sys.exit(main())
