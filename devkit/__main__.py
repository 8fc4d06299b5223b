"""``python -m devkit stripe-emulator | generate-events | demo`` (`devkit.cli`)."""

from devkit.cli import main

main()
