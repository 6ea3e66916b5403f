"""Hardware and OS inventory: what this device is and what it can do.

Every reader takes the OS paths it touches as parameters with the real defaults, so the same code
runs on fixture trees in tests and on the real kernel.
"""
