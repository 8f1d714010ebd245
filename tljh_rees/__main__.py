"""``python -m tljh_rees`` is the ``tljh-rees`` command."""

from .cli import main

main()
