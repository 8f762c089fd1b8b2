"""python -m cnnfast: the cnnfast command."""
import sys

from .cli import main

sys.exit(main())
